"""How big a run's Argo Workflow gets: an estimate, from the compiled KFP v2 package, of the one Kubernetes
object (spec + status) KFP 2.17 on Argo v4.0.5 keeps per run, at the end of the run when `status.nodes` holds
every node that ran. Argo measures `len(json.Marshal(wf))` against 1 MiB (workflow/packer/packer.go); above
that it gzips + base64s `status.nodes` into `status.compressedNodes` and errors the run only if the object is
still over 1 MiB (KFP configures no offloading). etcd refuses any write over 1.5 MiB.

Method. Bytes are compact JSON as Go writes it (`<`, `>`, `&` as `\\u003c`...), computed from the IR.

Spec (`spec_bytes`, metadata included). The compiler (kubeflow/pipelines backend/src/v2/compiler/argocompiler
at 2.17.0) visits each component once (compiler/visitor.go `Accept`): a container/importer component becomes
the workflow arguments `components-<sha256(container)>` and `implementations-<sha256>` (argo.go
`saveProtoToArguments`, shared by equal containers); a DAG component (root, sub-pipeline, condition, loop
body, exit handler) becomes `components-<name>` and one DAG template in which every task carries its task
JSON: a container task is a driver task plus an executor task (container.go `containerDriverTask`,
`containerExecutorTask`), a sub-DAG task a DAG driver task plus a DAG task (dag.go `dagDriverTask`,
`dagTask`), a ParallelFor adds `-iterator` and `-iteration` templates with the task JSON twice more (dag.go
`iteratorTask`, `iterationItemTask`), an exit task an `exit-hook-` template. These templates are rendered and
measured; the fixed system templates are the byte constants below, measured on the upstream golden files
(test_data/compiled-workflows). So a sub-pipeline used N times is one template plus N task pairs in its parent.
The API server adds a run-id label, a run-name annotation and an Istio annotation per template
(apiserver/template/v2_template.go `RunWorkflow`); the controller merges KFP's `workflowDefaults`.

Status (`status_bytes`). The IR is walked as Argo runs it: every sub-DAG invocation and every ParallelFor
iteration (`items.raw`, else `default_parallel_items`) again, every condition true, nothing cached. A
container task is a driver Pod, an executor DAG node and its `executor` Pod; a sub-DAG a DAG driver Pod and a
DAG node; a ParallelFor an iterator DAG node, a driver, a TaskGroup, and per iteration a DAG node, an item
driver and the body. KFP 2.17's Argo config (manifests/kustomize/third-party/argo/base/
workflow-controller-configmap-patch.yaml) gives every template a retryStrategy via `templateDefaults`, so each
node is a `Retry` node plus its `(0)` attempt, both holding the inputs and, for pods, the outputs
(controller/operator.go `executeTemplate`, `processNodeRetries`); `argo_template_retries=False` drops that.
Each node is rendered with the fields Argo sets and its resolved inputs: a driver holds the component, task and
container JSON, and its `pod-spec-patch` output (executor input, component JSON, user command with the inlined
source: driver/driver.go `initPodSpecPatch`) is passed on to the executor DAG node and the executor Pod.
Fixed fields cost ~0.3-0.5 KB a node; a container task is 6 nodes (3 without retries) holding 6 copies of
its pod-spec-patch (3) and 2 of its component, task and container JSON (1).

Error margin. Spec: within 1 % of the 146 upstream golden files (templates and arguments; -7 % when a CA
bundle is configured). Status: the structure follows the source, the values do not exist before the run
(parameter values passed between tasks, artifact metadata, names, ids, host names: representative constants
below); count -10 %/+20 % for a clean run, more if attempts fail and retry (each retry adds nodes).
Worst case counts every If/Elif/Else branch. `compressed_total_bytes` gzips the rendered nodes.
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict

ARGO_OBJECT_LIMIT = 1024 * 1024  # argo-workflows workflow/packer/packer.go getMaxWorkflowSize (MAX_WORKFLOW_SIZE)
ETCD_REQUEST_LIMIT = 1536 * 1024  # etcd --max-request-bytes default (1.5 MiB), the hard cap on any object write

# ---- fixed templates of the spec (compact JSON bytes, measured on kubeflow/pipelines test_data/compiled-workflows
#      at tag 2.17.0; driver and importer templates also carry the pipeline name, added separately) ----
CONTAINER_DRIVER_TEMPLATE_BYTES = 2253  # argocompiler/container.go addContainerDriverTemplate
DAG_DRIVER_TEMPLATE_BYTES = 2065  # argocompiler/dag.go addDAGDriverTemplate
CONTAINER_EXECUTOR_TEMPLATE_BYTES = 390  # argocompiler/container.go addContainerExecutorTemplate (the DAG wrapper)
CONTAINER_IMPL_TEMPLATE_BYTES = 1917  # argocompiler/container.go addContainerExecutorTemplate (the Pod template)
RETRY_EXECUTOR_TEMPLATE_BYTES = 935  # container.go addContainerExecutorTemplate, retry-system-container-executor
RETRY_IMPL_TEMPLATE_BYTES = 2358  # container.go addContainerExecutorTemplate, retry-system-container-impl
METADATA_EXECUTOR_ENTRY_BYTES = 280  # container.go getPodMetadataParameters: per pod label/annotation, executor
METADATA_IMPL_ENTRY_BYTES = 185  # container.go extendPodMetadata: per pod label/annotation, impl template
IMPORTER_TEMPLATE_BYTES = 1349  # argocompiler/importer.go addImporterTemplate
IMPORTER_WORKSPACE_TEMPLATE_BYTES = 1539  # importer.go addImporterTemplate with downloadToWorkspace
ISTIO_ANNOTATION_BYTES = 34  # apiserver/template/v2_template.go SetAnnotationsToAllTemplatesIfKeyNotExist
RUN_ID_EXTRA_BYTES = 20  # v2_template.go ReplaceUID: "{{workflow.uid}}" (16) -> run UUID (36), once per driver

# ---- representative run-time values (what a node's fields hold; their lengths are what counts) ----
WORKFLOW_NAME_SUFFIX = "x7k2q"  # metadata.generateName "<pipeline name>-" + 5 random chars: argo.go Compile
RUN_ID = "3f2b9c1e-8d4a-4b6f-9e7c-1a2b3c4d5e6f"  # KFP run UUID: label pipeline/runid, --run_id, artifact URIs
NAMESPACE = "kubeflow-user-example-com"  # profile namespace of a multi-user install (log keys, artifact repo ref)
TIMESTAMP = "2026-01-01T00:00:00Z"  # node startedAt / finishedAt: argo-workflows workflow_types.go NodeStatus
HOST_NODE_NAME = "gke-star-cluster-gpu-pool-3f2b9c1e-x7k2"  # pod node hostNodeName: operator.go assessNodeStatus
RESOURCES_DURATION = {"cpu": 123, "memory": 4567}  # pod node resourcesDuration: operator.go assessNodeStatus
EXECUTION_ID = "12345"  # MLMD execution id: DAG driver execution-id output, launcher --execution_id
PIPELINE_ROOT = "minio://mlpipeline/v2/artifacts"  # KFP default pipeline root, base of every artifact URI
LOG_KEY_FORMAT = "private-artifacts/{ns}/{wf}/2026/01/01/{pod}/main.log"  # main-logs key: KFP argo configmap patch
UNKNOWN_PARAMETER_VALUE = "x" * 16  # a parameter value known only at run time (a task output, an unset input)
KFP_SERVER_ARGS = (  # launcher flags in the pod-spec-patch: driver/driver.go initPodSpecPatch
    ("--ml_pipeline_server_address", "ml-pipeline.kubeflow.svc.cluster.local"),
    ("--ml_pipeline_server_port", "8887"),
    ("--mlmd_server_address", "metadata-grpc-service.kubeflow.svc.cluster.local"),
    ("--mlmd_server_port", "8080"),
    ("--publish_logs", "false"),
)
ARTIFACT_REPOSITORY = {  # status.artifactRepositoryRef.artifactRepository: KFP argo configmap patch (archiveLogs)
    "archiveLogs": True,
    "s3": {
        "endpoint": "seaweedfs.kubeflow.svc:9000",
        "bucket": "mlpipeline",
        "insecure": True,
        "keyFormat": "private-artifacts/{{workflow.namespace}}/{{workflow.name}}/{{workflow.creationTimestamp.Y}}/"
        "{{workflow.creationTimestamp.m}}/{{workflow.creationTimestamp.d}}/{{pod.name}}",
        "accessKeySecret": {"name": "mlpipeline-minio-artifact", "key": "accesskey"},
        "secretKeySecret": {"name": "mlpipeline-minio-artifact", "key": "secretkey"},
    },
}
WORKFLOW_DEFAULTS = {  # merged into spec by the controller: KFP argo configmap patch workflowDefaults
    "ttlStrategy": {"secondsAfterCompletion": 3600, "secondsAfterSuccess": 3600, "secondsAfterFailure": 3600},
    "templateDefaults": {"retryStrategy": {"limit": "2", "retryPolicy": "OnError"}},
}

_DUMMY_IMAGES = {"argostub/createpvc", "argostub/deletepvc"}  # argo.go dummyImages: driver only, no executor
_EXIT_STRATEGY = "ALL_UPSTREAM_TASKS_COMPLETED"
_ISTIO = {"sidecar.istio.io/inject": "false"}
_HTML = re.compile(r"[<>&]")


class WorkflowEstimate(BaseModel):
    """Estimated size of a run's Argo Workflow object at the end of the run (compact JSON bytes)."""

    model_config = ConfigDict(frozen=True)

    package_bytes: int
    #: executor tasks that run (container and importer), every loop iteration and sub-DAG invocation counted
    tasks: int
    #: DAG invocations (root, every sub-pipeline / condition / exit handler / loop-iteration body)
    dag_nodes: int
    #: entries of status.nodes (Pod, DAG, Retry, TaskGroup)
    argo_nodes: int
    pods: int
    spec_bytes: int
    status_bytes: int
    total_bytes: int
    #: spec + status with status.nodes gzip+base64 as Argo stores them once the object passes 1 MiB
    compressed_total_bytes: int

    def fits(self, limit: int = ARGO_OBJECT_LIMIT, *, compressed: bool = False) -> bool:
        """True when the object stays within `limit` bytes (uncompressed, or as Argo stores it once compressed)."""
        return (self.compressed_total_bytes if compressed else self.total_bytes) <= limit


