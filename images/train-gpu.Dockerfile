# syntax=docker/dockerfile:1
# STaR GPU training image: CUDA 13 (the CUDA of torch 2.13 wheels), torch, transformers, peft and
# DeepSpeed (ZeRO), launched with torchrun/deepspeed over the GPUs of a pod or by a TrainJob/PyTorchJob.
# Build from the repository root:  docker buildx bake -f images/docker-bake.hcl train-gpu

FROM ghcr.io/astral-sh/uv:0.9.7@sha256:ba4857bf2a068e9bc0e64eed8563b065908a4cd6bfb66b531a9c424c8e25e142 AS uv

# ---- build: Python 3.11 + virtualenv; DeepSpeed's CUDA ops compiled here, where nvcc is -------------------
FROM nvidia/cuda:13.0.1-devel-ubuntu24.04@sha256:7d2f6a8c2071d911524f95061a0db363e24d27aa51ec831fcccf9e76eb72bc92 AS build

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# nvcc needs a host C++ compiler to build DeepSpeed's ops. Unpinned on purpose: Ubuntu replaces patch
# versions in its archive, and this stage is discarded, so the compiler never reaches the image.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ \
    && rm -rf /var/lib/apt/lists/*

COPY --from=uv /uv /usr/local/bin/uv

# Ubuntu 24.04 ships Python 3.12 only; uv installs a standalone CPython 3.11 under /opt/python.
ENV UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_PYTHON_PREFERENCE=only-managed \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN uv python install 3.11.14 \
    && uv venv --python 3.11.14 /opt/venv

WORKDIR /src
COPY pyproject.toml README.md ./
COPY components ./components
COPY pipelines ./pipelines

RUN uv pip install --python /opt/venv/bin/python ".[gpu]"

# DeepSpeed is published as source and compiles its C++/CUDA ops at first use, which the runtime image (no
# compiler) cannot. Rebuilt here against the installed torch with the ops the configs use prebuilt: CPU Adam
# (`training.distributed.offload_optimizer`; without offload the Trainer's own AdamW runs, no DeepSpeed op).
# DS_ACCELERATOR=cuda: this stage has no GPU, and DeepSpeed would otherwise build for (and record) its CPU
# accelerator, whose ops it does not load on a GPU node. CUDA code for datacenter GPUs (A100, L4/Ada, H100, B200).
ARG TORCH_CUDA_ARCH_LIST="8.0;8.6;8.9;9.0;10.0"
ENV DS_ACCELERATOR=cuda
RUN DS_VERSION="$(python -c 'import importlib.metadata as m; print(m.version("deepspeed"))')" \
    && uv pip install --python /opt/venv/bin/python "setuptools==84.2.1" "wheel==0.48.0" "ninja==1.13.2" \
    && DS_BUILD_OPS=0 DS_BUILD_CPU_ADAM=1 TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST}" \
       uv pip install --python /opt/venv/bin/python --no-build-isolation --no-deps --reinstall \
       "deepspeed==${DS_VERSION}" \
    && python -c "import components, pipelines, torch, deepspeed, peft; print(torch.__version__, deepspeed.__version__)" \
    && python -c "from deepspeed.git_version_info import installed_ops as ops, accelerator_name as name; \
assert ops['cpu_adam'] and name == 'cuda', (name, ops)"

# ---- runtime -----------------------------------------------------------------------------------------------
FROM nvidia/cuda:13.0.1-runtime-ubuntu24.04@sha256:c3fde347d52d578c84fd644bc177bc7ec333feaf11550d990da4084d7612e4c7 AS runtime

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
LABEL org.opencontainers.image.title="star-train-gpu" \
      org.opencontainers.image.description="STaR on Kubeflow: LoRA/full fine-tuning on GPU with DeepSpeed ZeRO" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="https://github.com/example/star-kubeflow" \
      org.opencontainers.image.url="https://github.com/example/star-kubeflow" \
      org.opencontainers.image.documentation="https://github.com/example/star-kubeflow#readme" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="STaR on Kubeflow" \
      org.opencontainers.image.base.name="docker.io/nvidia/cuda:13.0.1-runtime-ubuntu24.04"

RUN groupadd --system --gid 10001 star \
    && useradd --system --uid 10001 --gid star --home-dir /home/star --create-home --shell /usr/sbin/nologin star

COPY --from=build /opt/python /opt/python
COPY --from=build /opt/venv /opt/venv

# CPU Adam loads as built, here where no compiler is (a JIT build would fail).
RUN DS_ACCELERATOR=cuda /opt/venv/bin/python -c "from deepspeed.ops.op_builder import CPUAdamBuilder; \
CPUAdamBuilder().load()"

# Caches (Hugging Face, Triton, torch extensions) go under /tmp, which the pods mount as emptyDir.
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/star \
    HF_HOME=/tmp/hf \
    TRITON_CACHE_DIR=/tmp/triton-cache \
    TORCH_EXTENSIONS_DIR=/tmp/torch-extensions

USER 10001:10001
WORKDIR /home/star
CMD ["star", "--help"]
