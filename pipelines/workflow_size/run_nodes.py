"""The nodes of `status.nodes` as Argo v4.0.5 creates them when it runs KFP 2.17's Workflow: the IR walked as
Argo runs it (every sub-DAG invocation and ParallelFor iteration, every condition true), each node with the
fields Argo sets and its resolved inputs and outputs.

The nodes are grouped per DAG invocation: a `NodeGroup` holds the nodes one invocation creates itself and, in
creation order between them, the groups of the DAGs it invokes. With `reuse`, an invocation whose group would
only differ from one already walked in digits (node names of the same length, input values equal but for their
digits, node ids: hashes of varying length) is not walked again: the group walked first stands for it."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pipelines.workflow_size.go_json import compact
from pipelines.workflow_size.pipeline_ir import PipelineIR
from pipelines.workflow_size.pod_spec_patch import PodSpecPatches
from pipelines.workflow_size.upstream_constants import (
    DUMMY_IMAGES,
    EXECUTION_ID,
    HOST_NODE_NAME,
    LOG_KEY_FORMAT,
    NAMESPACE,
    RESOURCES_DURATION,
    TIMESTAMP,
)
from pipelines.workflow_size.workflow_spec import WorkflowSpec, executor_template, param

_DIGIT = re.compile(r"[0-9]")


def fnv32a(text: str) -> int:
    """32-bit FNV-1a of a node name: Argo's node id suffix (workflow/controller/operator.go)."""
    h = 0x811C9DC5
    for byte in text.encode("utf-8"):
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


@dataclass(eq=False)
class NodeGroup:
    """The nodes one DAG invocation creates itself (the entrypoint and root driver for the top group), in creation
    order, with the groups of the DAG invocations it makes between them (a reused group may come more than once)."""

    items: list[dict | NodeGroup] = field(default_factory=list)
    #: executor tasks (container, importer) and DAG invocations this invocation makes itself
    tasks: int = 0
    dags: int = 0
    #: names of the nodes the invoking DAG node links to, after that node's name (to link them on reuse)
    entry: list[str] = field(default_factory=list)

    def nodes(self) -> Iterator[dict]:
        """This group's own nodes."""
        return (item for item in self.items if isinstance(item, dict))

    def nested(self) -> Iterator[NodeGroup]:
        return (item for item in self.items if isinstance(item, NodeGroup))

    def every_group(self) -> Iterator[NodeGroup]:
        """This group and every group nested in it, as often as each runs."""
        yield self
        for nested in self.nested():
            yield from nested.every_group()

    def every_node(self) -> Iterator[dict]:
        """Every node of this invocation, nested ones included, in the order Argo creates them."""
        for item in self.items:
            if isinstance(item, NodeGroup):
                yield from item.every_node()
            else:
                yield item


def _reuse_key(comp_name: str, dag_node: dict, scope: dict[str, Any]) -> tuple | None:
    """What the size of a DAG invocation's nodes depends on, but for node ids (hashes of varying length): the
    component, the length of the invoking node's name (every node name starts with it), and the input values with
    every digit as 0 (a digit takes one byte wherever JSON puts it). None: values that are not JSON."""
    try:
        values = compact(scope)
    except (TypeError, ValueError):
        return None
    return comp_name, len(dag_node["name"]), _DIGIT.sub("0", values)