def estimate_workflow(
    package: str | bytes | Path | Mapping[str, Any] | list[Any],
    *,
    default_parallel_items: int = 1,
    argo_template_retries: bool = True,
) -> WorkflowEstimate:
    """Estimate the Argo Workflow size of one run of a compiled pipeline package.

    `package` is the YAML text (or a path to it) or the parsed document(s): the pipeline spec, optionally
    followed by the platform spec kfp-kubernetes writes. `default_parallel_items` is the iteration count of a
    ParallelFor whose items are known only at run time. `argo_template_retries` models the `templateDefaults`
    retryStrategy of KFP's Argo configuration (every node wrapped in a Retry node).
    """
    spec, platform, package_bytes = _load(package)
    model = _Model(spec, platform, max(0, default_parallel_items), argo_template_retries)
    spec_bytes = model.spec_bytes()
    status_bytes, compressed_status = model.status_bytes()
    return WorkflowEstimate(
        package_bytes=package_bytes,
        tasks=model.tasks,
        dag_nodes=model.dag_invocations,
        argo_nodes=len(model.nodes),
        pods=model.pods,
        spec_bytes=spec_bytes,
        status_bytes=status_bytes,
        total_bytes=spec_bytes + status_bytes,
        compressed_total_bytes=spec_bytes + compressed_status,
    )


