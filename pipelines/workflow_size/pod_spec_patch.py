"""The pod-spec-patch a container driver writes (kubeflow/pipelines backend/src/v2/driver/driver.go
initPodSpecPatch at 2.17.0): the executor input, the component JSON and the user command with its inlined source.
It is the largest value of a run's node status: the driver's output, and an input of the executor DAG node and
of the executor Pod (each twice with Argo's retry nodes)."""

from __future__ import annotations

import json
from typing import Any

from pipelines.workflow_size.go_json import compact
from pipelines.workflow_size.pipeline_ir import PipelineIR
from pipelines.workflow_size.upstream_constants import EXECUTION_ID, KFP_SERVER_ARGS, PIPELINE_ROOT, RUN_ID


class PodSpecPatches:
    """The pod-spec-patch of each (task, input values), rendered once."""

    def __init__(self, ir: PipelineIR) -> None:
        self.ir = ir
        self._cache: dict[tuple, str] = {}

    def render(
        self,
        task_name: str,
        task: dict,
        comp: dict,
        component_json: str,
        container: dict,
        k8s_json: str,
        values: dict[str, Any],
    ) -> str:
        """The pod-spec-patch of one container task with these input parameter values, as JSON text."""
        key = (id(task), id(comp), compact(values))
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        in_defs = (comp.get("inputDefinitions") or {}).get("artifacts") or {}
        out_defs = comp.get("outputDefinitions") or {}
        pipeline_name = self.ir.pipeline_name
        root = f"{PIPELINE_ROOT}/{pipeline_name}/{RUN_ID}/{task_name}/{RUN_ID}"
        executor_input = {
            "inputs": {
                "parameterValues": values,
                "artifacts": {n: self._artifact(task_name, n, s, False) for n, s in in_defs.items()},
            },
            "outputs": {
                "parameters": {n: {"outputFile": f"/tmp/kfp/outputs/{n}"} for n in out_defs.get("parameters") or {}},
                "artifacts": {
                    n: self._artifact(task_name, n, s, True) for n, s in (out_defs.get("artifacts") or {}).items()
                },
                "outputFile": root.replace("minio://", "/minio/") + "/output_metadata.json",
            },
        }
        command = ["/kfp-launcher/launch", "--pipeline_name", pipeline_name, "--run_id", RUN_ID]
        command += ["--execution_id", EXECUTION_ID, "--executor_input", compact(executor_input)]
        command += ["--component_spec", component_json, "--pod_name", "$(KFP_POD_NAME)", "--pod_uid", "$(KFP_POD_UID)"]
        for flag, value in KFP_SERVER_ARGS:
            command += [flag, value]
        command.append("--")
        main: dict[str, Any] = {
            "args": [str(a) for a in (container.get("command") or []) + (container.get("args") or [])],
            "command": command,
            "image": container.get("image", ""),
            "name": "main",
            "resources": _resources(container.get("resources") or {}),
        }
        if container.get("env"):
            main["env"] = [{"name": e.get("name", ""), "value": e.get("value", "")} for e in container["env"]]
        pod_spec: dict[str, Any] = {"containers": [main]}
        if k8s_json:  # volumes, secrets, node selector, tolerations... applied from the kubernetes config
            pod_spec["kubernetesConfig"] = json.loads(k8s_json)
        text = compact(pod_spec)
        self._cache[key] = text
        return text

    def _artifact(self, task_name: str, name: str, spec: dict, output: bool) -> dict:
        uri = f"{PIPELINE_ROOT}/{self.ir.pipeline_name}/{RUN_ID}/{task_name}/{RUN_ID}/{name}"
        artifact: dict[str, Any] = {"name": name, "type": spec.get("artifactType") or {}, "uri": uri}
        if not output:
            artifact["artifactId"] = EXECUTION_ID
            artifact["metadata"] = {"display_name": name}
        elif spec.get("metadata"):
            artifact["metadata"] = spec["metadata"]
        return {"artifacts": [artifact]}


def _resources(res: dict) -> dict:
    """The container's resources as Kubernetes limits and requests (the accelerator as a limit)."""
    limits: dict[str, str] = {}
    requests: dict[str, str] = {}
    for field, target, name in (
        ("resourceCpuLimit", limits, "cpu"),
        ("resourceMemoryLimit", limits, "memory"),
        ("resourceCpuRequest", requests, "cpu"),
        ("resourceMemoryRequest", requests, "memory"),
    ):
        if res.get(field):
            target[name] = str(res[field])
    accelerator = res.get("accelerator") or {}
    if accelerator.get("resourceType") or accelerator.get("type"):
        limits[str(accelerator.get("resourceType") or accelerator.get("type"))] = str(
            accelerator.get("resourceCount") or accelerator.get("count") or 1
        )
    out: dict[str, dict] = {}
    if limits:
        out["limits"] = limits
    if requests:
        out["requests"] = requests
    return out
