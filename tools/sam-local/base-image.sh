#!/usr/bin/env bash
# Build a local stand-in for the Lambda Python base image that `sam local` runs functions in.
#
# SAM CLI runs a zip function in "<base image>:<runtime>-rapid-<arch>", which it builds FROM the runtime's
# base image (public.ecr.aws/lambda/python:3.12-x86_64) by adding its bundled Runtime Interface Emulator;
# with --skip-pull-image it takes the base image from the local engine. Machines without access to a
# container registry get that base image from here, made only of OS packages and PyPI packages:
#   - a Debian root file system made by debootstrap (from the apt archive this machine already uses),
#   - the function's runtime Python at /var/lang (the pyenv build of the runtime's version, itself built on
#     this Debian release, so its shared libraries are in the root file system),
#   - awslambdaric (the runtime interface client AWS's own images use) and boto3 in /var/runtime,
#   - /lambda-entrypoint.sh, /var/runtime/bootstrap, /var/task and /opt laid out, and the environment set,
#     as in AWS's images.
# Idempotent: an image carrying this recipe's hash is kept. On a machine with registry access, delete the
# stand-in (`docker rmi <tag>`) and SAM pulls the real image. Usage: base-image.sh [x86_64|arm64]
set -euo pipefail
cd "$(dirname "$0")/../.."

architecture=${1:-x86_64}
python_version=${LAMBDA_PYTHON_VERSION:-3.12}
suite=${DEBIAN_SUITE:-bookworm}
tag="public.ecr.aws/lambda/python:${python_version}-${architecture}"
machine=$(uname -m)
case "$architecture:$machine" in
    x86_64:x86_64 | arm64:aarch64) ;;
    *)
        echo "base-image: a $architecture stand-in cannot be built on a $machine host (its Python runs here)" >&2
        exit 1
        ;;
esac

recipe=$(cat "$0" | sha256sum | cut -c1-16)
if [ "$(docker image inspect --format '{{index .Config.Labels "facesearch.recipe"}}' "$tag" 2>/dev/null)" = "$recipe" ]; then
    echo "base-image: $tag is up to date (recipe $recipe)"
    exit 0
fi
if docker image inspect "$tag" >/dev/null 2>&1 && [ -z "$(docker image inspect --format '{{index .Config.Labels "facesearch.recipe"}}' "$tag")" ]; then
    # Not ours: a real image pulled from the registry. Keep it.
    echo "base-image: $tag is present and not a stand-in; using it"
    exit 0
fi

python_prefix=$(pyenv prefix "$python_version" 2>/dev/null || true)
if [ -z "$python_prefix" ] || [ ! -x "$python_prefix/bin/python$python_version" ]; then
    echo "base-image: no Python $python_version build found (pyenv prefix $python_version)" >&2
    exit 1
fi
if ! command -v debootstrap >/dev/null 2>&1; then
    echo "base-image: installing debootstrap from the OS packages"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

work=build/sam-local/base-image-$architecture
rootfs=$work/rootfs
# Shared libraries the runtime Python and the layers' wheels load (libstdc++/libgomp: onnxruntime, hnswlib).
packages=ca-certificates,libssl3,libffi8,zlib1g,libbz2-1.0,liblzma5,libsqlite3-0,libncursesw6,libreadline8
packages=$packages,libgdbm6,libuuid1,libexpat1,libstdc++6,libgomp1
if [ ! -f "$work/.debootstrapped" ]; then
    rm -rf "$work"
    mkdir -p "$work"
    echo "base-image: debootstrap $suite (minbase) into $rootfs"
    start=$SECONDS
    debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" >"$work/debootstrap.log" 2>&1 || {
        tail -n 30 "$work/debootstrap.log" >&2
        exit 1
    }
    echo "base-image: debootstrap took $((SECONDS - start)) s"
    # Package caches and docs are not part of a runtime image.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/usr/share/doc "$rootfs"/usr/share/man "$rootfs"/var/lib/apt/lists/*
    touch "$work/.debootstrapped"
fi

echo "base-image: runtime Python $python_version from $python_prefix into /var/lang"
rm -rf "$rootfs/var/lang" "$rootfs/var/runtime"
mkdir -p "$rootfs/var/lang" "$rootfs/var/runtime" "$rootfs/var/task" "$rootfs/opt"
tar -C "$python_prefix" -c \
    --exclude="./lib/python$python_version/test" --exclude="./lib/python$python_version/idlelib" \
    --exclude="./lib/python$python_version/tkinter" --exclude="./lib/python$python_version/turtledemo" \
    --exclude="./lib/python$python_version/site-packages/*" --exclude='*/__pycache__' \
    --exclude='./lib/*.a' --exclude="./lib/python$python_version/config-*" --exclude='./share' --exclude='./include' . |
    tar -C "$rootfs/var/lang" -x

echo "base-image: awslambdaric and boto3 into /var/runtime"
"$python_prefix/bin/python$python_version" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    --no-compile --only-binary=:all: --target "$rootfs/var/runtime" awslambdaric boto3

cat >"$rootfs/var/runtime/bootstrap" <<BOOTSTRAP
#!/bin/sh
# As in the Lambda runtime: the function code, then the layers, then the runtime's own packages.
export PYTHONPATH="\${LAMBDA_TASK_ROOT}:/opt/python/lib/python${python_version}/site-packages:/opt/python:\${LAMBDA_RUNTIME_DIR}"
export AWS_EXECUTION_ENV="AWS_Lambda_python${python_version}"
exec /var/lang/bin/python${python_version} -m awslambdaric "\$_HANDLER"
BOOTSTRAP
cat >"$rootfs/lambda-entrypoint.sh" <<'ENTRYPOINT'
#!/bin/sh
# As in AWS's images: the handler is the command; without a Runtime API (a plain `docker run`) the
# runtime interface emulator, when present, serves one.
if [ $# -ne 1 ]; then
    echo "entrypoint requires the handler name to be the first argument" 1>&2
    exit 142
fi
export _HANDLER="$1"
if [ -z "${AWS_LAMBDA_RUNTIME_API}" ] && [ -x /usr/local/bin/aws-lambda-rie ]; then
    exec /usr/local/bin/aws-lambda-rie /var/runtime/bootstrap
fi
exec /var/runtime/bootstrap
ENTRYPOINT
chmod 755 "$rootfs/var/runtime/bootstrap" "$rootfs/lambda-entrypoint.sh"

echo "base-image: docker import as $tag"
tar -C "$rootfs" -c . | docker import \
    --change "ENV LANG=en_US.UTF-8" \
    --change "ENV TZ=:/etc/localtime" \
    --change "ENV PATH=/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin" \
    --change "ENV LD_LIBRARY_PATH=/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib" \
    --change "ENV LAMBDA_TASK_ROOT=/var/task" \
    --change "ENV LAMBDA_RUNTIME_DIR=/var/runtime" \
    --change "WORKDIR /var/task" \
    --change "LABEL facesearch.recipe=$recipe" \
    --change 'ENTRYPOINT ["/lambda-entrypoint.sh"]' \
    - "$tag" >/dev/null
echo "base-image: $tag built ($(docker image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