class RunNodes:
    """Walks the IR of one pipeline as Argo runs it; `run()` returns the top `NodeGroup`."""

    def __init__(self, ir: PipelineIR, spec: WorkflowSpec, default_items: int, retries: bool, *, reuse: bool) -> None:
        self.ir = ir
        self.spec = spec
        self.wf_name = ir.wf_name
        self.default_items = default_items
        self.retries = retries
        self.reuse = reuse
        self._patches = PodSpecPatches(ir)
        self._group = NodeGroup()
        self._walked: dict[tuple, NodeGroup] = {}  # reuse key -> the group walked first

    def run(self) -> NodeGroup:
        top = self._group
        wf = self.wf_name
        entry_outer, entry = self._exec(wf, wf, "DAG", "entrypoint", None, [])
        runtime_config = self.ir.runtime_config()
        driver_outer, _ = self._dag_driver(
            f"{entry['name']}.root-driver",
            "root-driver",
            entry["id"],
            [entry],
            self.spec.component_json("root"),
            None,
            None,
            None,
            runtime_config=compact(runtime_config),
        )
        _, root = self._exec(
            f"{entry['name']}.root",
            "root",
            "DAG",
            "root",
            entry["id"],
            [driver_outer],
            [param("parent-dag-id", EXECUTION_ID)],
        )
        top.dags += 1
        self._dag("root", root, dict(runtime_config.get("parameterValues") or {}))
        return top

    # -- nodes -----------------------------------------------------------------------------------------------

    def _node_id(self, name: str) -> str:
        return self.wf_name if name == self.wf_name else f"{self.wf_name}-{fnv32a(name)}"

    def _new_node(self, name: str, display: str, kind: str, template: str | None, boundary: str | None) -> dict:
        node: dict[str, Any] = {
            "id": self._node_id(name),
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
        self._group.items.append(node)
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
            pod_name = f"{self.wf_name}-{template}"[:62] + f"-{fnv32a(run['name'])}"
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
            param("component", component),
            param("runtime-config", runtime_config or "", default=""),
            param("task", task or "", default=""),
            param("task-name", task_name or "", default=""),
            param("parent-dag-id", EXECUTION_ID if task is not None else "0", default="0"),
            param("iteration-index", str(iteration if iteration is not None else -1), default="-1"),
            param("driver-type", "ROOT_DAG" if runtime_config is not None else "DAG", default="DAG"),
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

    # -- DAGs ------------------------------------------------------------------------------------------------

    def _dag(self, comp_name: str, dag_node: dict, scope: dict[str, Any]) -> None:
        """One invocation of a DAG component under `dag_node` (the node that runs its template): its group."""
        prefix = dag_node["name"]
        key = _reuse_key(comp_name, dag_node, scope) if self.reuse else None
        if key is not None:
            walked = self._walked.get(key)
            if walked is not None:
                if walked.entry:
                    dag_node.setdefault("children", []).extend(self._node_id(prefix + s) for s in walked.entry)
                self._group.items.append(walked)
                return
        parent, group = self._group, NodeGroup()
        parent.items.append(group)
        linked = len(dag_node.get("children") or [])
        self._group = group
        try:
            self._dag_tasks(comp_name, dag_node, scope)
        finally:
            self._group = parent
        names = {node["id"]: node["name"] for node in group.nodes()}
        entry = [names.get(node_id, "") for node_id in (dag_node.get("children") or [])[linked:]]
        group.entry = [name[len(prefix) :] for name in entry]
        if key is not None and all(name.startswith(prefix) for name in entry):
            self._walked[key] = group

    def _dag_tasks(self, comp_name: str, dag_node: dict, scope: dict[str, Any]) -> None:
        """Run the tasks of one DAG invocation under `dag_node`."""
        tasks = self.ir.dag_tasks(comp_name)
        by_task: dict[str, dict] = {}
        exits: list[str] = []
        for task_name in self.ir.ordered(tasks):
            task = tasks[task_name]
            if self.ir.is_exit(task):
                exits.append(task_name)
                continue
            deps = [by_task[d] for d in task.get("dependentTasks") or [] if d in by_task]
            parents = deps or [dag_node]
            if self.ir.is_iterator(task):
                by_task[task_name] = self._iterate(task_name, task, dag_node, parents, scope)
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
                    [param("parent-dag-id", EXECUTION_ID)],
                )
                hook["nodeFlag"] = {"hooked": True}
                self._task(task_name, task_name, task, hook, [hook], scope, None)

    def _iterate(self, name: str, task: dict, dag_node: dict, parents: list[dict], scope: dict[str, Any]) -> dict:
        ref = task["componentRef"]["name"]
        count, item = self.ir.items(task, self.default_items)
        outer, loop = self._exec(
            f"{dag_node['name']}.{name}",
            name,
            "DAG",
            f"{ref}-{name}-iterator",
            dag_node["id"],
            parents,
            [param("parent-dag-id", EXECUTION_ID)],
        )
        driver_outer, _ = self._dag_driver(
            f"{loop['name']}.iteration-driver",
            "iteration-driver",
            loop["id"],
            [loop],
            self.spec.component_json(ref),
            self.ir.json(task),
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
                [param("parent-dag-id", EXECUTION_ID), param("iteration-index", str(i))],
            )
            inner_scope = self.ir.with_item(scope, item_input, item)
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
        ir = self.ir
        comp_name = task["componentRef"]["name"]
        comp = ir.components[comp_name]
        task_json = ir.json(task)
        component_json = self.spec.component_json(comp_name)
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
                [param("parent-dag-id", EXECUTION_ID)],
            )
            self._group.dags += 1
            self._dag(comp_name, sub, ir.child_scope(task, comp, scope))
            return outer
        executor = ir.executor(comp)
        if "importer" in executor:
            self._group.tasks += 1
            importer = executor["importer"]
            template = "system-importer-workspace" if importer.get("downloadToWorkspace") else "system-importer"
            inputs = [
                param("task", task_json),
                param("component", component_json),
                param("importer", ir.json(importer)),
                param("parent-dag-id", EXECUTION_ID),
            ]
            return self._exec(base, argo_name, "Pod", template, dag_node["id"], parents, inputs)[0]
        container = executor.get("container") or {}
        k8s = ir.k8s_executor(comp)
        k8s_json = ir.json(k8s) if k8s is not None else ""
        driver_inputs = [
            param("component", component_json),
            param("task", task_json),
            param("container", ir.json(container)),
            param("task-name", task_name),
            param("parent-dag-id", EXECUTION_ID),
            param("iteration-index", str(iteration if iteration is not None else -1), default="-1"),
            param("kubernetes-config", k8s_json, default=""),
        ]
        dummy = container.get("image") in DUMMY_IMAGES
        patch = (
            ""
            if dummy
            else self._patches.render(
                task_name, task, comp, component_json, container, k8s_json, ir.input_values(task, comp, scope)
            )
        )
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
        self._group.tasks += 1
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
        for i, (key, value) in enumerate(ir.pod_metadata(comp).items(), start=1):
            extra += [param(f"pod-metadata-key-{i}", key), param(f"pod-metadata-val-{i}", value)]
        extra += [param(f"retry-{k}", str(v)) for k, v in sorted((retry or {}).items())]
        template = executor_template(ir, comp, bool(retry))[0]
        outer, wrapper = self._exec(
            base,
            argo_name,
            "DAG",
            template,
            dag_node["id"],
            [driver_outer],
            [param("pod-spec-patch", patch), param("cached-decision", "false", default="false"), *extra],
        )
        self._exec(
            f"{wrapper['name']}.executor",
            "executor",
            "Pod",
            template.replace("-executor", "-impl"),
            wrapper["id"],
            [wrapper],
            [param("pod-spec-patch", patch), *extra],
            force_retry=bool(retry),
        )
        return outer
