"""Multi-node fine-tuning: the train step creates a Kubeflow Trainer `TrainJob` or a Training Operator
`PyTorchJob` running the same worker on every node, follows its status, and deletes it when the step ends.

- Every pod runs `torchrun --nnodes N --nproc_per_node G -m components.training.worker --spec URL`; node rank
  and rendezvous address come from the PET_* variables both operators set.
- The job's pods do not share the step's filesystem: the training set, the starting weights and the worker spec
  go to `staging_uri/<job name>/` first, and rank 0 writes the trained adapter and its result there.

The manifests are built in `components.training.job_manifests`, the job is run through the Kubernetes API in
`components.training.job_api`; this module stages the inputs and puts the two together.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from components.core.errors import StarError
from components.storage import is_remote, write_text
from components.training.deepspeed_config import DistributedConfig
from components.training.job_api import api_client, current_namespace, run_job, step_pod_owner
from components.training.job_manifests import (
    JobPod,
    JobSettings,
    SecretEnv,
    job_manifest,
    job_name,
    job_name_limit,
    manifest_nproc,
)
from components.training.worker import WorkerResult, WorkerSpec, download, read_result, remove, upload

#: The train step builds `JobSettings` (with `JobPod` and `SecretEnv`) and names jobs with `job_name`.
__all__ = ["JobPod", "JobSettings", "SecretEnv", "job_name", "stage_spec", "train_on_nodes"]


def stage_spec(spec: WorkerSpec, prefix: str) -> WorkerSpec:
    """Upload the worker's inputs under `prefix` and return the spec with URLs the job's pods can read."""
    base = Path(spec.base_dir).resolve()
    previous = Path(spec.previous_dir).resolve()
    urls = {"examples": f"{prefix}/examples.jsonl", "base_dir": f"{prefix}/base"}
    upload(Path(spec.examples), urls["examples"])
    upload(base, urls["base_dir"])
    if previous == base:
        urls["previous_dir"] = urls["base_dir"]
    else:
        urls["previous_dir"] = f"{prefix}/previous"
        upload(previous, urls["previous_dir"])
    return spec.model_copy(update={**urls, "out_dir": f"{prefix}/out", "result": f"{prefix}/result.json"})


def train_on_nodes(
    cfg: DistributedConfig,
    spec: WorkerSpec,
    settings: JobSettings,
    *,
    client: Any = None,
    namespace: str | None = None,
    watch_s: int = 60,
    log: Callable[[str], None] = print,
) -> WorkerResult:
    """Run the worker on `cfg.nodes` nodes through a TrainJob / PyTorchJob; the trained model lands in
    `spec.out_dir` (a local folder of the step) and rank 0's result is returned."""
    from kubernetes import client as k8s

    if not cfg.staging_uri or not is_remote(cfg.staging_uri):
        raise StarError("training.distributed.staging_uri must be an object-storage URL (s3://, gs://, ...) that "
                        "the job's pods can reach.")
    name = job_name(settings.run_name, spec.iteration, job_name_limit(cfg.job_kind, cfg.nodes))
    ns = namespace or cfg.job_namespace or current_namespace()
    prefix = f"{cfg.staging_uri.rstrip('/')}/{name}"
    remote = stage_spec(spec, prefix)
    spec_url = f"{prefix}/spec.json"
    write_text(spec_url, remote.model_dump_json())
    client = client if client is not None else api_client()
    if settings.owner is None:
        settings = settings.model_copy(update={"owner": step_pod_owner(client, ns)})
    manifest = job_manifest(cfg, name, ns, spec_url, settings, spec.iteration)
    api = k8s.CustomObjectsApi(client)
    log(f"{spec.label}: {cfg.job_kind} over {cfg.nodes} nodes × {manifest_nproc(manifest)} processes")
    run_job(api, manifest, timeout_s=cfg.job_timeout_s, watch_s=watch_s, log=log)
    try:
        result = read_result(remote.result)
    except FileNotFoundError as e:
        raise StarError(f"The training job {name} finished but rank 0 wrote no result at {remote.result}.") from e
    download(remote.out_dir, Path(spec.out_dir))
    write_text(spec.result, result.model_dump_json())
    try:
        remove(prefix)
    except OSError as e:
        log(f"could not remove the staged files at {prefix}: {e}")
    return result
