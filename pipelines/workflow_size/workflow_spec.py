"""The Workflow's spec (and metadata) as KFP 2.17's Argo compiler writes it and the API server submits it: the
workflow arguments and DAG templates rendered from the IR, the fixed system templates counted by their measured
sizes (kubeflow/pipelines backend/src/v2/compiler/argocompiler at 2.17.0)."""

from __future__ import annotations

from typing import Any

from pipelines.workflow_size.go_json import compact, size
from pipelines.workflow_size.pipeline_ir import PipelineIR
from pipelines.workflow_size.upstream_constants import (
    CONTAINER_DRIVER_TEMPLATE_BYTES,
    CONTAINER_EXECUTOR_TEMPLATE_BYTES,
    CONTAINER_IMPL_TEMPLATE_BYTES,
    DAG_DRIVER_TEMPLATE_BYTES,
    DUMMY_IMAGES,
    IMPORTER_TEMPLATE_BYTES,
    IMPORTER_WORKSPACE_TEMPLATE_BYTES,
    ISTIO_ANNOTATION_BYTES,
    METADATA_EXECUTOR_ENTRY_BYTES,
    METADATA_IMPL_ENTRY_BYTES,
    NAMESPACE,
    RETRY_EXECUTOR_TEMPLATE_BYTES,
    RETRY_IMPL_TEMPLATE_BYTES,
    RUN_ID,
    RUN_ID_EXTRA_BYTES,
    TIMESTAMP,
    WORKFLOW_DEFAULTS,
    WORKFLOW_NAME_SUFFIX,
)

_ISTIO = {"sidecar.istio.io/inject": "false"}


def param(name: str, value: str | None = None, default: str | None = None) -> dict[str, str]:
    """An Argo parameter as Go marshals it (name, then default and value when set)."""
    p = {"name": name}
    if default is not None:
        p["default"] = default
    if value is not None:
        p["value"] = value
    return p


def _depends(deps: list[str]) -> str:
    return " && ".join(f"{d}.Succeeded" for d in deps)


def executor_template(ir: PipelineIR, comp: dict, retry: bool) -> tuple[str, int, int]:
    """(name, bytes, impl template bytes) of the executor template of a container component: container.go
    addContainerExecutorTemplate names it after its pod metadata entries and retry policy."""
    meta = ir.pod_metadata_spec(comp)
    n_ann, n_lab = len(meta.get("annotations") or {}), len(meta.get("labels") or {})
    prefix = "retry-" if retry else ""
    if meta:
        prefix = f"metadata-{n_ann}-{n_lab}-{prefix}"
    entries = n_ann + n_lab
    base_exec = RETRY_EXECUTOR_TEMPLATE_BYTES if retry else CONTAINER_EXECUTOR_TEMPLATE_BYTES
    base_impl = RETRY_IMPL_TEMPLATE_BYTES if retry else CONTAINER_IMPL_TEMPLATE_BYTES
    return (
        f"{prefix}system-container-executor",
        base_exec + METADATA_EXECUTOR_ENTRY_BYTES * entries,
        base_impl + METADATA_IMPL_ENTRY_BYTES * entries,
    )


