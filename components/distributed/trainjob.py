"""Multi-node fine-tuning: the train step creates a Kubeflow Trainer `TrainJob` (trainer.kubeflow.org/v1alpha1)
or a Training Operator `PyTorchJob` (kubeflow.org/v1) running the same worker on every node, follows its status,
and deletes it when the step ends, whether it succeeded, failed, timed out or was stopped.

- Every pod runs `torchrun --nnodes N --nproc_per_node G -m components.distributed.worker --spec URL`; node rank
  and rendezvous address come from the PET_* variables both operators set.
- The job's pods do not share the step's filesystem: the training set, the starting weights and the worker spec
  go to `staging_uri/<job name>/` first, and rank 0 writes the trained adapter and its result there.
- Pods get `nvidia.com/gpu` limits, the node selector and tolerations of the GPU pool, a memory-backed `/dev/shm`,
  and credentials only as references to Kubernetes Secrets (`valueFrom.secretKeyRef`): a literal value for a
  variable that looks like a credential is refused.
- TrainJob manifests target Kubeflow Trainer v2.3 (`runtimePatches`, the `torch-distributed` runtime whose
  replicated job and container are both named `node`).
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from components.distributed.deepspeed_config import DistributedConfig
from components.distributed.launcher import job_worker_command, terminate_raises
from components.distributed.worker import (
    WorkerResult,
    WorkerSpec,
    download,
    read_result,
    remove,
    upload,
    write_text,
)
from components.errors import StarError
from components.storage import is_remote

NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
PATCH_MANAGER = "star.kubeflow.org/train-step"
SHM_VOLUME = "dshm"
PYTORCHJOB_PORT = 23456
_CREDENTIAL = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|ACCESS_KEY|API_KEY|PRIVATE_KEY", re.IGNORECASE)


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


class Toleration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str
    operator: Literal["Equal", "Exists"] = "Exists"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = "NoSchedule"


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


class SecretEnv(BaseModel):
    """Environment variables taken from one Kubernetes Secret: {variable: key in the Secret}."""

    model_config = ConfigDict(extra="forbid")

    secret: str
    keys: dict[str, str]


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


def job_name(run_name: str, iteration: int) -> str:
    """`star-<run>-it<n>-<random>`: an RFC 1035 label of at most 63 characters, unique per attempt."""
    suffix = f"-it{iteration}-{secrets.token_hex(3)}"
    stem = re.sub(r"[^a-z0-9-]", "-", f"star-{run_name}".lower())[: 63 - len(suffix)].rstrip("-")
    return stem + suffix


def env_vars(settings: JobSettings) -> list[dict[str, Any]]:
    """Container env: plain variables (never credentials) and Secret references."""
    env: list[dict[str, Any]] = [{"name": "PYTHONUNBUFFERED", "value": "1"}]
    for name, value in settings.env.items():
        if _CREDENTIAL.search(name):
            raise StarError(
                f"{name} looks like a credential; pass it to the training job through a Kubernetes Secret "
                f"(cluster.storage.secret), never as a literal value."
            )
        env.append({"name": name, "value": value})
    for source in settings.secrets:
        for name, key in source.keys.items():
            env.append({"name": name, "valueFrom": {"secretKeyRef": {"name": source.secret, "key": key}}})
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
    return spec


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
                    "template": {"spec": {"template": {"spec": pod_spec}}},
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
                "template": {"metadata": {"labels": {"app.kubernetes.io/part-of": "star"}}, "spec": pod_spec}}

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


def job_state(kind: JobKind, obj: dict[str, Any]) -> tuple[Literal["running", "succeeded", "failed"], str]:
    """The job's state from its status conditions, and the message of the deciding condition."""
    conditions = (obj.get("status") or {}).get("conditions") or []
    for cond in conditions:
        if cond.get("status") == "True" and cond.get("type") == kind.failure:
            return "failed", str(cond.get("message") or cond.get("reason") or "")
    for cond in conditions:
        if cond.get("status") == "True" and cond.get("type") == kind.success:
            return "succeeded", str(cond.get("message") or "")
    return "running", ""


def _describe(kind: JobKind, namespace: str, name: str) -> str:
    return f"{kind.kind} {namespace}/{name}"


