"""A training job through the Kubernetes API: the client and namespace of the step's pod, the owner reference
that lets the cluster delete the job with the step, and create / watch / delete. The job is deleted when the
step ends, whether it succeeded, failed, timed out or was stopped."""

from __future__ import annotations

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
