# Every target creates its own virtual environment from nothing (CPU build of torch, pinned versions).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint base-model images clean browser

$(BIN)/star: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

# The TPU training image's dependency set (extras `tpu`: torch 2.9.0 + torch_xla 2.9.0, and `gcs`) plus pytest, for the
# XLA training tests on XLA's CPU device (tests/engines/xla). PyPI's torch 2.9.0 is its CUDA build: the venv is
# ~7 GB (4.3 GB of CUDA libraries, unused: it runs on CPU) and takes a few minutes, once; a later change of
# pyproject.toml only installs what changed into it.
VENV_XLA := .venv-xla
$(VENV_XLA)/bin/pytest: pyproject.toml
	test -x $(VENV_XLA)/bin/pip || $(PYTHON) -m venv $(VENV_XLA)
	$(VENV_XLA)/bin/pip install --quiet --disable-pip-version-check -e '.[tpu,gcs,test]'
	touch $@

## demo: a local STaR run on the arithmetic task (runs/demo/summary.json, runs/demo/report.html)
demo: $(BIN)/star
	$(BIN)/star run --out runs/demo

# checkov pins packaging<24 (pytest 9 needs >=24), so it lives in a venv of its own.
CHECKOV := .venv-checkov/bin/checkov
$(CHECKOV):
	$(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/pip install --quiet --disable-pip-version-check checkov==3.3.30
	touch $@

# Chromium lays out the run report in a test (Debian's package, installed when run as root; skipped otherwise).
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) >/dev/null; } || \
	  echo "Chromium is not installed and cannot be here: the report layout test is skipped"

## test: lint and the whole test suite (unit, integration, end to end through kfp.local)
test: $(BIN)/star $(CHECKOV) browser $(VENV_XLA)/bin/pytest
	$(BIN)/ruff check .
	PATH="$(abspath $(BIN)):$$PATH" CHECKOV_BIN="$(abspath $(CHECKOV))" $(BIN)/pytest -q --ignore=tests/engines
	PJRT_DEVICE=CPU CPU_NUM_DEVICES=4 $(VENV_XLA)/bin/pytest -q tests/engines/xla

## images: build every image this machine can: `docker buildx bake` where a Docker engine answers, else podman and
## buildah (installed from Debian's packages when missing; images/podman_build.py), listed by `podman images`
images:
	@if docker info >/dev/null 2>&1; then docker buildx bake -f images/docker-bake.hcl; \
	else $(PYTHON) images/podman_build.py; fi

lint: $(BIN)/star
	$(BIN)/ruff check .

## base-model: rebuild the demo's tiny base model that ships in components/demo/assets (seeded)
base-model: $(BIN)/star
	$(BIN)/python -m components.demo.seed_pretraining components/demo/assets/tiny-arithmetic

clean:
	rm -rf $(VENV) .venv-checkov $(VENV_XLA) runs .pytest_cache
