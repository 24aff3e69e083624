"""Manifests of a multi-node training job: a Kubeflow Trainer `TrainJob` (trainer.kubeflow.org/v1alpha1) or a
Training Operator `PyTorchJob` (kubeflow.org/v1) running the same worker command on every node.

- Pods get `nvidia.com/gpu` limits, the node selector and tolerations of the GPU pool, a memory-backed `/dev/shm`,
  and credentials only as references to Kubernetes Secrets (`valueFrom.secretKeyRef`): a literal value for a
  variable that looks like a credential is refused.
- TrainJob manifests target Kubeflow Trainer v2.3 (`runtimePatches`, the `torch-distributed` runtime whose
  replicated job and container are both named `node`).
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from components.core.credentials import looks_like_credential
from components.core.errors import StarError
from components.core.tolerations import Toleration
from components.training.deepspeed_config import DistributedConfig

PATCH_MANAGER = "star.kubeflow.org/train-step"
SHM_VOLUME = "dshm"
PYTORCHJOB_PORT = 23456


#: The module every training process runs (one per GPU, started by torchrun or deepspeed).
WORKER_MODULE = "components.training.worker"


def job_worker_command(nodes: int, nproc: int, spec_url: str) -> list[str]:
    """What every pod of a multi-node job runs: torchrun reads its node rank and the rendezvous address from the
    PET_* variables Kubeflow Trainer and the Training Operator set."""
    return ["torchrun", "--nnodes", str(nodes), "--nproc_per_node", str(nproc), "-m", WORKER_MODULE,
            "--spec", spec_url]


class JobKind(BaseModel):
    kind: str
    group: str
    version: str
    plural: str
    success: str
    failure: str
    #: Pods of the job carry this label (for `kubectl logs -l`).
    pod_label: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


JOB_KINDS: dict[str, JobKind] = {
    "trainjob": JobKind(kind="TrainJob", group="trainer.kubeflow.org", version="v1alpha1", plural="trainjobs",
                        success="Complete", failure="Failed", pod_label="jobset.sigs.k8s.io/jobset-name"),
    "pytorchjob": JobKind(kind="PyTorchJob", group="kubeflow.org", version="v1", plural="pytorchjobs",
                          success="Succeeded", failure="Failed", pod_label="training.kubeflow.org/job-name"),
}


class JobPod(BaseModel):
    """Placement of each node's pod. The fields share their names with the train step's placement
    (`cluster.placement.train`), so `JobPod.model_validate(step.model_dump(include=set(JobPod.model_fields)))`
    carries it over."""

    model_config = ConfigDict(extra="ignore")

    gpus: int = Field(0, ge=0)
    cpu_request: str | None = None
    cpu_limit: str | None = None
    memory_request: str | None = None
    memory_limit: str | None = None
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    shm_size: str = "16Gi"
    service_account: str | None = None
    #: docker-registry Secrets to pull the image with (a private registry).
    image_pull_secrets: list[str] = Field(default_factory=list)
    #: Annotations of every pod. Istio must not inject a sidecar: in a Kubeflow profile namespace it would keep a
    #: finished pod running and stand between the ranks' rendezvous.
    annotations: dict[str, str] = Field(default_factory=lambda: {"sidecar.istio.io/inject": "false"})


class SecretEnv(BaseModel):
    """Environment variables taken from one Kubernetes Secret: {variable: key in the Secret}."""

    model_config = ConfigDict(extra="forbid")

    secret: str
    keys: dict[str, str]
    #: Set a variable only when the Secret has its key (otherwise a missing key keeps the pod from starting).
    optional: bool = False


class JobSettings(BaseModel):
    """What the job's pods need besides the distributed config: image, placement, credentials."""

    model_config = ConfigDict(extra="forbid")

    image: str
    pod: JobPod = Field(default_factory=JobPod)
    secrets: list[SecretEnv] = Field(default_factory=list)
    #: Plain (non-secret) variables for the workers, e.g. NCCL or HF_HUB settings.
    env: dict[str, str] = Field(default_factory=dict)
    #: Run name, part of the job's name.
    run_name: str = "star"
    #: ownerReferences entry (e.g. the step's Pod): the cluster deletes the job if the step's pod disappears.
    owner: dict[str, Any] | None = None


