# syntax=docker/dockerfile:1
# STaR TPU training image: transformers + peft on torch_xla (PJRT) for GKE TPU node pools.
# Build from the repository root:  docker buildx bake -f images/docker-bake.hcl train-tpu

# ---- build: a virtualenv with the project and its `tpu` extra (torch 2.9.0, torch_xla[tpu] 2.9.0, libtpu) -----
FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv

WORKDIR /src
COPY pyproject.toml README.md ./
COPY components ./components
COPY pipelines ./pipelines

# The `tpu` extra pins torch and torch_xla (torch_xla 2.9.0 imports only with torch 2.9.0; `make test` installs
# this set in .venv-xla and trains on XLA's CPU device with it). TPU hosts need no CUDA: torch comes from the
# PyTorch CPU index (2.9.0+cpu satisfies ==2.9.0). `gcs`: checkpoints and the compilation cache in gs:// buckets.
# Empty TORCH_INDEX_URL: torch's CPU build comes from the build's pip settings (images/podman_build.py).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# The pins are the project's (pyproject.toml); the linter reads the optional index URL as an unpinned package.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} "./[tpu,gcs]" \
    && python -c "import components, pipelines, torch, torch_xla; print(torch.__version__, torch_xla.__version__)"

# ---- runtime -----------------------------------------------------------------------------------------------
FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d AS runtime

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
LABEL org.opencontainers.image.title="star-train-tpu" \
      org.opencontainers.image.description="STaR on Kubeflow: fine-tuning on Cloud TPU with torch_xla" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="https://github.com/example/star-kubeflow" \
      org.opencontainers.image.url="https://github.com/example/star-kubeflow" \
      org.opencontainers.image.documentation="https://github.com/example/star-kubeflow#readme" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="STaR on Kubeflow" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.14-slim-bookworm"

RUN groupadd --system --gid 10001 star \
    && useradd --system --uid 10001 --gid star --home-dir /home/star --create-home --shell /usr/sbin/nologin star

COPY --from=build /opt/venv /opt/venv

# PJRT_DEVICE selects the TPU runtime (and the XLA training path, components/training/xla.py). XLA's persistent
# compilation cache: this in-pod folder unless training.compile_cache (or training.checkpoints) names one that
# outlives the pod.
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/star \
    PJRT_DEVICE=TPU \
    HF_HOME=/tmp/hf \
    XLA_PERSISTENT_CACHE_PATH=/tmp/xla-cache

USER 10001:10001
WORKDIR /home/star
CMD ["star", "--help"]
