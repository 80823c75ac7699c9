# FaceSearch: `make demo` sets up and runs the local demo; `make test` runs the whole test suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
MODELS_DIR ?= build/models

.PHONY: setup models demo test reliability conformance-s3vectors lint clean sam-lint sam-build sam-check sam-check-all sam-docker sam-local browser-deps

# SAM CLI lives in its own venv: its pinned dependencies would fight the project's boto3/moto.
SAM_VENV ?= build/sam-venv
SAM_CLI_VERSION ?= 1.170.0
SAM := $(SAM_VENV)/bin/sam
# The function's runtime (template.yaml) and the Python that `sam build` needs on PATH to build for it;
# pyenv machines keep it under a version prefix.
LAMBDA_PYTHON_VERSION := 3.12
SAM_PATH := $(shell p=$$(pyenv prefix $(LAMBDA_PYTHON_VERSION) 2>/dev/null) && printf '%s:' "$$p/bin")$(PATH)
SAM_ENV := PATH="$(SAM_PATH)" SAM_CLI_TELEMETRY=0
# boto3 as the Lambda runtime provides it (not in the layers), for checking the built function.
LAMBDA_RUNTIME_SDK := build/lambda-runtime
# The template's Architecture parameter: the layers are assembled from wheels for it, on any host.
ARCHITECTURE ?= x86_64

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

models: setup
	$(BIN)/python layers/models/build_pack.py --out $(MODELS_DIR)
	$(BIN)/python layers/models/build_attributes.py --out $(MODELS_DIR)

# The console's browser tests (tests/browser): headless Chromium from the OS packages, driven by Playwright
# (which is pointed at /usr/bin/chromium and never downloads a browser of its own).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser-deps: setup
	command -v chromium >/dev/null || { $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium chromium-driver; }
	$(BIN)/python -m pip install --quiet -e '.[browser]'

demo: models
	$(BIN)/facesearch demo

lint: setup
	$(BIN)/ruff check src tests bench layers tools
	$(BIN)/ruff format --check src tests bench layers tools
	$(BIN)/mypy

test: models lint
	$(BIN)/python -m pytest -m "not reliability"

# The reliability suite (tests/reliability: fuzzing, raw HTTP, two processes, kill -9, S3 faults), ~6 min;
# CI runs it once, after `make test`. Its figures land in build/reliability/report.json.
# The conformance suite again, with the handler's collections on the S3 Vectors engine (moto; QueryVectors from
# tests/support/s3vectors_query.py). CI runs it once.
conformance-s3vectors: models
	FACESEARCH_ENGINE=s3vectors $(BIN)/python -m pytest tests/conformance -q

reliability: models
	rm -f build/reliability/report.json
	$(BIN)/python -m pytest tests/reliability -m reliability -q
	cat build/reliability/report.json

$(SAM_VENV)/.installed:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/python -m pip install --quiet aws-sam-cli==$(SAM_CLI_VERSION)
	touch $@

$(LAMBDA_RUNTIME_SDK)/.installed:
	$(SAM_ENV) python$(LAMBDA_PYTHON_VERSION) -m pip install --quiet --root-user-action=ignore --target $(LAMBDA_RUNTIME_SDK) boto3
	touch $@

sam-lint: $(SAM_VENV)/.installed
	$(SAM_VENV)/bin/cfn-lint template.yaml
	$(SAM_ENV) $(SAM) validate --lint --region us-east-1

sam-build: models $(SAM_VENV)/.installed
	$(SAM_ENV) $(SAM) build --parameter-overrides Architecture=$(ARCHITECTURE)

sam-check: sam-lint sam-build $(LAMBDA_RUNTIME_SDK)/.installed
	$(SAM_ENV) $(BIN)/python layers/check_build.py --build-dir .aws-sam/build \
		--runtime-sdk $(LAMBDA_RUNTIME_SDK) --runtime python$(LAMBDA_PYTHON_VERSION) --architecture $(ARCHITECTURE)

# Both architectures, as CI checks them (x86_64 last, so .aws-sam/build is the one `sam-local` runs).
sam-check-all:
	$(MAKE) --no-print-directory sam-check ARCHITECTURE=arm64
	$(MAKE) --no-print-directory sam-check ARCHITECTURE=x86_64

# A Docker engine (the OS's docker.io, started if none answers) and the runtime's base image (a local
# stand-in built from OS and PyPI packages when it is not present; see tools/sam-local/base-image.sh).
# SAM_LOCAL_STANDIN=0 (a machine that can reach AWS's registry): no stand-in, SAM pulls the real image.
SAM_LOCAL_STANDIN ?= 1
sam-docker:
	tools/sam-local/docker-engine.sh
ifeq ($(SAM_LOCAL_STANDIN),1)
	LAMBDA_PYTHON_VERSION=$(LAMBDA_PYTHON_VERSION) tools/sam-local/base-image.sh $(ARCHITECTURE)
endif

# Every event in events/ through `sam local invoke`, then boto3 through `sam local start-api`.
sam-local: sam-build sam-docker
	$(SAM_ENV) $(BIN)/python tools/sam-local/run.py --sam $(SAM) $(if $(filter 1,$(SAM_LOCAL_STANDIN)),,--pull)

clean:
	rm -rf $(VENV) build .aws-sam
