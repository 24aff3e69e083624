"""A training job through the Kubernetes API: the client and namespace of the step's pod, the owner reference
that lets the cluster delete the job with the step, and create / watch / delete. The job is deleted when the
step ends, whether it succeeded, failed, timed out or was stopped.

- Created with strict field validation: a field the cluster's CRD does not know (`runtimePatches` on a Trainer
  older than v2.2) is refused with the field's name instead of being dropped, which would start pods without
  their node pool, tolerations and /dev/shm.
- A TrainJob whose pods cannot be created shows it only as a Warning Event (`TrainJobResourcesCreationFailed`,
  Kubeflow Trainer's `trainjob_controller.go`), never in its status: the wait reads the job's Warning Events and
  fails with their message instead of waiting for its deadline.
- TrainJobs are deleted through the Kubeflow Trainer SDK (`kubeflow.trainer.TrainerClient.delete_job`). Its
  other calls do not serve here: `train()` sets no owner reference, no name of ours and no strict validation;
  `get_job_events()` skips Events without `firstTimestamp`, which is every Event the Trainer's events.k8s.io
  recorder writes; `get_job()`/`get_job_logs()` read the cluster-scoped ClusterTrainingRuntime, beyond the
  namespace Role the train step has; `wait_for_job_status()` ends at the first failed API call.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from components.core.errors import StarError
from components.core.signals import terminate_raises
from components.training.job_manifests import JOB_KINDS, JobKind

NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


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


#: The Warning Event reasons that mean a job's pods will not be created (Kubeflow Trainer's TrainJob controller).
CREATION_FAILED = {"TrainJobResourcesCreationFailed"}


def creation_failure(api: Any, kind: JobKind, namespace: str, name: str) -> str | None:
    """The message of a Warning Event saying the job's pods cannot be created, or None."""
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

    try:
        events = k8s.CoreV1Api(api.api_client).list_namespaced_event(
            namespace, field_selector=f"involvedObject.kind={kind.kind},involvedObject.name={name},type=Warning")
    except ApiException as e:
        if e.status in (401, 403):  # a Role without events: the job's deadline is the only guard left
            return None
        raise
    for event in events.items or []:
        if event.reason in CREATION_FAILED:
            return str(event.message or event.reason)
    return None


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
    """Watch the job until it succeeds (returns the object), fails, cannot create its pods or runs out of time
    (StarError). Each new condition is printed once; Warning Events are read between watches."""
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
            if kind.kind == "TrainJob" and (failure := creation_failure(api, kind, namespace, name)) is not None:
                raise StarError(f"{where} cannot create its pods: {failure}")
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

    kind = next(k for k in JOB_KINDS.values() if k.kind == manifest["kind"])
    namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    where = _describe(kind, namespace, name)
    with terminate_raises():
        try:
            api.create_namespaced_custom_object(kind.group, kind.version, namespace, kind.plural, manifest,
                                                field_validation="Strict")
        except ApiException as e:
            message = _status_message(e)
            if e.status == 400 and "unknown field" in message:
                raise StarError(
                    f"Creating {where} failed: the cluster's {kind.kind} API does not know a field this job needs "
                    f"({message}); upgrade the operator (TrainJob runtimePatches need Kubeflow Trainer v2.2 or "
                    "newer), or use training.distributed.job_kind: pytorchjob with the Training Operator."
                ) from e
            hint = {403: "; the pipeline's service account needs RBAC to create it",
                    404: f"; is the {kind.kind} CRD ({kind.plural}.{kind.group}) installed?",
                    409: "; a job of that name exists already"}.get(e.status or 0, "")
            raise StarError(f"Creating {where} failed: {e.status} {e.reason}{hint}.") from e
        try:
            log(f"created {where}")
            return wait_for_job(api, kind, namespace, name, timeout_s=timeout_s, watch_s=watch_s, log=log)
        finally:
            delete_job(api, kind, namespace, name, log)


def _status_message(e: Any) -> str:
    try:
        return str(json.loads(e.body).get("message") or e.reason)
    except (TypeError, ValueError, AttributeError):
        return str(e.reason)


def delete_job(api: Any, kind: JobKind, namespace: str, name: str, log: Callable[[str], None] = print) -> None:
    """Delete the job (its pods go with it); a job already gone is fine. TrainJobs through the Trainer SDK."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    where = _describe(kind, namespace, name)
    try:
        if kind.kind == "TrainJob":
            trainer_client(api.api_client, namespace).delete_job(name)
        else:
            api.delete_namespaced_custom_object(kind.group, kind.version, namespace, kind.plural, name,
                                                propagation_policy="Background")
        log(f"deleted {where}")
    except RuntimeError as e:  # the SDK wraps what the API raised
        cause = e.__cause__
        if not (isinstance(cause, ApiException) and cause.status == 404):
            log(f"could not delete {where}: {cause or e}; delete it by hand")
    except ApiException as e:
        if e.status != 404:
            log(f"could not delete {where}: {e.status} {e.reason}; delete it by hand")
    except (HTTPError, TimeoutError) as e:
        log(f"could not delete {where} ({e}); delete it by hand")


def trainer_client(client: Any, namespace: str) -> Any:
    """The Kubeflow Trainer SDK's client on the step's API connection and namespace. Its constructor looks for the
    Trainer's version ConfigMap in kubeflow-system, which the step may not read: only a warning, kept quiet."""
    import logging

    from kubeflow.common.types import KubernetesBackendConfig
    from kubeflow.trainer import TrainerClient

    sdk_log = logging.getLogger("kubeflow.trainer.backends.kubernetes.backend")
    level = sdk_log.level
    sdk_log.setLevel(logging.ERROR)
    try:
        return TrainerClient(KubernetesBackendConfig(namespace=namespace,
                                                     client_configuration=client.configuration))
    finally:
        sdk_log.setLevel(level)


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