#: The longest replicated-job name in Kubeflow Trainer's shipped runtimes (`dataset-initializer`); the JobSet
#: under a TrainJob names its pods `<TrainJob>-<replicatedJob>-<jobIndex>-<podIndex>-<5 random>`.
LONGEST_REPLICATED_JOB = "dataset-initializer"


def job_name_limit(kind: str, nodes: int) -> int:
    """The longest name a job may have so that every name Kubernetes derives from it stays an RFC 1035 label of 63
    characters. A TrainJob's name may be 63 long, but JobSet's webhook refuses a JobSet whose longest pod name
    (`<name>-<replicatedJob>-<max jobIndex>-<max podIndex>-xxxxx`, pkg/webhooks/jobset_webhook.go) would be longer,
    and the TrainJob then never starts. A PyTorchJob's pods and Services are `<name>-worker-<index>`."""
    if kind == "trainjob":
        return 63 - len(f"-{LONGEST_REPLICATED_JOB}-0-{max(nodes - 1, 0)}-xxxxx")
    return 63 - len(f"-worker-{max(nodes - 2, 0)}")


def job_name(run_name: str, iteration: int, limit: int = 63) -> str:
    """`star-<run>-it<n>-<random>`, the run name shortened to fit `limit` characters; unique per attempt."""
    suffix = f"-it{iteration}-{secrets.token_hex(3)}"
    stem = re.sub(r"[^a-z0-9-]", "-", f"star-{run_name}".lower())[: max(limit - len(suffix), 1)].rstrip("-")
    return (stem or "s") + suffix


def env_vars(settings: JobSettings) -> list[dict[str, Any]]:
    """Container env: plain variables (never credentials) and Secret references."""
    env: list[dict[str, Any]] = [{"name": "PYTHONUNBUFFERED", "value": "1"}]
    for name, value in settings.env.items():
        if looks_like_credential(name):
            raise StarError(
                f"{name} looks like a credential; pass it to the training job through a Kubernetes Secret "
                f"(cluster.storage.secret), never as a literal value."
            )
        env.append({"name": name, "value": value})
    for source in settings.secrets:
        for name, key in source.keys.items():
            ref: dict[str, Any] = {"name": source.secret, "key": key}
            if source.optional:
                ref["optional"] = True
            env.append({"name": name, "valueFrom": {"secretKeyRef": ref}})
    return env


def _resources(pod: JobPod) -> dict[str, Any]:
    limits: dict[str, Any] = {}
    requests: dict[str, Any] = {}
    if pod.gpus:
        limits["nvidia.com/gpu"] = pod.gpus
    for res, req, lim in (("cpu", pod.cpu_request, pod.cpu_limit), ("memory", pod.memory_request, pod.memory_limit)):
        if req is not None:
            requests[res] = req
        if lim is not None:
            limits[res] = lim
    out: dict[str, Any] = {}
    if limits:
        out["limits"] = limits
    if requests:
        out["requests"] = requests
    return out