class WorkflowSpec:
    """The spec of one pipeline's Workflow: `bytes` (metadata included) and the workflow arguments."""

    def __init__(self, ir: PipelineIR) -> None:
        self.ir = ir
        self.arguments: dict[str, str] = {}  # workflow argument name -> value
        self._system: dict[str, int] = {}  # system template name -> bytes
        self._templates: list[dict] = []
        self.bytes = self._measure()

    def component_json(self, name: str) -> str:
        """What `{{workflow.parameters.components-<key>}}` resolves to (the first component with that key)."""
        ir = self.ir
        return self.arguments.get(f"components-{ir.component_key(name)}") or ir.json(ir.components[name])

    def _measure(self) -> int:
        self._visit("root", set())
        self._entrypoint()
        pn = len(self.ir.pipeline_name.encode()) + len(self.ir.display_name.encode())
        system = 0
        for name, nbytes in self._system.items():
            per_run = pn + RUN_ID_EXTRA_BYTES if "driver" in name or "importer" in name else 0
            system += nbytes + per_run + ISTIO_ANNOTATION_BYTES + 1  # +1: the comma in the templates list
        workflow = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": self._metadata(),
            "spec": {
                "arguments": {"parameters": [{"name": k, "value": v} for k, v in self.arguments.items()]},
                "entrypoint": "entrypoint",
                "podMetadata": {
                    "annotations": {"pipelines.kubeflow.org/v2_component": "true"},
                    "labels": {"pipeline/runid": RUN_ID, "pipelines.kubeflow.org/v2_component": "true"},
                },
                "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                "serviceAccountName": "pipeline-runner",
                "templates": self._templates,
                **WORKFLOW_DEFAULTS,
            },
        }
        return size(workflow) + system

    def _metadata(self) -> dict:
        labels = {
            "pipeline/persistedFinalState": "true",
            "pipeline/runid": RUN_ID,
            "workflows.argoproj.io/completed": "true",
            "workflows.argoproj.io/phase": "Succeeded",
        }
        annotations = {
            "pipelines.kubeflow.org/run_name": self.ir.display_name,
            "workflows.argoproj.io/pod-name-format": "v2",
        }

        def managed(manager: str, fields: dict) -> dict:
            return {
                "apiVersion": "argoproj.io/v1alpha1",
                "fieldsType": "FieldsV1",
                "fieldsV1": fields,
                "manager": manager,
                "operation": "Update",
                "time": TIMESTAMP,
            }

        return {
            "annotations": annotations,
            "creationTimestamp": TIMESTAMP,
            "generateName": self.ir.wf_name[: -len(WORKFLOW_NAME_SUFFIX)],
            "generation": 42,
            "labels": labels,
            "managedFields": [
                managed(
                    "apiserver",
                    {
                        "f:metadata": {
                            "f:annotations": {".": {}, "f:pipelines.kubeflow.org/run_name": {}},
                            "f:generateName": {},
                            "f:labels": {".": {}, "f:pipeline/persistedFinalState": {}, "f:pipeline/runid": {}},
                        },
                        "f:spec": {},
                    },
                ),
                managed(
                    "workflow-controller",
                    {
                        "f:metadata": {
                            "f:annotations": {"f:workflows.argoproj.io/pod-name-format": {}},
                            "f:labels": {"f:workflows.argoproj.io/completed": {}, "f:workflows.argoproj.io/phase": {}},
                        },
                        "f:status": {},
                    },
                ),
            ],
            "name": self.ir.wf_name,
            "namespace": NAMESPACE,
            "resourceVersion": "123456789",
            "uid": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
        }

    def _save_argument(self, name: str, value: str) -> None:
        self.arguments.setdefault(name, value)

    def _visit(self, name: str, visited: set[str]) -> None:
        """Compile one component (each once): its workflow arguments and, for a DAG, its templates."""
        if name in visited:
            return
        visited.add(name)
        ir = self.ir
        comp = ir.components[name]
        executor = ir.executor(comp)
        if "dag" not in comp:
            key = ir.component_key(name)
            self._save_argument(f"components-{key}", ir.json(comp))
            impl = executor.get("container") or executor.get("importer")
            if impl is not None:
                self._save_argument(f"implementations-{key}", ir.json(impl))
            k8s = ir.k8s_executor(comp)
            if k8s is not None:
                self._save_argument(f"kubernetes-{name}", ir.json(k8s))
            return
        tasks = ir.dag_tasks(name)
        for task_name in sorted(tasks):
            self._visit(tasks[task_name]["componentRef"]["name"], visited)
        self._save_argument(f"components-{name}", ir.json(comp))
        exit_templates: dict[str, str] = {}
        for task_name in sorted(tasks):
            task = tasks[task_name]
            if not ir.is_exit(task):
                continue
            hook = f"exit-hook-{name}-{task_name}"
            for dep in task.get("dependentTasks") or []:
                exit_templates[dep] = hook
            self._templates.append(self._dag_template(hook, ["parent-dag-id"], self._dag_tasks(task_name, task, "")))
        dag_tasks: list[dict] = []
        for task_name in sorted(tasks):
            if not ir.is_exit(tasks[task_name]):
                dag_tasks += self._dag_tasks(task_name, tasks[task_name], exit_templates.get(task_name, ""))
        self._templates.append(self._dag_template(name, ["parent-dag-id"], dag_tasks))

    def _entrypoint(self) -> None:
        self._system["system-dag-driver"] = DAG_DRIVER_TEMPLATE_BYTES
        driver = {
            "arguments": {
                "parameters": [
                    param("component", "{{workflow.parameters.components-root}}"),
                    param("runtime-config", compact(self.ir.runtime_config())),
                    param("driver-type", "ROOT_DAG"),
                ]
            },
            "name": "root-driver",
            "template": "system-dag-driver",
        }
        root = {
            "arguments": {
                "parameters": [
                    param("parent-dag-id", "{{tasks.root-driver.outputs.parameters.execution-id}}"),
                    param("condition", ""),
                ]
            },
            "depends": "root-driver.Succeeded",
            "name": "root",
            "template": "root",
        }
        self._templates.append(self._dag_template("entrypoint", [], [driver, root]))

    @staticmethod
    def _dag_template(name: str, inputs: list[str], tasks: list[dict], parallelism: int = 0) -> dict:
        template: dict[str, Any] = {
            "dag": {"tasks": tasks},
            "inputs": {"parameters": [{"name": p} for p in inputs]} if inputs else {},
            "metadata": {"annotations": dict(_ISTIO)},
            "name": name,
            "outputs": {},
        }
        if parallelism > 0:
            template["parallelism"] = parallelism
        return template

    def _dag_tasks(self, name: str, task: dict, exit_template: str, iteration: bool = False) -> list[dict]:
        """The Argo DAG tasks of one IR task (dag.go `task`)."""
        ir = self.ir
        comp_name = task["componentRef"]["name"]
        comp = ir.components[comp_name]
        task_json = ir.json(task)
        component_ph = f"{{{{workflow.parameters.components-{ir.component_key(comp_name)}}}}}"
        deps = [] if iteration or ir.is_exit(task) else list(task.get("dependentTasks") or [])
        if ir.is_iterator(task) and not iteration:
            return self._iterator_tasks(name, task, comp_name, component_ph, deps)
        parent = "{{inputs.parameters.parent-dag-id}}"
        hooks = (
            {"exit": {"arguments": {"parameters": [param("parent-dag-id", parent)]}, "template": exit_template}}
            if exit_template
            else None
        )
        driver_name = f"{name}-driver"
        cond = ir.has_condition(task)
        if "dag" in comp:
            params = [param("component", component_ph)]
            if iteration:
                params.append(param("iteration-index", "{{inputs.parameters.iteration-index}}"))
            params += [param("parent-dag-id", parent), param("task", task_json), param("task-name", name)]
            driver: dict[str, Any] = {
                "arguments": {"parameters": params},
                "name": driver_name,
                "template": "system-dag-driver",
            }
            if deps:
                driver["depends"] = _depends(deps)
            out = f"{{{{tasks.{driver_name}.outputs.parameters."
            dag: dict[str, Any] = {
                "arguments": {
                    "parameters": [
                        param("parent-dag-id", out + "execution-id}}"),
                        param("condition", out + "condition}}"),
                    ]
                },
                "depends": f"{driver_name}.Succeeded",
                "name": name,
                "template": comp_name,
            }
            if cond:
                dag["when"] = out + "condition}} != false"
            if hooks:
                dag["hooks"] = hooks
            self._system["system-dag-driver"] = DAG_DRIVER_TEMPLATE_BYTES
            return [driver, dag]
        executor = ir.executor(comp)
        if "importer" in executor:
            workspace = bool(executor["importer"].get("downloadToWorkspace"))
            template = "system-importer-workspace" if workspace else "system-importer"
            self._system[template] = IMPORTER_WORKSPACE_TEMPLATE_BYTES if workspace else IMPORTER_TEMPLATE_BYTES
            key = ir.component_key(comp_name)
            params = [
                param("task", task_json),
                param("component", component_ph),
                param("importer", f"{{{{workflow.parameters.implementations-{key}}}}}"),
                param("parent-dag-id", parent),
            ]
            return [{"arguments": {"parameters": params}, "name": name, "template": template}]
        container = executor.get("container") or {}
        key = ir.component_key(comp_name)
        params = [
            param("component", component_ph),
            param("task", task_json),
            param("container", f"{{{{workflow.parameters.implementations-{key}}}}}"),
            param("task-name", name),
            param("parent-dag-id", parent),
        ]
        if iteration:
            params.append(param("iteration-index", "{{inputs.parameters.iteration-index}}"))
        if ir.k8s_executor(comp) is not None:
            params.append(param("kubernetes-config", f"{{{{workflow.parameters.kubernetes-{comp_name}}}}}"))
        driver = {"arguments": {"parameters": params}, "name": driver_name, "template": "system-container-driver"}
        if deps:
            driver["depends"] = _depends(deps)
        self._system["system-container-driver"] = CONTAINER_DRIVER_TEMPLATE_BYTES
        if container.get("image") in DUMMY_IMAGES:
            driver["name"] = name
            return [driver]
        out = f"{{{{tasks.{driver_name}.outputs.parameters."
        exec_params = [
            param("pod-spec-patch", out + "pod-spec-patch}}"),
            param("cached-decision", out + "cached-decision}}", default="false"),
        ]
        for i, (key_, value) in enumerate(ir.pod_metadata(comp).items(), start=1):
            exec_params += [param(f"pod-metadata-key-{i}", key_), param(f"pod-metadata-val-{i}", value)]
        retry = task.get("retryPolicy")
        if retry:
            exec_params += [param(f"retry-{k}", str(v)) for k, v in sorted(retry.items())]
        executor_task: dict[str, Any] = {
            "arguments": {"parameters": exec_params},
            "depends": f"{driver_name}.Succeeded",
            "name": name,
            "template": self._executor_template(comp, bool(retry)),
        }
        if cond:
            executor_task["when"] = out + "condition}} != false"
        if hooks:
            executor_task["hooks"] = hooks
        return [driver, executor_task]

    def _executor_template(self, comp: dict, retry: bool) -> str:
        """Name of the executor template (and register the executor/impl pair it comes with)."""
        name, executor_bytes, impl_bytes = executor_template(self.ir, comp, retry)
        if name not in self._system:
            self._system[name] = executor_bytes
            self._system[name.replace("-executor", "-impl")] = impl_bytes
        return name

    def _iterator_tasks(self, name: str, task: dict, comp_name: str, component_ph: str, deps: list[str]) -> list:
        task_json = self.ir.json(task)
        parent = "{{inputs.parameters.parent-dag-id}}"
        driver = {
            "arguments": {
                "parameters": [
                    param("component", component_ph),
                    param("parent-dag-id", parent),
                    param("task", task_json),
                    param("task-name", name),
                ]
            },
            "name": "iteration-driver",
            "template": "system-dag-driver",
        }
        out = "{{tasks.iteration-driver.outputs.parameters."
        iterations: dict[str, Any] = {
            "arguments": {
                "parameters": [param("parent-dag-id", out + "execution-id}}"), param("iteration-index", "{{item}}")]
            },
            "depends": "iteration-driver.Succeeded",
            "name": "iteration-iterations",
            "template": f"{comp_name}-iteration",
            "withSequence": {"count": out + "iteration-count}}"},
        }
        if self.ir.has_condition(task):
            iterations["when"] = out + "condition}} != false"
        item_tasks = self._dag_tasks("iteration-item", task, "", iteration=True)
        # the iteration-item tasks resolve task-name to the ParallelFor task's name (dag.go taskInputs.taskName)
        for t in item_tasks:
            for p in t["arguments"]["parameters"]:
                if p["name"] == "task-name":
                    p["value"] = name
        self._templates.append(
            self._dag_template(f"{comp_name}-iteration", ["parent-dag-id", "iteration-index"], item_tasks)
        )
        limit = int((task.get("iteratorPolicy") or {}).get("parallelismLimit") or 0)
        self._templates.append(
            self._dag_template(f"{comp_name}-{name}-iterator", ["parent-dag-id"], [driver, iterations], limit)
        )
        self._system["system-dag-driver"] = DAG_DRIVER_TEMPLATE_BYTES
        loop: dict[str, Any] = {
            "arguments": {"parameters": [param("parent-dag-id", parent)]},
            "name": name,
            "template": f"{comp_name}-{name}-iterator",
        }
        if deps:
            loop["depends"] = _depends(deps)
        return [loop]