# ---------------------------------------------------------------------------------------------------- loading


def _load(package: str | bytes | Path | Mapping[str, Any] | list[Any]) -> tuple[dict, dict, int]:
    if isinstance(package, Path):
        package = package.read_bytes()
    if isinstance(package, bytes):
        package = package.decode("utf-8")
    if isinstance(package, str):
        text = package
        docs = [d for d in yaml.safe_load_all(text) if d]
    else:
        docs = [package] if isinstance(package, Mapping) else [d for d in package if d]
        text = yaml.safe_dump_all([dict(d) for d in docs], sort_keys=False)
    if not docs or not isinstance(docs[0], Mapping):
        raise ValueError("not a compiled KFP pipeline: expected a YAML mapping with root and components")
    first = dict(docs[0])
    if "pipelineSpec" in first:  # a PipelineJob wrapper
        spec, platform = dict(first["pipelineSpec"]), dict(first.get("platformSpec") or {})
    else:
        spec = first
        platform = next((dict(d) for d in docs[1:] if isinstance(d, Mapping) and "platforms" in d), {})
    if "root" not in spec:
        raise ValueError("not a compiled KFP pipeline: no `root` in the pipeline spec")
    return spec, platform, len(text.encode("utf-8"))


# ---------------------------------------------------------------------------------------------------- sizes


