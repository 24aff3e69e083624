"""The compiled pipeline (KFP IR) as the estimate reads it: the package's documents, its components, executors and
kubernetes settings, the order and kind of a DAG's tasks, a ParallelFor's items, and the input values a task
resolves as far as the IR knows them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from pipelines.workflow_size.go_json import compact
from pipelines.workflow_size.upstream_constants import UNKNOWN_PARAMETER_VALUE, WORKFLOW_NAME_SUFFIX

_EXIT_STRATEGY = "ALL_UPSTREAM_TASKS_COMPLETED"
_ITEM = "__item__"  # scope key prefix of a ParallelFor's loop item
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built in: the same documents, faster


def read_package(package: str | bytes | Path | Mapping[str, Any] | list[Any]) -> tuple[dict, dict, int]:
    """(pipeline spec, platform spec or {}, package bytes) of a YAML text, a path, or the parsed document(s)."""
    if isinstance(package, Path):
        package = package.read_bytes()
    if isinstance(package, bytes):
        package = package.decode("utf-8")
    if isinstance(package, str):
        text = package
        docs = [d for d in yaml.load_all(text, Loader=_YAML_LOADER) if d]
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


class PipelineIR:
    """One compiled pipeline: its components (the root one as `root`), executors, kubernetes executor settings,
    and the names the compiler and Argo derive from it."""

    def __init__(self, spec: dict, platform: dict) -> None:
        self.spec = spec
        self.components: dict[str, dict] = dict(spec.get("components") or {})
        self.components["root"] = spec["root"]
        self.executors: dict[str, dict] = dict((spec.get("deploymentSpec") or {}).get("executors") or {})
        k8s = ((platform.get("platforms") or {}).get("kubernetes") or {}) if platform else {}
        self.k8s_executors: dict[str, dict] = dict((k8s.get("deploymentSpec") or {}).get("executors") or {})
        self.pipeline_name = str((spec.get("pipelineInfo") or {}).get("name") or "pipeline")
        self.display_name = self.pipeline_name
        self.wf_name = f"{self.pipeline_name.split('/')[-1]}-{WORKFLOW_NAME_SUFFIX}"
        self._arg_key: dict[str, str] = {}  # component name -> workflow argument key suffix
        self._json_cache: dict[int, str] = {}

    def json(self, obj: Any) -> str:
        """Compact JSON of an object of the IR (cached: the IR's objects live as long as this)."""
        key = id(obj)
        if key not in self._json_cache:
            self._json_cache[key] = compact(obj)
        return self._json_cache[key]

    def executor(self, comp: dict) -> dict:
        return self.executors.get(comp.get("executorLabel", ""), {})

    def k8s_executor(self, comp: dict) -> dict | None:
        """The kfp-kubernetes settings of a component's executor (None: it has none)."""
        return self.k8s_executors.get(comp.get("executorLabel", ""))

    def pod_metadata_spec(self, comp: dict) -> dict:
        return (self.k8s_executor(comp) or {}).get("podMetadata") or {}

    def pod_metadata(self, comp: dict) -> dict[str, str]:
        meta = self.pod_metadata_spec(comp)
        return {**(meta.get("annotations") or {}), **(meta.get("labels") or {})}

    def component_key(self, name: str) -> str:
        """The suffix of `components-…` / `implementations-…`: sha256 of the container, else the name."""
        if name not in self._arg_key:
            container = self.executor(self.components[name]).get("container")
            self._arg_key[name] = hashlib.sha256(compact(container).encode()).hexdigest() if container else name
        return self._arg_key[name]

    def dag_tasks(self, comp_name: str) -> dict[str, dict]:
        return (self.components[comp_name].get("dag") or {}).get("tasks") or {}

    def runtime_config(self) -> dict:
        """The root DAG driver's runtime config: the defaults of the root inputs (None for optional ones)."""
        params = ((self.spec["root"].get("inputDefinitions") or {}).get("parameters")) or {}
        values = {}
        for name, p in params.items():
            if "defaultValue" in p:
                values[name] = p["defaultValue"]
            elif p.get("isOptional"):
                values[name] = None
        return {"parameterValues": values} if values else {}

    # -- tasks -----------------------------------------------------------------------------------------------

    @staticmethod
    def is_exit(task: dict) -> bool:
        return (task.get("triggerPolicy") or {}).get("strategy") == _EXIT_STRATEGY

    @staticmethod
    def is_iterator(task: dict) -> bool:
        return bool(task.get("parameterIterator") or task.get("artifactIterator"))

    @staticmethod
    def has_condition(task: dict) -> bool:
        return bool((task.get("triggerPolicy") or {}).get("condition"))

    @staticmethod
    def items(task: dict, default_items: int) -> tuple[int, Any]:
        """Iteration count of a ParallelFor and one representative item (`default_items` when known at run time)."""
        items = (task.get("parameterIterator") or {}).get("items") or {}
        raw = items.get("raw")
        if isinstance(raw, str):
            try:
                values = json.loads(raw)
            except ValueError:
                values = None
            if isinstance(values, list):
                return len(values), (values[0] if values else None)
        return default_items, UNKNOWN_PARAMETER_VALUE

    @staticmethod
    def ordered(tasks: Mapping[str, dict]) -> list[str]:
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

    # -- input values ----------------------------------------------------------------------------------------

    def value(self, spec: dict, scope: dict[str, Any]) -> Any:
        """The value of one task input parameter spec, as far as the IR knows it."""
        if "runtimeValue" in spec:
            return (spec["runtimeValue"] or {}).get("constant")
        name = spec.get("componentInputParameter")
        if name is not None:
            if f"{_ITEM}{name}" in scope:
                return scope[f"{_ITEM}{name}"]
            return scope.get(name, UNKNOWN_PARAMETER_VALUE)
        if "taskFinalStatus" in spec:
            return {
                "error": {},
                "pipelineJobResourceName": self.wf_name,
                "pipelineTaskName": "task",
                "state": "SUCCEEDED",
            }
        return UNKNOWN_PARAMETER_VALUE

    def input_values(self, task: dict, comp: dict, scope: dict[str, Any]) -> dict[str, Any]:
        """A task's input parameter values, the component's defaults for those it does not set."""
        inputs = (task.get("inputs") or {}).get("parameters") or {}
        values = {name: self.value(spec, scope) for name, spec in inputs.items()}
        for name, p in ((comp.get("inputDefinitions") or {}).get("parameters") or {}).items():
            if name not in values and "defaultValue" in p:
                values[name] = p["defaultValue"]
        return values

    def child_scope(self, task: dict, comp: dict, scope: dict[str, Any]) -> dict[str, Any]:
        """What the DAG a task invokes sees: its input values, and the loop items of the enclosing ParallelFors."""
        values = self.input_values(task, comp, scope)
        for key, value in scope.items():
            if key.startswith(_ITEM):
                values.setdefault(key, value)
        return values

    @staticmethod
    def with_item(scope: dict[str, Any], item_input: str | None, item: Any) -> dict[str, Any]:
        """The scope of one ParallelFor iteration: `item_input` holds the loop item."""
        inner = dict(scope)
        if item_input:
            inner[f"{_ITEM}{item_input}"] = item
        return inner
