# syntax=docker/dockerfile:1
# STaR runtime image (CPU): data preparation, filtering, fine-tuning-set building, reports, the `star`
# command line and the chart's upload hook. Build from the repository root:
#   docker buildx bake -f images/docker-bake.hcl runtime

# ---- build: a virtualenv with the project and its CPU-only torch -----------------------------------------
FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv

# torch==2.13.0 from PyPI is the CUDA build (several GB of CUDA libraries); this image runs on CPU nodes,
# so the same version is taken from the PyTorch CPU index (2.13.0+cpu satisfies ==2.13.0). Empty: torch's CPU
# build comes from the pip settings of the build (images/podman_build.py, where that index does not answer).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

WORKDIR /src

# The dependencies first, in a layer of their own (read from pyproject.toml): a change to the project's code
# or README does not reinstall them.
COPY pyproject.toml ./
# The core dependencies and the extras of this image: `cpu` (torch) and `gcs` (task data and published runs in
# gs:// buckets; s3:// needs nothing more).
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
extra = p['optional-dependencies']; print('\n'.join(p['dependencies'] + extra['cpu'] + extra['gcs']))" \
        > /tmp/requirements.txt \
    && pip install --no-cache-dir ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} -r /tmp/requirements.txt

COPY README.md ./
COPY components ./components
COPY pipelines ./pipelines

RUN pip install --no-cache-dir --no-deps . \
    && pip check \
    && python -c "import components, pipelines, torch; assert torch.version.cuda is None, torch.__version__"

# ---- runtime -----------------------------------------------------------------------------------------------
FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d AS runtime

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
LABEL org.opencontainers.image.title="star-runtime" \
      org.opencontainers.image.description="STaR on Kubeflow: CPU runtime (data prep, filtering, reports, star CLI)" \
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

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/star

USER 10001:10001
WORKDIR /home/star
CMD ["star", "--help"]
