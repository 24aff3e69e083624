# Builds the four STaR images with one version. Run from the repository root (the build context):
#
#   docker buildx bake -f images/docker-bake.hcl                      # all four, local
#   REGISTRY=ghcr.io/acme VERSION=0.2.0 docker buildx bake -f images/docker-bake.hcl --push
#   docker buildx bake -f images/docker-bake.hcl runtime              # one image
#
# The Helm chart takes the same two values: images.registry = REGISTRY, images.tag = VERSION.

variable "REGISTRY" {
  default = "ghcr.io/example"
}

variable "VERSION" {
  default = "0.1.0"
}

# Commit and build time for the OCI labels (set by CI, e.g. REVISION=$(git rev-parse HEAD)).
variable "REVISION" {
  default = "unknown"
}

variable "CREATED" {
  default = "1970-01-01T00:00:00Z"
}

group "default" {
  targets = ["runtime", "train-gpu", "vllm", "train-tpu"]
}

# GPU and TPU images only make sense on x86_64 nodes with the matching accelerators.
target "_common" {
  context   = "."
  platforms = ["linux/amd64"]
  args = {
    VERSION  = VERSION
    REVISION = REVISION
    CREATED  = CREATED
  }
  labels = {
    "org.opencontainers.image.version"  = VERSION
    "org.opencontainers.image.revision" = REVISION
    "org.opencontainers.image.created"  = CREATED
  }
}

target "runtime" {
  inherits   = ["_common"]
  dockerfile = "images/runtime.Dockerfile"
  target     = "runtime"
  tags       = ["${REGISTRY}/star-runtime:${VERSION}"]
}

target "train-gpu" {
  inherits   = ["_common"]
  dockerfile = "images/train-gpu.Dockerfile"
  target     = "runtime"
  tags       = ["${REGISTRY}/star-train-gpu:${VERSION}"]
}

target "vllm" {
  inherits   = ["_common"]
  dockerfile = "images/vllm.Dockerfile"
  target     = "runtime"
  tags       = ["${REGISTRY}/star-vllm:${VERSION}"]
}

target "train-tpu" {
  inherits   = ["_common"]
  dockerfile = "images/train-tpu.Dockerfile"
  target     = "runtime"
  tags       = ["${REGISTRY}/star-train-tpu:${VERSION}"]
}