def _compact(value: Any) -> str:
    """Go's encoding/json output for a decoded JSON value (sorted keys, no spaces); HTML escapes counted apart."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _nbytes(text: str) -> int:
    """Bytes of a compact JSON text as Go writes it: UTF-8, with `<`, `>`, `&` escaped to 6 bytes each."""
    if text.isascii():
        return len(text) + 5 * len(_HTML.findall(text)) if ("<" in text or ">" in text or "&" in text) else len(text)
    return len(text.encode("utf-8")) + 5 * len(_HTML.findall(text))


def _size(value: Any) -> int:
    return _nbytes(_compact(value))


def _fnv32a(text: str) -> int:
    h = 0x811C9DC5
    for byte in text.encode("utf-8"):
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def _param(name: str, value: str | None = None, default: str | None = None) -> dict[str, str]:
    p = {"name": name}
    if default is not None:
        p["default"] = default
    if value is not None:
        p["value"] = value
    return p


def _depends(deps: Iterable[str]) -> str:
    return " && ".join(f"{d}.Succeeded" for d in deps)


# ---------------------------------------------------------------------------------------------------- model


class _Model:
    def __init__(self, spec: dict, platform: dict, default_items: int, retries: bool) -> None:
        self.spec = spec
        self.components: dict[str, dict] = dict(spec.get("components") or {})
        self.components["root"] = spec["root"]
        self.executors: dict[str, dict] = dict((spec.get("deploymentSpec") or {}).get("executors") or {})
        k8s = ((platform.get("platforms") or {}).get("kubernetes") or {}) if platform else {}
        self.k8s_executors: dict[str, dict] = dict((k8s.get("deploymentSpec") or {}).get("executors") or {})
        self.pipeline_name = str((spec.get("pipelineInfo") or {}).get("name") or "pipeline")
        self.display_name = self.pipeline_name
        self.wf_name = f"{self.pipeline_name.split('/')[-1]}-{WORKFLOW_NAME_SUFFIX}"
        self.default_items = default_items
        self.retries = retries
        self.tasks = 0
        self.dag_invocations = 0
        self.pods = 0
        self.nodes: list[dict] = []
        self._arg_key: dict[str, str] = {}  # component name -> workflow argument key suffix
        self._arguments: dict[str, str] = {}  # workflow argument name -> value
        self._system: dict[str, int] = {}  # system template name -> bytes
        self._templates: list[dict] = []
        self._psp_cache: dict[tuple, str] = {}
        self._json_cache: dict[int, str] = {}

    # -- IR helpers ------------------------------------------------------------------------------------------

    def _json(self, obj: Any) -> str:
        key = id(obj)
        if key not in self._json_cache:
            self._json_cache[key] = _compact(obj)
        return self._json_cache[key]

    def _executor(self, comp: dict) -> dict:
        return self.executors.get(comp.get("executorLabel", ""), {})

    def _component_key(self, name: str) -> str:
        """The suffix of `components-…` / `implementations-…`: sha256 of the container, else the name."""
        if name not in self._arg_key:
            container = self._executor(self.components[name]).get("container")
            self._arg_key[name] = hashlib.sha256(_compact(container).encode()).hexdigest() if container else name
        return self._arg_key[name]

    def _component_json(self, name: str) -> str:
        """What `{{workflow.parameters.components-<key>}}` resolves to (the first component with that key)."""
        return self._arguments.get(f"components-{self._component_key(name)}") or self._json(self.components[name])

    @staticmethod
    def _is_exit(task: dict) -> bool:
        return (task.get("triggerPolicy") or {}).get("strategy") == _EXIT_STRATEGY

    @staticmethod
    def _is_iterator(task: dict) -> bool:
        return bool(task.get("parameterIterator") or task.get("artifactIterator"))

    @staticmethod
    def _condition(task: dict) -> bool:
        return bool((task.get("triggerPolicy") or {}).get("condition"))

    def _items(self, task: dict) -> tuple[int, Any]:
        """Iteration count of a ParallelFor and one representative item."""
        items = (task.get("parameterIterator") or {}).get("items") or {}
        raw = items.get("raw")
        if isinstance(raw, str):
            try:
                values = json.loads(raw)
            except ValueError:
                values = None
            if isinstance(values, list):
                return len(values), (values[0] if values else None)
        return self.default_items, UNKNOWN_PARAMETER_VALUE

    def _ordered(self, tasks: Mapping[str, dict]) -> list[str]:
        """Task names, dependencies first (ties by name, as the compiler sorts them)."""
        done: list[str] = []
        seen: set[str] = set()

        def visit(name: str, stack: frozenset[str]) -> None:
            if name in seen or name in stack:
                return
            for dep in sorted(tasks[name].get("dependentTasks") or []):
                if dep in tasks:
                    visit(dep, stack | {name})
            seen.add(name)
            done.append(name)

        for name in sorted(tasks):
            visit(name, frozenset())
        return done

    # -- spec ------------------------------------------------------------------------------------------------

    def spec_bytes(self) -> int:
        visited: set[str] = set()
        self._visit("root", visited)
        self._entrypoint()
        pn = len(self.pipeline_name.encode()) + len(self.display_name.encode())
        system = 0
        for name, size in self._system.items():
            per_run = pn + RUN_ID_EXTRA_BYTES if "driver" in name or "importer" in name else 0
            system += size + per_run + ISTIO_ANNOTATION_BYTES + 1  # +1: the comma in the templates list
        workflow = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": self._metadata(),
            "spec": {
                "arguments": {"parameters": [{"name": k, "value": v} for k, v in self._arguments.items()]},
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
        return _size(workflow) + system

    def _metadata(self) -> dict:
        labels = {
            "pipeline/persistedFinalState": "true",
            "pipeline/runid": RUN_ID,
            "workflows.argoproj.io/completed": "true",
            "workflows.argoproj.io/phase": "Succeeded",
        }
        annotations = {
            "pipelines.kubeflow.org/run_name": self.display_name,
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
            "generateName": self.wf_name[: -len(WORKFLOW_NAME_SUFFIX)],
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
            "name": self.wf_name,
            "namespace": NAMESPACE,
            "resourceVersion": "123456789",
            "uid": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
        }

    def _save_argument(self, name: str, value: str) -> None:
        self._arguments.setdefault(name, value)

    def _visit(self, name: str, visited: set[str]) -> None:
        """Compile one component (each once): its workflow arguments and, for a DAG, its templates."""
        if name in visited:
            return
        visited.add(name)
        comp = self.components[name]
        executor = self._executor(comp)
        if "dag" not in comp:
            key = self._component_key(name)
            self._save_argument(f"components-{key}", self._json(comp))
            impl = executor.get("container") or executor.get("importer")
            if impl is not None:
                self._save_argument(f"implementations-{key}", self._json(impl))
            k8s = self.k8s_executors.get(comp.get("executorLabel", ""))
            if k8s is not None:
                self._save_argument(f"kubernetes-{name}", self._json(k8s))
            return
        tasks: dict[str, dict] = (comp.get("dag") or {}).get("tasks") or {}
        for task_name in sorted(tasks):
            self._visit(tasks[task_name]["componentRef"]["name"], visited)
        self._save_argument(f"components-{name}", self._json(comp))
        exit_templates: dict[str, str] = {}
        for task_name in sorted(tasks):
            task = tasks[task_name]
            if not self._is_exit(task):
                continue
            hook = f"exit-hook-{name}-{task_name}"
            for dep in task.get("dependentTasks") or []:
                exit_templates[dep] = hook
            self._templates.append(self._dag_template(hook, ["parent-dag-id"], self._dag_tasks(task_name, task, "")))
        dag_tasks: list[dict] = []
        for task_name in sorted(tasks):
            if not self._is_exit(tasks[task_name]):
                dag_tasks += self._dag_tasks(task_name, tasks[task_name], exit_templates.get(task_name, ""))
        self._templates.append(self._dag_template(name, ["parent-dag-id"], dag_tasks))

    def _entrypoint(self) -> None:
        self._system["system-dag-driver"] = DAG_DRIVER_TEMPLATE_BYTES
        driver = {
            "arguments": {
                "parameters": [
                    _param("component", "{{workflow.parameters.components-root}}"),
                    _param("runtime-config", _compact(self._runtime_config())),
                    _param("driver-type", "ROOT_DAG"),
                ]
            },
            "name": "root-driver",
            "template": "system-dag-driver",
        }
        root = {
            "arguments": {
                "parameters": [
                    _param("parent-dag-id", "{{tasks.root-driver.outputs.parameters.execution-id}}"),
                    _param("condition", ""),
                ]
            },
            "depends": "root-driver.Succeeded",
            "name": "root",
            "template": "root",
        }
        self._templates.append(self._dag_template("entrypoint", [], [driver, root]))

    def _runtime_config(self) -> dict:
        params = ((self.spec["root"].get("inputDefinitions") or {}).get("parameters")) or {}
        values = {}
        for name, p in params.items():
            if "defaultValue" in p:
                values[name] = p["defaultValue"]
            elif p.get("isOptional"):
                values[name] = None
        return {"parameterValues": values} if values else {}

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
        comp_name = task["componentRef"]["name"]
        comp = self.components[comp_name]
        task_json = self._json(task)
        component_ph = f"{{{{workflow.parameters.components-{self._component_key(comp_name)}}}}}"
        deps = [] if iteration or self._is_exit(task) else list(task.get("dependentTasks") or [])
        if self._is_iterator(task) and not iteration:
            return self._iterator_tasks(name, task, comp_name, component_ph, deps)
        parent = "{{inputs.parameters.parent-dag-id}}"
        hooks = (
            {"exit": {"arguments": {"parameters": [_param("parent-dag-id", parent)]}, "template": exit_template}}
            if exit_template
            else None
        )
        driver_name = f"{name}-driver"
        cond = self._condition(task)
        if "dag" in comp:
            params = [_param("component", component_ph)]
            if iteration:
                params.append(_param("iteration-index", "{{inputs.parameters.iteration-index}}"))
            params += [_param("parent-dag-id", parent), _param("task", task_json), _param("task-name", name)]
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
                        _param("parent-dag-id", out + "execution-id}}"),
                        _param("condition", out + "condition}}"),
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
        executor = self._executor(comp)
        if "importer" in executor:
            workspace = bool(executor["importer"].get("downloadToWorkspace"))
            template = "system-importer-workspace" if workspace else "system-importer"
            self._system[template] = IMPORTER_WORKSPACE_TEMPLATE_BYTES if workspace else IMPORTER_TEMPLATE_BYTES
            key = self._component_key(comp_name)
            params = [
                _param("task", task_json),
                _param("component", component_ph),
                _param("importer", f"{{{{workflow.parameters.implementations-{key}}}}}"),
                _param("parent-dag-id", parent),
            ]
            return [{"arguments": {"parameters": params}, "name": name, "template": template}]
        container = executor.get("container") or {}
        key = self._component_key(comp_name)
        params = [
            _param("component", component_ph),
            _param("task", task_json),
            _param("container", f"{{{{workflow.parameters.implementations-{key}}}}}"),
            _param("task-name", name),
            _param("parent-dag-id", parent),
        ]
        if iteration:
            params.append(_param("iteration-index", "{{inputs.parameters.iteration-index}}"))
        k8s = self.k8s_executors.get(comp.get("executorLabel", ""))
        if k8s is not None:
            params.append(_param("kubernetes-config", f"{{{{workflow.parameters.kubernetes-{comp_name}}}}}"))
        driver = {"arguments": {"parameters": params}, "name": driver_name, "template": "system-container-driver"}
        if deps:
            driver["depends"] = _depends(deps)
        self._system["system-container-driver"] = CONTAINER_DRIVER_TEMPLATE_BYTES
        if container.get("image") in _DUMMY_IMAGES:
            driver["name"] = name
            return [driver]
        out = f"{{{{tasks.{driver_name}.outputs.parameters."
        exec_params = [
            _param("pod-spec-patch", out + "pod-spec-patch}}"),
            _param("cached-decision", out + "cached-decision}}", default="false"),
        ]
        for i, (key_, value) in enumerate(self._pod_metadata(comp).items(), start=1):
            exec_params += [_param(f"pod-metadata-key-{i}", key_), _param(f"pod-metadata-val-{i}", value)]
        retry = task.get("retryPolicy")
        if retry:
            exec_params += [_param(f"retry-{k}", str(v)) for k, v in sorted(retry.items())]
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

    def _pod_metadata(self, comp: dict) -> dict[str, str]:
        meta = (self.k8s_executors.get(comp.get("executorLabel", "")) or {}).get("podMetadata") or {}
        return {**(meta.get("annotations") or {}), **(meta.get("labels") or {})}

    def _executor_template(self, comp: dict, retry: bool) -> str:
        """Name of the executor template (and register the executor/impl pair it comes with)."""
        meta = (self.k8s_executors.get(comp.get("executorLabel", "")) or {}).get("podMetadata") or {}
        n_ann, n_lab = len(meta.get("annotations") or {}), len(meta.get("labels") or {})
        prefix = "retry-" if retry else ""
        if meta:
            prefix = f"metadata-{n_ann}-{n_lab}-{prefix}"
        name = f"{prefix}system-container-executor"
        if name not in self._system:
            entries = n_ann + n_lab
            base_exec = RETRY_EXECUTOR_TEMPLATE_BYTES if retry else CONTAINER_EXECUTOR_TEMPLATE_BYTES
            base_impl = RETRY_IMPL_TEMPLATE_BYTES if retry else CONTAINER_IMPL_TEMPLATE_BYTES
            self._system[name] = base_exec + METADATA_EXECUTOR_ENTRY_BYTES * entries
            self._system[f"{prefix}system-container-impl"] = base_impl + METADATA_IMPL_ENTRY_BYTES * entries
        return name

    def _iterator_tasks(self, name: str, task: dict, comp_name: str, component_ph: str, deps: list[str]) -> list:
        task_json = self._json(task)
        parent = "{{inputs.parameters.parent-dag-id}}"
        driver = {
            "arguments": {
                "parameters": [
                    _param("component", component_ph),
                    _param("parent-dag-id", parent),
                    _param("task", task_json),
                    _param("task-name", name),
                ]
            },
            "name": "iteration-driver",
            "template": "system-dag-driver",
        }
        out = "{{tasks.iteration-driver.outputs.parameters."
        iterations: dict[str, Any] = {
            "arguments": {
                "parameters": [_param("parent-dag-id", out + "execution-id}}"), _param("iteration-index", "{{item}}")]
            },
            "depends": "iteration-driver.Succeeded",
            "name": "iteration-iterations",
            "template": f"{comp_name}-iteration",
            "withSequence": {"count": out + "iteration-count}}"},
        }
        if self._condition(task):
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
            "arguments": {"parameters": [_param("parent-dag-id", parent)]},
            "name": name,
            "template": f"{comp_name}-{name}-iterator",
        }
        if deps:
            loop["depends"] = _depends(deps)
        return [loop]

    # -- status ----------------------------------------------------------------------------------------------

    def status_bytes(self) -> tuple[int, int]:
        """Run the IR as Argo would, render every node, and measure (plain, gzip+base64) status bytes."""
        self._run()
        completion = {n["id"]: True for n in self.nodes if n["type"] == "Pod"}
        top = {
            "artifactGCStatus": {"notSpecified": True},
            "artifactRepositoryRef": {
                "artifactRepository": ARTIFACT_REPOSITORY,
                "configMap": "artifact-repositories",
                "key": "default-v1",
                "namespace": NAMESPACE,
            },
            "conditions": [{"status": "False", "type": "PodRunning"}, {"status": "True", "type": "Completed"}],
            "finishedAt": TIMESTAMP,
            "phase": "Succeeded",
            "progress": f"{self.pods}/{self.pods}",
            "resourcesDuration": RESOURCES_DURATION,
            "startedAt": TIMESTAMP,
            "taskResultsCompletionStatus": completion,
        }
        top_bytes = _size(top)
        gzip = zlib.compressobj(6, zlib.DEFLATED, 31)
        nodes_bytes = 2  # {}
        compressed = 0
        for i, node in enumerate(self.nodes):
            text = ("," if i else "") + _compact(node["id"]) + ":" + _compact(node)
            nodes_bytes += _nbytes(text)
            compressed += len(gzip.compress(text.encode("utf-8")))
        compressed += len(gzip.flush()) + 2
        plain = top_bytes + len(',"nodes":') + nodes_bytes
        packed = top_bytes + len(',"compressedNodes":""') + 4 * ((compressed + 2) // 3)
        return plain, packed

    def _new_node(self, name: str, display: str, kind: str, template: str | None, boundary: str | None) -> dict:
        node_id = self.wf_name if name == self.wf_name else f"{self.wf_name}-{_fnv32a(name)}"
        node: dict[str, Any] = {
            "id": node_id,
            "name": name,
            "displayName": display,
            "type": kind,
            "templateScope": f"local/{self.wf_name}",
            "phase": "Succeeded",
            "startedAt": TIMESTAMP,
            "finishedAt": TIMESTAMP,
            "progress": "1/1",
        }
        if template:
            node["templateName"] = template
        if boundary:
            node["boundaryID"] = boundary
        self.nodes.append(node)
        return node

    @staticmethod
    def _link(parents: Iterable[dict], child: dict) -> None:
        for parent in parents:
            parent.setdefault("children", []).append(child["id"])

    def _exec(
        self,
        name: str,
        display: str,
        kind: str,
        template: str,
        boundary: str | None,
        parents: Iterable[dict],
        inputs: list[dict] | None = None,
        outputs: dict | None = None,
        force_retry: bool = False,
    ) -> tuple[dict, dict]:
        """A node that executes a template: (outer node, node that runs); a Retry node + `(0)` with retries."""
        parents = list(parents)
        outer = self._new_node(name, display, "Retry" if self.retries or force_retry else kind, template, boundary)
        self._link(parents, outer)
        if inputs:
            outer["inputs"] = {"parameters": inputs}
        run = outer
        if outer["type"] == "Retry":
            run = self._new_node(f"{name}(0)", f"{display}(0)", kind, template, boundary)
            run["nodeFlag"] = {"retried": True}
            if inputs:
                run["inputs"] = {"parameters": inputs}
            self._link([outer], run)
        if kind == "Pod":
            self.pods += 1
            pod_name = f"{self.wf_name}-{template}"[:62] + f"-{_fnv32a(run['name'])}"
            pod_outputs = dict(outputs or {})
            pod_outputs["artifacts"] = [
                {"name": "main-logs", "s3": {"key": LOG_KEY_FORMAT.format(ns=NAMESPACE, wf=self.wf_name, pod=pod_name)}}
            ]
            pod_outputs["exitCode"] = "0"
            run["outputs"] = pod_outputs
            run["resourcesDuration"] = RESOURCES_DURATION
            run["hostNodeName"] = HOST_NODE_NAME
            run["taskResultSynced"] = True
            if run is not outer:
                outer["outputs"] = pod_outputs  # operator.go: the Retry node takes its last child's outputs
        elif kind == "DAG":
            outer["outboundNodes"] = [run["id"]]
            if run is not outer:
                run["outboundNodes"] = [run["id"]]
        return outer, run

    def _run(self) -> None:
        wf = self.wf_name
        entry_outer, entry = self._exec(wf, wf, "DAG", "entrypoint", None, [])
        root_json = self._component_json("root")
        driver_outer, _ = self._dag_driver(
            f"{entry['name']}.root-driver",
            "root-driver",
            entry["id"],
            [entry],
            root_json,
            None,
            None,
            None,
            runtime_config=_compact(self._runtime_config()),
        )
        _, root = self._exec(
            f"{entry['name']}.root",
            "root",
            "DAG",
            "root",
            entry["id"],
            [driver_outer],
            [_param("parent-dag-id", EXECUTION_ID)],
        )
        self.dag_invocations += 1
        self._dag("root", root, self._root_scope())

    def _root_scope(self) -> dict[str, Any]:
        return dict(self._runtime_config().get("parameterValues") or {})

    def _dag_driver(
        self,
        name: str,
        display: str,
        boundary: str,
        parents: list[dict],
        component: str,
        task: str | None,
        task_name: str | None,
        iteration: int | None,
        runtime_config: str | None = None,
        iteration_count: int = 0,
    ) -> tuple[dict, dict]:
        inputs = [
            _param("component", component),
            _param("runtime-config", runtime_config or "", default=""),
            _param("task", task or "", default=""),
            _param("task-name", task_name or "", default=""),
            _param("parent-dag-id", EXECUTION_ID if task is not None else "0", default="0"),
            _param("iteration-index", str(iteration if iteration is not None else -1), default="-1"),
            _param("driver-type", "ROOT_DAG" if runtime_config is not None else "DAG", default="DAG"),
        ]
        outputs = {
            "parameters": [
                {"name": "execution-id", "value": EXECUTION_ID, "valueFrom": {"path": "/tmp/outputs/execution-id"}},
                {
                    "name": "iteration-count",
                    "value": str(iteration_count),
                    "valueFrom": {"default": "0", "path": "/tmp/outputs/iteration-count"},
                },
                {
                    "name": "condition",
                    "value": "true",
                    "valueFrom": {"default": "true", "path": "/tmp/outputs/condition"},
                },
            ]
        }
        return self._exec(name, display, "Pod", "system-dag-driver", boundary, parents, inputs, outputs)

    def _dag(self, comp_name: str, dag_node: dict, scope: dict[str, Any]) -> None:
        """Run the tasks of one DAG invocation under `dag_node` (the node that runs the DAG template)."""
        tasks: dict[str, dict] = (self.components[comp_name].get("dag") or {}).get("tasks") or {}
        by_task: dict[str, dict] = {}
        exits: list[str] = []
        for task_name in self._ordered(tasks):
            task = tasks[task_name]
            if self._is_exit(task):
                exits.append(task_name)
                continue
            deps = [by_task[d] for d in task.get("dependentTasks") or [] if d in by_task]
            parents = deps or [dag_node]
            if self._is_iterator(task):
                by_task[task_name] = self._iterate(task_name, task, comp_name, dag_node, parents, scope)
            else:
                by_task[task_name] = self._task(task_name, task_name, task, dag_node, parents, scope, None)
        for task_name in exits:
            task = tasks[task_name]
            for dep in task.get("dependentTasks") or []:
                upstream = by_task.get(dep)
                if upstream is None:
                    continue
                _, hook = self._exec(
                    f"{upstream['name']}.onExit",
                    "onExit",
                    "DAG",
                    f"exit-hook-{comp_name}-{task_name}",
                    dag_node["id"],
                    [upstream],
                    [_param("parent-dag-id", EXECUTION_ID)],
                )
                hook["nodeFlag"] = {"hooked": True}
                self._task(task_name, task_name, task, hook, [hook], scope, None)

    def _iterate(
        self, name: str, task: dict, comp_name: str, dag_node: dict, parents: list[dict], scope: dict[str, Any]
    ) -> dict:
        ref = task["componentRef"]["name"]
        count, item = self._items(task)
        outer, loop = self._exec(
            f"{dag_node['name']}.{name}",
            name,
            "DAG",
            f"{ref}-{name}-iterator",
            dag_node["id"],
            parents,
            [_param("parent-dag-id", EXECUTION_ID)],
        )
        task_json = self._json(task)
        driver_outer, _ = self._dag_driver(
            f"{loop['name']}.iteration-driver",
            "iteration-driver",
            loop["id"],
            [loop],
            self._component_json(ref),
            task_json,
            name,
            None,
            iteration_count=count,
        )
        group = self._new_node(
            f"{loop['name']}.iteration-iterations", "iteration-iterations", "TaskGroup", f"{ref}-iteration", loop["id"]
        )
        group["nodeFlag"] = {}
        self._link([driver_outer], group)
        item_input = (task.get("parameterIterator") or {}).get("itemInput")
        for i in range(count):
            _, iteration = self._exec(
                f"{group['name']}({i}:{i})",
                f"iteration-iterations({i}:{i})",
                "DAG",
                f"{ref}-iteration",
                loop["id"],
                [group],
                [_param("parent-dag-id", EXECUTION_ID), _param("iteration-index", str(i))],
            )
            inner_scope = dict(scope)
            if item_input:
                inner_scope[f"__item__{item_input}"] = item
            self._task("iteration-item", name, task, iteration, [iteration], inner_scope, i)
        return outer

    def _task(
        self,
        argo_name: str,
        task_name: str,
        task: dict,
        dag_node: dict,
        parents: list[dict],
        scope: dict[str, Any],
        iteration: int | None,
    ) -> dict:
        """One IR task (not the ParallelFor wrapper): its nodes; returns the node dependants hang from."""
        comp_name = task["componentRef"]["name"]
        comp = self.components[comp_name]
        task_json = self._json(task)
        component_json = self._component_json(comp_name)
        base = f"{dag_node['name']}.{argo_name}"
        if "dag" in comp:
            driver_outer, _ = self._dag_driver(
                f"{base}-driver",
                f"{argo_name}-driver",
                dag_node["id"],
                parents,
                component_json,
                task_json,
                task_name,
                iteration,
            )
            outer, sub = self._exec(
                base,
                argo_name,
                "DAG",
                comp_name,
                dag_node["id"],
                [driver_outer],
                [_param("parent-dag-id", EXECUTION_ID)],
            )
            self.dag_invocations += 1
            self._dag(comp_name, sub, self._child_scope(task, comp, scope))
            return outer
        executor = self._executor(comp)
        if "importer" in executor:
            self.tasks += 1
            importer = executor["importer"]
            template = "system-importer-workspace" if importer.get("downloadToWorkspace") else "system-importer"
            inputs = [
                _param("task", task_json),
                _param("component", component_json),
                _param("importer", self._json(importer)),
                _param("parent-dag-id", EXECUTION_ID),
            ]
            return self._exec(base, argo_name, "Pod", template, dag_node["id"], parents, inputs)[0]
        container = executor.get("container") or {}
        k8s = self.k8s_executors.get(comp.get("executorLabel", ""))
        k8s_json = self._json(k8s) if k8s is not None else ""
        driver_inputs = [
            _param("component", component_json),
            _param("task", task_json),
            _param("container", self._json(container)),
            _param("task-name", task_name),
            _param("parent-dag-id", EXECUTION_ID),
            _param("iteration-index", str(iteration if iteration is not None else -1), default="-1"),
            _param("kubernetes-config", k8s_json, default=""),
        ]
        dummy = container.get("image") in _DUMMY_IMAGES
        patch = "" if dummy else self._pod_spec_patch(task_name, task, comp, component_json, container, k8s_json, scope)
        driver_outputs = {
            "parameters": [
                {
                    "name": "pod-spec-patch",
                    "value": patch,
                    "valueFrom": {"default": "", "path": "/tmp/outputs/pod-spec-patch"},
                },
                {
                    "default": "false",
                    "name": "cached-decision",
                    "value": "false",
                    "valueFrom": {"default": "false", "path": "/tmp/outputs/cached-decision"},
                },
                {
                    "name": "condition",
                    "value": "true",
                    "valueFrom": {"default": "true", "path": "/tmp/outputs/condition"},
                },
            ]
        }
        self.tasks += 1
        if dummy:
            return self._exec(
                base,
                argo_name,
                "Pod",
                "system-container-driver",
                dag_node["id"],
                parents,
                driver_inputs,
                driver_outputs,
            )[0]
        driver_outer, _ = self._exec(
            f"{base}-driver",
            f"{argo_name}-driver",
            "Pod",
            "system-container-driver",
            dag_node["id"],
            parents,
            driver_inputs,
            driver_outputs,
        )
        retry = task.get("retryPolicy")
        extra = []
        for i, (key, value) in enumerate(self._pod_metadata(comp).items(), start=1):
            extra += [_param(f"pod-metadata-key-{i}", key), _param(f"pod-metadata-val-{i}", value)]
        extra += [_param(f"retry-{k}", str(v)) for k, v in sorted((retry or {}).items())]
        template = self._executor_template(comp, bool(retry))
        outer, wrapper = self._exec(
            base,
            argo_name,
            "DAG",
            template,
            dag_node["id"],
            [driver_outer],
            [_param("pod-spec-patch", patch), _param("cached-decision", "false", default="false"), *extra],
        )
        self._exec(
            f"{wrapper['name']}.executor",
            "executor",
            "Pod",
            template.replace("-executor", "-impl"),
            wrapper["id"],
            [wrapper],
            [_param("pod-spec-patch", patch), *extra],
            force_retry=bool(retry),
        )
        return outer

    # -- run-time values -------------------------------------------------------------------------------------

    def _value(self, spec: dict, scope: dict[str, Any]) -> Any:
        """The value of one task input parameter spec, as far as the IR knows it."""
        if "runtimeValue" in spec:
            return (spec["runtimeValue"] or {}).get("constant")
        name = spec.get("componentInputParameter")
        if name is not None:
            if f"__item__{name}" in scope:
                return scope[f"__item__{name}"]
            return scope.get(name, UNKNOWN_PARAMETER_VALUE)
        if "taskFinalStatus" in spec:
            return {
                "error": {},
                "pipelineJobResourceName": self.wf_name,
                "pipelineTaskName": "task",
                "state": "SUCCEEDED",
            }
        return UNKNOWN_PARAMETER_VALUE

    def _child_scope(self, task: dict, comp: dict, scope: dict[str, Any]) -> dict[str, Any]:
        values = {}
        for name, spec in ((task.get("inputs") or {}).get("parameters") or {}).items():
            values[name] = self._value(spec, scope)
        for name, p in ((comp.get("inputDefinitions") or {}).get("parameters") or {}).items():
            if name not in values and "defaultValue" in p:
                values[name] = p["defaultValue"]
        for key, value in scope.items():
            if key.startswith("__item__"):
                values.setdefault(key, value)
        return values

    def _artifact(self, task_name: str, name: str, spec: dict, output: bool) -> dict:
        uri = f"{PIPELINE_ROOT}/{self.pipeline_name}/{RUN_ID}/{task_name}/{RUN_ID}/{name}"
        artifact: dict[str, Any] = {"name": name, "type": spec.get("artifactType") or {}, "uri": uri}
        if not output:
            artifact["artifactId"] = EXECUTION_ID
            artifact["metadata"] = {"display_name": name}
        elif spec.get("metadata"):
            artifact["metadata"] = spec["metadata"]
        return {"artifacts": [artifact]}

    def _pod_spec_patch(
        self,
        task_name: str,
        task: dict,
        comp: dict,
        component_json: str,
        container: dict,
        k8s_json: str,
        scope: dict[str, Any],
    ) -> str:
        """The pod-spec-patch a container driver writes (driver/driver.go initPodSpecPatch), as JSON text."""
        inputs = (task.get("inputs") or {}).get("parameters") or {}
        values = {name: self._value(spec, scope) for name, spec in inputs.items()}
        for name, p in ((comp.get("inputDefinitions") or {}).get("parameters") or {}).items():
            if name not in values and "defaultValue" in p:
                values[name] = p["defaultValue"]
        key = (id(task), id(comp), _compact(values))
        cached = self._psp_cache.get(key)
        if cached is not None:
            return cached
        in_defs = (comp.get("inputDefinitions") or {}).get("artifacts") or {}
        out_defs = comp.get("outputDefinitions") or {}
        root = f"{PIPELINE_ROOT}/{self.pipeline_name}/{RUN_ID}/{task_name}/{RUN_ID}"
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
        command = ["/kfp-launcher/launch", "--pipeline_name", self.pipeline_name, "--run_id", RUN_ID]
        command += ["--execution_id", EXECUTION_ID, "--executor_input", _compact(executor_input)]
        command += ["--component_spec", component_json, "--pod_name", "$(KFP_POD_NAME)", "--pod_uid", "$(KFP_POD_UID)"]
        for flag, value in KFP_SERVER_ARGS:
            command += [flag, value]
        command.append("--")
        main: dict[str, Any] = {
            "args": [str(a) for a in (container.get("command") or []) + (container.get("args") or [])],
            "command": command,
            "image": container.get("image", ""),
            "name": "main",
            "resources": self._resources(container.get("resources") or {}),
        }
        if container.get("env"):
            main["env"] = [{"name": e.get("name", ""), "value": e.get("value", "")} for e in container["env"]]
        pod_spec: dict[str, Any] = {"containers": [main]}
        if k8s_json:  # volumes, secrets, node selector, tolerations... applied from the kubernetes config
            pod_spec["kubernetesConfig"] = json.loads(k8s_json)
        text = _compact(pod_spec)
        self._psp_cache[key] = text
        return text

    @staticmethod
    def _resources(res: dict) -> dict:
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


__all__ = ["ARGO_OBJECT_LIMIT", "ETCD_REQUEST_LIMIT", "WorkflowEstimate", "estimate_workflow"]