def wait_for_job(
    api: Any,
    kind: JobKind,
    namespace: str,
    name: str,
    *,
    timeout_s: float,
    watch_s: int = 60,
    max_connection_failures: int = 5,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Watch the job until it succeeds (returns the object), fails or runs out of time (StarError). Each new
    condition is printed once."""
    from kubernetes import watch
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    deadline = time.monotonic() + timeout_s
    seen: set[tuple[str, str, str]] = set()
    where = _describe(kind, namespace, name)
    failures = 0  # consecutive connection failures: a blip of the API server does not end hours of training
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise StarError(
                f"{where} did not finish within {timeout_s:.0f} s (training.distributed.job_timeout_s); "
                f"it was stopped and deleted."
            )
        w = watch.Watch()
        try:
            for event in w.stream(
                api.list_namespaced_custom_object, kind.group, kind.version, namespace, kind.plural,
                field_selector=f"metadata.name={name}", timeout_seconds=max(1, int(min(watch_s, remaining))),
            ):
                if event["type"] == "ERROR":
                    status = event.get("raw_object", {})
                    if status.get("code") == 410:  # our resourceVersion expired: watch again from now
                        break
                    raise StarError(f"Watching {where} failed: {status.get('message', status)}.")
                if event["type"] == "DELETED":
                    raise StarError(f"{where} was deleted before it finished.")
                obj = event["object"]
                for cond in (obj.get("status") or {}).get("conditions") or []:
                    key = (str(cond.get("type")), str(cond.get("status")), str(cond.get("reason")))
                    if key not in seen:
                        seen.add(key)
                        message = f": {cond['message']}" if cond.get("message") else ""
                        log(f"{where}: {key[0]}={key[1]} ({key[2]}){message}")
                state, message = job_state(kind, obj)
                if state == "succeeded":
                    return obj
                if state == "failed":
                    raise StarError(
                        f"{where} failed: {message or 'no reason given'}. Its pods' logs: "
                        f"kubectl logs -n {namespace} -l {kind.pod_label}={name} --tail=100."
                    )
                if time.monotonic() >= deadline:
                    break
            failures = 0
        except ApiException as e:
            if e.status != 410:
                raise StarError(f"Watching {where} failed: {e.status} {e.reason}.") from e
        except HTTPError as e:
            failures += 1
            if failures > max_connection_failures:
                raise StarError(f"Lost the connection to the Kubernetes API while watching {where}: {e}.") from e
            log(f"watching {where}: {e}; retrying")
            time.sleep(min(2.0**failures, 30.0, max(0.0, deadline - time.monotonic())))
        finally:
            w.stop()


def run_job(
    api: Any,
    manifest: dict[str, Any],
    *,
    timeout_s: float,
    watch_s: int = 60,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Create the job, follow it to the end, and delete it whatever happens (also on SIGTERM)."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    kind = next(k for k in JOB_KINDS.values() if k.kind == manifest["kind"])
    namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    where = _describe(kind, namespace, name)
    with terminate_raises():
        try:
            api.create_namespaced_custom_object(kind.group, kind.version, namespace, kind.plural, manifest)
        except ApiException as e:
            hint = {403: "; the pipeline's service account needs RBAC to create it",
                    404: f"; is the {kind.kind} CRD ({kind.plural}.{kind.group}) installed?",
                    409: "; a job of that name exists already"}.get(e.status or 0, "")
            raise StarError(f"Creating {where} failed: {e.status} {e.reason}{hint}.") from e
        try:
            log(f"created {where}")
            return wait_for_job(api, kind, namespace, name, timeout_s=timeout_s, watch_s=watch_s, log=log)
        finally:
            try:
                api.delete_namespaced_custom_object(kind.group, kind.version, namespace, kind.plural, name,
                                                    propagation_policy="Background")
                log(f"deleted {where}")
            except ApiException as e:
                if e.status != 404:
                    log(f"could not delete {where}: {e.status} {e.reason}; delete it by hand")
            except HTTPError as e:
                log(f"could not delete {where} ({e}); delete it by hand")


def step_pod_owner(client: Any, namespace: str, pod_name: str | None = None) -> dict[str, Any] | None:
    """An ownerReferences entry naming the pod this step runs in (HOSTNAME is the pod's name), so the cluster
    deletes the job should the step's pod go away without cleaning up (OOM kill, node loss). None outside a
    pod, or when the pod cannot be read."""
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

    name = pod_name or os.environ.get("HOSTNAME")
    if not name or (pod_name is None and not NAMESPACE_FILE.exists()):
        return None
    try:
        pod = k8s.CoreV1Api(client).read_namespaced_pod(name, namespace)
    except ApiException:
        return None
    return {"apiVersion": "v1", "kind": "Pod", "name": pod.metadata.name, "uid": pod.metadata.uid,
            "blockOwnerDeletion": False}


def current_namespace() -> str:
    if NAMESPACE_FILE.exists():
        return NAMESPACE_FILE.read_text().strip()
    raise StarError("Not running in a Kubernetes pod: set training.distributed.job_namespace.")


def api_client() -> Any:
    """A client for the cluster the step runs in (its service account), else the local kubeconfig."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


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
    name = job_name(settings.run_name, spec.iteration)
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


def manifest_nproc(manifest: dict[str, Any]) -> int:
    spec = manifest["spec"]
    if manifest["kind"] == "TrainJob":
        return int(spec["trainer"]["numProcPerNode"])
    return int(spec["nprocPerNode"])
