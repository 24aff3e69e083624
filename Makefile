# Every target creates its own virtual environment from nothing (CPU build of torch, pinned versions).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo demo-vllm test test-vllm lint base-model images clean browser

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

# vLLM's CPU build (same version as the `vllm` extra) beside the local torch wheel and the project, in a venv of its
# own; rebuilt from nothing when its recipe changes. The PyPI torchvision is a CUDA build that breaks importing
# transformers' models, so it goes (vLLM's text models need none of the three).
VENV_VLLM := .venv-vllm
VLLM_RECIPE := tests/engines/vllm/requirements.txt
$(VENV_VLLM)/bin/star: $(VLLM_RECIPE) pyproject.toml
	rm -rf $(VENV_VLLM)
	$(PYTHON) -m venv $(VENV_VLLM)
	$(VENV_VLLM)/bin/pip install --quiet --disable-pip-version-check torch==2.13.0 -r $(VLLM_RECIPE) -e .
	$(VENV_VLLM)/bin/pip uninstall --quiet --disable-pip-version-check --yes torchvision torchaudio torchcodec
	touch $@
# vLLM on a few CPU cores: the engine in this process (3 s to start instead of 17 s), a 1 GiB KV cache (else it
# claims 11 GiB), threads not pinned to cores, caches inside the venv.
VLLM_CPU_ENV := VLLM_ENABLE_V1_MULTIPROCESSING=0 VLLM_CPU_KVCACHE_SPACE=1 VLLM_CPU_OMP_THREADS_BIND=nobind \
	VLLM_CACHE_ROOT="$(abspath $(VENV_VLLM))/cache" TORCHINDUCTOR_CACHE_DIR="$(abspath $(VENV_VLLM))/cache/inductor"

## demo-vllm: the demo with generation on vLLM's CPU engine (runs/demo-vllm; same greedy outputs as `make demo`)
demo-vllm: $(VENV_VLLM)/bin/star
	$(VLLM_CPU_ENV) $(VENV_VLLM)/bin/star run --out runs/demo-vllm --set generation.backend=vllm \
		--set generation.vllm.cpu_threads=1

## test: lint and the whole test suite (unit, integration, end to end through kfp.local, the images built and run
## with podman), then the engines in their own environments: vLLM's CPU build, torch_xla on XLA's CPU device
test: $(BIN)/star $(CHECKOV) browser $(VENV_VLLM)/bin/star $(VENV_XLA)/bin/pytest
	$(BIN)/ruff check .
	PATH="$(abspath $(BIN)):$$PATH" CHECKOV_BIN="$(abspath $(CHECKOV))" $(BIN)/pytest -q --ignore=tests/engines
	$(VLLM_CPU_ENV) OMP_NUM_THREADS=1 $(VENV_VLLM)/bin/pytest -q tests/engines/vllm
	PJRT_DEVICE=CPU CPU_NUM_DEVICES=4 $(VENV_XLA)/bin/pytest -q tests/engines/xla

## test-vllm: only the vLLM backend's tests on the real engine (CPU build)
test-vllm: $(VENV_VLLM)/bin/star
	$(VLLM_CPU_ENV) OMP_NUM_THREADS=1 $(VENV_VLLM)/bin/pytest -q tests/engines/vllm

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
	rm -rf $(VENV) .venv-checkov $(VENV_VLLM) $(VENV_XLA) runs .pytest_cache
