"""The constants of the estimate, each with where it comes from: the size limits, the byte sizes of KFP's fixed
system templates (measured on the upstream golden files), KFP's Argo configuration, and representative values
for what exists only at run time (their lengths are what counts)."""

from __future__ import annotations

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
DUMMY_IMAGES = {"argostub/createpvc", "argostub/deletepvc"}  # argo.go dummyImages: driver only, no executor

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

# ---- KFP 2.17's Argo configuration
#      (manifests/kustomize/third-party/argo/base/workflow-controller-configmap-patch.yaml)
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

# ---- how Argo stores status.nodes once the object passes its limit (workflow/packer/packer.go compressWorkflow:
#      gzip, then base64, in status.compressedNodes)
GZIP_FRAME_BYTES = 18  # gzip header (10) and trailer (8) around the one deflate stream
DEFLATE_WINDOW_BYTES = 32 * 1024  # how far back deflate (Go compress/flate, zlib) finds a repeat
