"""`estimate_workflow`: the size of a run's Argo Workflow object, from its compiled package."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from pipelines.workflow_size.pipeline_ir import PipelineIR, read_package
from pipelines.workflow_size.run_nodes import RunNodes
from pipelines.workflow_size.status_size import measure_status
from pipelines.workflow_size.upstream_constants import ARGO_OBJECT_LIMIT
from pipelines.workflow_size.workflow_spec import WorkflowSpec


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
    exhaustive: bool = False,
) -> WorkflowEstimate:
    """Estimate the Argo Workflow size of one run of a compiled pipeline package.

    `package` is the YAML text (or a path to it) or the parsed document(s): the pipeline spec, optionally
    followed by the platform spec kfp-kubernetes writes. `default_parallel_items` is the iteration count of a
    ParallelFor whose items are known only at run time. `argo_template_retries` models the `templateDefaults`
    retryStrategy of KFP's Argo configuration (every node wrapped in a Retry node). `exhaustive` renders every
    node of the run and gzips them all in one stream instead of measuring each distinct DAG invocation once
    (slow; the reference the grouped measure is tested against).
    """
    spec, platform, package_bytes = read_package(package)
    ir = PipelineIR(spec, platform)
    workflow_spec = WorkflowSpec(ir)
    nodes = RunNodes(ir, workflow_spec, max(0, default_parallel_items), argo_template_retries, reuse=not exhaustive)
    status = measure_status(nodes.run(), exhaustive=exhaustive)
    return WorkflowEstimate(
        package_bytes=package_bytes,
        tasks=status.tasks,
        dag_nodes=status.dags,
        argo_nodes=status.argo_nodes,
        pods=status.pods,
        spec_bytes=workflow_spec.bytes,
        status_bytes=status.plain_bytes,
        total_bytes=workflow_spec.bytes + status.plain_bytes,
        compressed_total_bytes=workflow_spec.bytes + status.packed_bytes,
    )
