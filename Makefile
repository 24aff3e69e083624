# Every target creates its own virtual environment from nothing (CPU build of torch, pinned versions).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint base-model images clean

$(BIN)/star: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
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

## test: lint and the whole test suite (unit, integration, end to end through kfp.local)
test: $(BIN)/star $(CHECKOV)
	$(BIN)/ruff check .
	PATH="$(abspath $(BIN)):$$PATH" CHECKOV_BIN="$(abspath $(CHECKOV))" $(BIN)/pytest -q

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
	rm -rf $(VENV) .venv-checkov runs .pytest_cache
