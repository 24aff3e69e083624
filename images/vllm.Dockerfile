# syntax=docker/dockerfile:1
# STaR generation image: the official vLLM OpenAI image plus this project (offline LLM.generate with LoRA
# adapters for rationale generation, rationalization and evaluation).
# Build from the repository root:  docker buildx bake -f images/docker-bake.hcl vllm
#
# The base image's vllm must be the version the project's `vllm` extra pins (its torch pin must equal
# the project's torch pin), so that installing the project changes neither vllm nor torch.

# ---- build: a virtualenv layered over the image's own packages (vllm, torch, CUDA libraries) ------------
FROM vllm/vllm-openai:v0.30.0@sha256:8a69ffad015f138d7170c4ddc429e230a3bc1c1719f67e14324749df200a4b90 AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN python3 -m venv --system-site-packages /opt/venv

WORKDIR /src
COPY pyproject.toml README.md ./
COPY components ./components
COPY pipelines ./pipelines

RUN pip install --no-cache-dir "./[vllm]" \
    && python -c "import components, pipelines, vllm; print('vllm', vllm.__version__)"

# ---- runtime -----------------------------------------------------------------------------------------------
FROM vllm/vllm-openai:v0.30.0@sha256:8a69ffad015f138d7170c4ddc429e230a3bc1c1719f67e14324749df200a4b90 AS runtime

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
LABEL org.opencontainers.image.title="star-vllm" \
      org.opencontainers.image.description="STaR on Kubeflow: rationale generation and evaluation with vLLM" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="https://github.com/example/star-kubeflow" \
      org.opencontainers.image.url="https://github.com/example/star-kubeflow" \
      org.opencontainers.image.documentation="https://github.com/example/star-kubeflow#readme" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="STaR on Kubeflow" \
      org.opencontainers.image.base.name="docker.io/vllm/vllm-openai:v0.30.0"

RUN groupadd --system --gid 10001 star \
    && useradd --system --uid 10001 --gid star --home-dir /home/star --create-home --shell /usr/sbin/nologin star

COPY --from=build /opt/venv /opt/venv

# Caches (Hugging Face, vLLM/torch.compile, Triton) go under /tmp, which the pods mount as emptyDir.
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/star \
    HF_HOME=/tmp/hf \
    VLLM_CACHE_ROOT=/tmp/vllm-cache \
    TRITON_CACHE_DIR=/tmp/triton-cache \
    VLLM_NO_USAGE_STATS=1 \
    DO_NOT_TRACK=1

USER 10001:10001
WORKDIR /home/star
# The base image's entrypoint starts an OpenAI server; pipeline steps run their own command instead.
ENTRYPOINT []
CMD ["star", "--help"]
