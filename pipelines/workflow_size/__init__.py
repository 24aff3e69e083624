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
measured; the fixed system templates are byte constants (`upstream_constants`), measured on the upstream golden files
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
(parameter values passed between tasks, artifact metadata, names, ids, host names: representative constants in
`upstream_constants`); count -10 %/+20 % for a clean run, more if attempts fail and retry (each retry adds nodes).
Worst case counts every If/Elif/Else branch. `compressed_total_bytes` gzips the rendered nodes.

Computation. A run's nodes come in groups, one per DAG invocation (a sub-pipeline use, a loop iteration's body);
the invocations of one component differ mostly in digits (the iteration number, node names and ids), which do
not change their size. Each distinct group is walked, rendered and measured once and counted as often as it runs.
Compressed, the node map is one deflate stream with a 32 KB window, so what a group costs depends on what
precedes it: each run of nodes is deflated after the window before it (a preset dictionary), and a group that
follows the same context as one already measured (digits aside) costs the same. The result is within a few
bytes per invocation of rendering every node (node ids are hashes of varying length) and within about 1 % of
gzipping them all (`estimate_workflow(..., exhaustive=True)` does both: the reference the tests compare against).

Modules: `upstream_constants` (measured sizes, KFP's Argo configuration, representative run-time values),
`go_json` (bytes as Go writes JSON), `pipeline_ir` (reading the package and its IR), `workflow_spec` (the spec),
`run_nodes` (the node status as Argo creates it, grouped per DAG invocation), `pod_spec_patch` (a container
driver's largest output), `status_size` (measuring and compressing the status), `estimate` (the result).
"""

from __future__ import annotations

from pipelines.workflow_size.estimate import WorkflowEstimate, estimate_workflow
from pipelines.workflow_size.upstream_constants import ARGO_OBJECT_LIMIT, ETCD_REQUEST_LIMIT

__all__ = ["ARGO_OBJECT_LIMIT", "ETCD_REQUEST_LIMIT", "WorkflowEstimate", "estimate_workflow"]