def _pod_placement(pod: JobPod) -> dict[str, Any]:
    shm = {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": pod.shm_size}}
    spec: dict[str, Any] = {"volumes": [shm]}
    if pod.node_selector:
        spec["nodeSelector"] = dict(pod.node_selector)
    if pod.tolerations:
        spec["tolerations"] = [t.model_dump(exclude_none=True) for t in pod.tolerations]
    if pod.service_account:
        spec["serviceAccountName"] = pod.service_account
    if pod.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": name} for name in pod.image_pull_secrets]
    return spec


def _pod_metadata(pod: JobPod, labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    if labels:
        meta["labels"] = labels
    if pod.annotations:
        meta["annotations"] = dict(pod.annotations)
    return meta


def _metadata(name: str, namespace: str, settings: JobSettings, iteration: int | None) -> dict[str, Any]:
    labels = {"app.kubernetes.io/part-of": "star", "app.kubernetes.io/component": "train"}
    if iteration is not None:
        labels["star.kubeflow.org/iteration"] = str(iteration)
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels}
    if settings.owner:
        meta["ownerReferences"] = [settings.owner]
    return meta


def trainjob_manifest(
    name: str,
    namespace: str,
    *,
    command: list[str],
    nodes: int,
    nproc_per_node: int,
    settings: JobSettings,
    timeout_s: int,
    runtime: str = "torch-distributed",
    iteration: int | None = None,
) -> dict[str, Any]:
    """A Kubeflow Trainer v2 TrainJob on the `runtime` ClusterTrainingRuntime."""
    pod_spec = _pod_placement(settings.pod)
    pod_spec["containers"] = [{"name": "node", "volumeMounts": [{"name": SHM_VOLUME, "mountPath": "/dev/shm"}]}]
    trainer: dict[str, Any] = {
        "image": settings.image,
        "command": command,
        "env": env_vars(settings),
        "numNodes": nodes,
        "numProcPerNode": nproc_per_node,
    }
    resources = _resources(settings.pod)
    if resources:
        trainer["resourcesPerNode"] = resources
    return {
        "apiVersion": JOB_KINDS["trainjob"].api_version,
        "kind": "TrainJob",
        "metadata": _metadata(name, namespace, settings, iteration),
        "spec": {
            "runtimeRef": {"name": runtime, "apiGroup": "trainer.kubeflow.org", "kind": "ClusterTrainingRuntime"},
            "activeDeadlineSeconds": timeout_s,
            "trainer": trainer,
            "runtimePatches": [{
                "manager": PATCH_MANAGER,
                "trainingRuntimeSpec": {"template": {"spec": {"replicatedJobs": [{
                    "name": "node",
                    "template": {"spec": {"template": {"metadata": _pod_metadata(settings.pod),
                                                       "spec": pod_spec}}},
                }]}}},
            }],
        },
    }


def pytorchjob_manifest(
    name: str,
    namespace: str,
    *,
    command: list[str],
    nodes: int,
    nproc_per_node: int,
    settings: JobSettings,
    timeout_s: int,
    iteration: int | None = None,
) -> dict[str, Any]:
    """A Training Operator v1 PyTorchJob: one Master and `nodes - 1` Workers, no restarts (a failed rank fails the
    job and the step; KFP's retry policy decides what happens next)."""

    def replica(count: int) -> dict[str, Any]:
        pod_spec = _pod_placement(settings.pod)
        container: dict[str, Any] = {
            "name": "pytorch",
            "image": settings.image,
            "command": command,
            "env": env_vars(settings),
            "ports": [{"name": "pytorchjob-port", "containerPort": PYTORCHJOB_PORT}],
            "volumeMounts": [{"name": SHM_VOLUME, "mountPath": "/dev/shm"}],
        }
        resources = _resources(settings.pod)
        if resources:
            container["resources"] = resources
        pod_spec["containers"] = [container]
        return {"replicas": count, "restartPolicy": "Never",
                "template": {"metadata": _pod_metadata(settings.pod, {"app.kubernetes.io/part-of": "star"}),
                             "spec": pod_spec}}

    replicas = {"Master": replica(1)}
    if nodes > 1:
        replicas["Worker"] = replica(nodes - 1)
    return {
        "apiVersion": JOB_KINDS["pytorchjob"].api_version,
        "kind": "PyTorchJob",
        "metadata": _metadata(name, namespace, settings, iteration),
        "spec": {
            "nprocPerNode": str(nproc_per_node),
            "pytorchReplicaSpecs": replicas,
            "runPolicy": {"cleanPodPolicy": "Running", "backoffLimit": 0, "activeDeadlineSeconds": timeout_s,
                          "ttlSecondsAfterFinished": 3600},
        },
    }


def job_manifest(
    cfg: DistributedConfig, name: str, namespace: str, spec_url: str, settings: JobSettings,
    iteration: int | None = None,
) -> dict[str, Any]:
    nproc = cfg.nproc_per_node or max(1, settings.pod.gpus)
    command = job_worker_command(cfg.nodes, nproc, spec_url)
    common: dict[str, Any] = dict(command=command, nodes=cfg.nodes, nproc_per_node=nproc, settings=settings,
                                  timeout_s=cfg.job_timeout_s, iteration=iteration)
    if cfg.job_kind == "trainjob":
        return trainjob_manifest(name, namespace, runtime=cfg.job_runtime, **common)
    return pytorchjob_manifest(name, namespace, **common)


def manifest_nproc(manifest: dict[str, Any]) -> int:
    spec = manifest["spec"]
    if manifest["kind"] == "TrainJob":
        return int(spec["trainer"]["numProcPerNode"])
    return int(spec["nprocPerNode"])
