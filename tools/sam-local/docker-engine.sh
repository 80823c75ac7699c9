#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine, from the OS's own packages if needed.
#
# Idempotent: an engine that already answers (Docker Desktop, a system service, a previous run) is reused.
# Otherwise docker.io is installed from the Debian/Ubuntu archive (root, apt) and dockerd is started in the
# background with the options these CI machines need: no iptables (no NAT rules in the sandbox; SAM only
# publishes ports on 127.0.0.1), and overlay2 storage when an overlay mount works here, else vfs.
set -euo pipefail

log=${DOCKERD_LOG:-/tmp/facesearch-dockerd.log}

if docker info >/dev/null 2>&1; then
    echo "docker-engine: an engine is running ($(docker info --format '{{.ServerVersion}} {{.Driver}}'))"
    exit 0
fi

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
        echo "docker-engine: no Docker engine and no root apt-get to install one: install Docker, start it, rerun" >&2
        exit 1
    fi
    echo "docker-engine: installing docker.io from the OS packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends docker.io >/dev/null
fi

# overlay2 where this kernel and file system can mount an overlay (it shares image layers); vfs, which
# copies every layer in full and makes each `sam local invoke` several times slower, where they cannot.
driver=${DOCKERD_STORAGE_DRIVER:-}
if [ -z "$driver" ]; then
    probe=$(mktemp -d)
    mkdir -p "$probe/lower" "$probe/upper" "$probe/work" "$probe/merged"
    if mount -t overlay overlay -o "lowerdir=$probe/lower,upperdir=$probe/upper,workdir=$probe/work" \
        "$probe/merged" 2>/dev/null; then
        umount "$probe/merged"
        driver=overlay2
    else
        driver=vfs
    fi
    rm -rf "$probe"
fi
echo "docker-engine: starting dockerd --storage-driver=$driver (log $log)"
# setsid: the engine outlives this script and the make that ran it (later targets and reruns reuse it).
setsid dockerd --iptables=false --storage-driver="$driver" >"$log" 2>&1 </dev/null &
for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then
        echo "docker-engine: started ($(docker info --format '{{.ServerVersion}} {{.Driver}}'))"
        exit 0
    fi
    sleep 1
done
echo "docker-engine: dockerd did not answer within 60 s; last lines of $log:" >&2
tail -n 20 "$log" >&2
exit 1
