"""Multi-node training jobs: the TrainJob / PyTorchJob manifests validate against the CRDs' schemas (vendored in
tests/data/crds, with Kubernetes core types from kubernetes-validate's strict schemas), and create / watch /
delete run against a stand-in Kubernetes API (tests/fakes/k8s_api.py)."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import jsonschema
import pytest
import referencing
import referencing.jsonschema

from components.core.errors import StarError
from components.core.rows import TrainExample, write_rows
from components.core.tolerations import Toleration
from components.training.config import TrainingConfig
from components.training.deepspeed_config import DistributedConfig
from components.training.job_api import run_job, step_pod_owner, wait_for_job
from components.training.job_manifests import (
    JOB_KINDS,
    PATCH_MANAGER,
    JobPod,
    JobSettings,
    SecretEnv,
    job_manifest,
    job_name,
    job_name_limit,
    pytorchjob_manifest,
    trainjob_manifest,
)
from components.training.trainjob import train_on_nodes
from components.training.worker import WorkerResult, WorkerSpec, upload
from tests.paths import TEST_DATA

try:  # works with and without tests/__init__.py
    from tests.fakes.k8s_api import FakeK8sServer
except ImportError:  # pragma: no cover - depends on how pytest puts tests/ on sys.path
    from fakes.k8s_api import FakeK8sServer  # type: ignore[no-redef]

CRDS = TEST_DATA / "crds"
SECRET_VALUE = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
COMMAND = ["torchrun", "--nnodes", "4", "--nproc_per_node", "8", "-m", "components.training.worker",
           "--spec", "s3://bucket/jobs/x/spec.json"]


def _strict(schema: Any) -> Any:
    """Unknown fields are errors (as with `kubectl apply --validate=strict`): every object schema that lists its
    properties and says nothing about others gets additionalProperties: false."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out \
                and not out.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def _core_definitions() -> dict[str, Any]:
    import kubernetes_validate

    root = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    latest = max((p for p in root.iterdir() if p.name.endswith("-local-strict")),
                 key=lambda p: tuple(int(x) for x in re.findall(r"\d+", p.name)[:3]))
    return json.loads((latest / "_definitions.json").read_text())


@pytest.fixture(scope="module")
def validators() -> dict[str, jsonschema.Draft202012Validator]:
    core = _core_definitions()
    resource = referencing.jsonschema.DRAFT202012.create_resource(core)
    registry = referencing.Registry().with_resource(core["$id"], resource)
    out = {}
    for kind, file in (("TrainJob", "trainer.kubeflow.org_trainjobs.v1alpha1.json"),
                       ("PyTorchJob", "kubeflow.org_pytorchjobs.v1.json")):
        schema = _strict(json.loads((CRDS / file).read_text()))
        jsonschema.Draft202012Validator.check_schema(schema)
        out[kind] = jsonschema.Draft202012Validator(schema, registry=registry)
    return out


def _validate(validators: dict[str, jsonschema.Draft202012Validator], manifest: dict[str, Any]) -> None:
    errors = sorted(validators[manifest["kind"]].iter_errors(manifest), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
    # the CRDs' CEL rules on the name (TrainJob), which apply to every Kubernetes object name we create
    name = manifest["metadata"]["name"]
    assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 63


def _settings(**kw: Any) -> JobSettings:
    defaults: dict[str, Any] = dict(
        image="ghcr.io/example/star-train-gpu:0.1.0",
        pod=JobPod(gpus=8, cpu_request="32", cpu_limit="64", memory_request="400G", memory_limit="800G",
                   node_selector={"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"},
                   tolerations=[Toleration(key="nvidia.com/gpu")], shm_size="64Gi", service_account="star-train"),
        secrets=[SecretEnv(secret="star-object-store",
                           keys={"AWS_ACCESS_KEY_ID": "access-key", "AWS_SECRET_ACCESS_KEY": "secret-key"})],
        env={"HF_HUB_OFFLINE": "1"},
        run_name="gsm8k-llama",
    )
    defaults.update(kw)
    return JobSettings(**defaults)


def _secret_env(env: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e for e in env}


def test_trainjob_manifest_validates_and_places_the_pods(validators: dict[str, Any]) -> None:
    m = trainjob_manifest("star-gsm8k-it3-abc123", "team-a", command=COMMAND, nodes=4, nproc_per_node=8,
                          settings=_settings(), timeout_s=7200, iteration=3)
    _validate(validators, m)
    assert m["apiVersion"] == "trainer.kubeflow.org/v1alpha1" and m["kind"] == "TrainJob"
    spec = m["spec"]
    assert spec["runtimeRef"] == {"name": "torch-distributed", "apiGroup": "trainer.kubeflow.org",
                                  "kind": "ClusterTrainingRuntime"}
    assert spec["activeDeadlineSeconds"] == 7200
    trainer = spec["trainer"]
    assert trainer["numNodes"] == 4 and trainer["numProcPerNode"] == 8 and trainer["command"] == COMMAND
    assert trainer["resourcesPerNode"] == {"limits": {"nvidia.com/gpu": 8, "cpu": "64", "memory": "800G"},
                                           "requests": {"cpu": "32", "memory": "400G"}}
    env = _secret_env(trainer["env"])
    assert env["AWS_SECRET_ACCESS_KEY"] == {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": {
        "secretKeyRef": {"name": "star-object-store", "key": "secret-key"}}}
    assert env["HF_HUB_OFFLINE"] == {"name": "HF_HUB_OFFLINE", "value": "1"}
    (patch,) = spec["runtimePatches"]
    assert patch["manager"] == PATCH_MANAGER
    (job,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    assert job["name"] == "node"
    pod = job["template"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["serviceAccountName"] == "star-train"
    assert pod["volumes"] == [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "64Gi"}}]
    assert pod["containers"] == [{"name": "node", "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}]}]
    assert SECRET_VALUE not in json.dumps(m)


def test_pytorchjob_manifest_validates_and_places_the_pods(validators: dict[str, Any]) -> None:
    m = pytorchjob_manifest("star-gsm8k-it3-abc123", "team-a", command=COMMAND, nodes=4, nproc_per_node=8,
                            settings=_settings(), timeout_s=7200, iteration=3)
    _validate(validators, m)
    assert m["apiVersion"] == "kubeflow.org/v1" and m["kind"] == "PyTorchJob"
    spec = m["spec"]
    assert spec["nprocPerNode"] == "8"
    assert spec["runPolicy"]["activeDeadlineSeconds"] == 7200 and spec["runPolicy"]["backoffLimit"] == 0
    replicas = spec["pytorchReplicaSpecs"]
    assert replicas["Master"]["replicas"] == 1 and replicas["Worker"]["replicas"] == 3
    for role in ("Master", "Worker"):
        pod = replicas[role]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["name"] == "pytorch" and container["command"] == COMMAND
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 8
        assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
        assert pod["volumes"] == [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "64Gi"}}]
        assert pod["nodeSelector"] and pod["tolerations"][0]["key"] == "nvidia.com/gpu"
        env = _secret_env(container["env"])
        assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {"name": "star-object-store",
                                                                          "key": "access-key"}
    assert "Worker" not in pytorchjob_manifest("n1", "ns", command=COMMAND, nodes=1, nproc_per_node=8,
                                               settings=_settings(), timeout_s=60)["spec"]["pytorchReplicaSpecs"]
    assert SECRET_VALUE not in json.dumps(m)


def test_the_schemas_catch_what_the_cluster_would_reject(validators: dict[str, Any]) -> None:
    good = trainjob_manifest("star-x-it1-abcdef", "ns", command=COMMAND, nodes=2, nproc_per_node=8,
                             settings=_settings(), timeout_s=600)
    typo = copy.deepcopy(good)
    typo["spec"]["trainer"]["numProcsPerNode"] = typo["spec"]["trainer"].pop("numProcPerNode")
    wrong_type = copy.deepcopy(good)
    wrong_type["spec"]["trainer"]["numNodes"] = "2"
    bad_toleration = copy.deepcopy(good)
    pod = bad_toleration["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0]
    pod["template"]["spec"]["template"]["spec"]["tolerations"][0]["tolerate"] = True
    no_runtime = copy.deepcopy(good)
    del no_runtime["spec"]["runtimeRef"]
    bad_quantity = copy.deepcopy(good)
    bad_quantity["spec"]["trainer"]["resourcesPerNode"]["limits"]["memory"] = "lots"
    for broken in (typo, wrong_type, bad_toleration, no_runtime, bad_quantity):
        assert list(validators["TrainJob"].iter_errors(broken)), broken
    pt = pytorchjob_manifest("star-x-it1-abcdef", "ns", command=COMMAND, nodes=2, nproc_per_node=8,
                             settings=_settings(), timeout_s=600)
    pt["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["envFrom"] = "x"
    assert list(validators["PyTorchJob"].iter_errors(pt))


def test_credentials_are_never_literal_values() -> None:
    with pytest.raises(StarError, match="AWS_SECRET_ACCESS_KEY.*Secret"):
        trainjob_manifest("n", "ns", command=COMMAND, nodes=2, nproc_per_node=1, timeout_s=60,
                          settings=_settings(env={"AWS_SECRET_ACCESS_KEY": SECRET_VALUE}))
    with pytest.raises(StarError, match="HF_TOKEN"):
        pytorchjob_manifest("n", "ns", command=COMMAND, nodes=2, nproc_per_node=1, timeout_s=60,
                            settings=_settings(env={"HF_TOKEN": "hf_abc"}))


def test_job_names_are_dns_labels() -> None:
    names = {job_name("a-very-long-run-name-" * 5, 64) for _ in range(20)}
    assert len(names) == 20  # unique per attempt
    for name in names | {job_name("demo", 1)}:
        assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 63
        assert "-it" in name


@pytest.mark.parametrize("kind", ["trainjob", "pytorchjob"])
def test_job_pods_get_no_istio_sidecar_and_pull_from_a_private_registry(
    kind: str, validators: dict[str, Any]
) -> None:
    """In a Kubeflow profile namespace Istio injects a sidecar into every pod: it keeps a finished worker running
    (the job never completes) and sits between the ranks' rendezvous."""
    build = trainjob_manifest if kind == "trainjob" else pytorchjob_manifest
    settings = _settings(pod=JobPod(gpus=8, image_pull_secrets=["regcred"]))
    m = build("star-demo-it1-aaaaaa", "team-a", command=COMMAND, nodes=2, nproc_per_node=8, settings=settings,
              timeout_s=600)
    _validate(validators, m)
    if kind == "trainjob":
        (job,) = m["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
        templates = [job["template"]["spec"]["template"]]
    else:
        templates = [r["template"] for r in m["spec"]["pytorchReplicaSpecs"].values()]
    for template in templates:
        assert template["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false"
        assert template["spec"]["imagePullSecrets"] == [{"name": "regcred"}]


@pytest.mark.parametrize(("kind", "nodes"), [("trainjob", 2), ("trainjob", 16), ("pytorchjob", 4), ("pytorchjob", 128)])
def test_every_name_derived_from_a_job_stays_a_dns_label(kind: str, nodes: int) -> None:
    """A TrainJob may be named with 63 characters, but JobSet names its pods
    `<name>-<replicatedJob>-<jobIndex>-<podIndex>-xxxxx` and its webhook refuses a JobSet whose longest pod name
    is over 63 (any replicated job of Trainer's runtimes, the longest being dataset-initializer): the TrainJob would
    then hang until its deadline. A PyTorchJob's pods and Services are `<name>-worker-<index>`."""
    name = job_name("gsm8k-qwen2.5-7b-instruct-lora-r16-every-iteration-from-base", 12, job_name_limit(kind, nodes))
    if kind == "trainjob":
        derived = [f"{name}-{rjob}-0-{nodes - 1}-abcde" for rjob in ("node", "dataset-initializer",
                                                                       "model-initializer")]
    else:
        derived = [f"{name}-master-0", f"{name}-worker-{nodes - 2}"]
    for full in derived:
        assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", full) and len(full) <= 63, full
    assert name.startswith("star-gsm8k") and name.split("-")[-2] == "it12"


def test_job_manifest_follows_the_distributed_config(validators: dict[str, Any]) -> None:
    cfg = DistributedConfig(launcher="deepspeed", nodes=3, job_kind="pytorchjob", job_timeout_s=900,
                            staging_uri="s3://bucket/jobs")
    m = job_manifest(cfg, "star-x-it2-abcdef", "ns", "s3://bucket/jobs/x/spec.json", _settings(), 2)
    _validate(validators, m)
    container = m["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["torchrun", "--nnodes", "3", "--nproc_per_node", "8", "-m",
                                    "components.training.worker", "--spec", "s3://bucket/jobs/x/spec.json"]
    m = job_manifest(cfg.model_copy(update={"job_kind": "trainjob", "nproc_per_node": 4}), "star-x-it2-abcdef",
                     "ns", "s3://b/spec.json", _settings(), 2)
    _validate(validators, m)
    assert m["spec"]["trainer"]["numProcPerNode"] == 4 and m["spec"]["trainer"]["numNodes"] == 3


# -- create / watch / delete against the stand-in API ----------------------------------------------------------


@pytest.fixture
def k8s() -> Iterator[FakeK8sServer]:
    with FakeK8sServer(hold_s=0.05) as server:
        yield server


def _condition(type_: str, reason: str, message: str = "") -> dict[str, Any]:
    return {"type": type_, "status": "True", "reason": reason, "message": message,
            "lastTransitionTime": "2026-01-01T00:00:00Z"}


def _api(k8s: FakeK8sServer) -> Any:
    from kubernetes import client

    return client.CustomObjectsApi(k8s.api_client())


@pytest.mark.parametrize("kind", ["trainjob", "pytorchjob"])
def test_job_is_created_watched_to_success_and_deleted(k8s: FakeK8sServer, kind: str) -> None:
    build = trainjob_manifest if kind == "trainjob" else pytorchjob_manifest
    manifest = build("star-demo-it1-aaaaaa", "team-a", command=COMMAND, nodes=2, nproc_per_node=8,
                     settings=_settings(), timeout_s=600)
    success = JOB_KINDS[kind].success
    k8s.script("star-demo-it1-aaaaaa", [
        {"conditions": [_condition("Created", "JobCreated")]},
        {"conditions": [_condition("Created", "JobCreated"), _condition("Running", "JobRunning")]},
        {"conditions": [_condition("Created", "JobCreated"), _condition(success, "JobSucceeded", "all done")]},
    ])
    lines: list[str] = []
    final = run_job(_api(k8s), manifest, timeout_s=30, watch_s=5, log=lines.append)

    assert final["metadata"]["name"] == "star-demo-it1-aaaaaa"
    plural = JOB_KINDS[kind].plural
    (created,) = k8s.requests_to("POST", plural)
    assert created.path == f"/apis/{JOB_KINDS[kind].group}/{JOB_KINDS[kind].version}/namespaces/team-a/{plural}"
    assert created.body == manifest
    watches = k8s.requests_to("GET", plural)
    assert watches and all(w.query["watch"][0] in ("true", "True") for w in watches)
    assert watches[0].query["fieldSelector"] == ["metadata.name=star-demo-it1-aaaaaa"]
    assert created.query["fieldValidation"] == ["Strict"]  # an unknown field is an error, not dropped
    (deleted,) = k8s.requests_to("DELETE", plural)
    assert deleted.path.endswith(f"/{plural}/star-demo-it1-aaaaaa")
    if kind == "pytorchjob":
        assert deleted.query["propagationPolicy"] == ["Background"]
    assert not k8s.objects
    # the status was streamed: each condition reported once, in order
    reported = [line.split(": ", 1)[1] for line in lines if ": " in line]
    assert reported[0].startswith("Created=True") and any(r.startswith("Running=True") for r in reported)
    assert any(r.startswith(f"{success}=True (JobSucceeded): all done") for r in reported)
    assert len(reported) == len(set(reported))


def test_failed_job_is_reported_and_deleted(k8s: FakeK8sServer) -> None:
    manifest = trainjob_manifest("star-demo-it2-bbbbbb", "team-a", command=COMMAND, nodes=2, nproc_per_node=8,
                                 settings=_settings(), timeout_s=600)
    k8s.script("star-demo-it2-bbbbbb", [{"conditions": [
        _condition("Failed", "TrainerFailed", "rank 3 exited with code 1")]}])
    with pytest.raises(StarError, match=r"failed: rank 3 exited with code 1.*kubectl logs -n team-a"):
        run_job(_api(k8s), manifest, timeout_s=30, watch_s=5, log=lambda _: None)
    assert len(k8s.requests_to("DELETE")) == 1 and not k8s.objects


def test_job_that_runs_too_long_is_stopped_and_deleted(k8s: FakeK8sServer) -> None:
    manifest = pytorchjob_manifest("star-demo-it3-cccccc", "team-a", command=COMMAND, nodes=2, nproc_per_node=8,
                                   settings=_settings(), timeout_s=600)
    k8s.script("star-demo-it3-cccccc", [{"conditions": [_condition("Running", "JobRunning")]}])
    with pytest.raises(StarError, match="did not finish within"):
        run_job(_api(k8s), manifest, timeout_s=0.5, watch_s=1, log=lambda _: None)
    assert len(k8s.requests_to("GET")) >= 2  # the watch was renewed until the deadline
    assert len(k8s.requests_to("DELETE")) == 1 and not k8s.objects


def test_job_is_deleted_when_the_step_is_interrupted(k8s: FakeK8sServer) -> None:
    manifest = trainjob_manifest("star-demo-it4-dddddd", "team-a", command=COMMAND, nodes=2, nproc_per_node=8,
                                 settings=_settings(), timeout_s=600)
    k8s.script("star-demo-it4-dddddd", [{"conditions": [_condition("Running", "JobRunning")]}])

    def interrupt(line: str) -> None:
        if "Running" in line:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_job(_api(k8s), manifest, timeout_s=30, watch_s=5, log=interrupt)
    assert len(k8s.requests_to("DELETE")) == 1 and not k8s.objects


def test_create_errors_name_the_fix(k8s: FakeK8sServer) -> None:
    manifest = trainjob_manifest("star-demo-it5-eeeeee", "team-a", command=COMMAND, nodes=2, nproc_per_node=8,
                                 settings=_settings(), timeout_s=600)
    k8s.objects[("team-a", "trainjobs", "star-demo-it5-eeeeee", "trainer.kubeflow.org")] = copy.deepcopy(manifest)
    with pytest.raises(StarError, match="409.*exists already"):
        run_job(_api(k8s), manifest, timeout_s=30, log=lambda _: None)
    assert not k8s.requests_to("DELETE")  # someone else's job is left alone


def test_a_trainjob_whose_pods_cannot_be_created_fails_with_the_controllers_message(k8s: FakeK8sServer) -> None:
    """Kubeflow Trainer reports a failed JobSet creation only as a Warning Event, never in the TrainJob's status."""
    manifest = trainjob_manifest("star-demo-it7-gggggg", "team-a", command=COMMAND, nodes=2, nproc_per_node=8,
                                 settings=_settings(), timeout_s=600)
    k8s.script("star-demo-it7-gggggg", [{"conditions": []}])
    message = ("TrainJob resources reconciliation failed: admission webhook \"vjobset.kb.io\" denied the request: "
               "JobSet name is too long, pod names generated for this JobSet will exceed 63 characters")
    k8s.on_create(lambda job: k8s.warn("team-a", "TrainJob", job["metadata"]["name"],
                                       "TrainJobResourcesCreationFailed", message))
    k8s.warn("team-a", "TrainJob", "someone-elses-job", "TrainJobResourcesCreationFailed", "not ours")
    with pytest.raises(StarError, match="cannot create its pods: .*pod names generated for this JobSet"):
        run_job(_api(k8s), manifest, timeout_s=600, watch_s=5, log=lambda _: None)
    assert len(k8s.requests_to("DELETE")) == 1 and not k8s.objects


def test_a_field_an_older_trainer_does_not_know_is_an_error_not_dropped(k8s: FakeK8sServer) -> None:
    """Trainer before v2.2 has no `runtimePatches`: dropped silently, the pods would start without their node
    pool, tolerations and /dev/shm."""
    k8s.unknown_fields["trainjobs"] = ["spec.runtimePatches"]
    manifest = trainjob_manifest("star-demo-it8-hhhhhh", "team-a", command=COMMAND, nodes=2, nproc_per_node=8,
                                 settings=_settings(), timeout_s=600)
    with pytest.raises(StarError, match=r'unknown field \\?"spec.runtimePatches.*Trainer v2.2'):
        run_job(_api(k8s), manifest, timeout_s=30, log=lambda _: None)
    assert not k8s.objects and not k8s.requests_to("DELETE")


def test_train_on_nodes_stages_inputs_runs_the_job_and_fetches_the_model(k8s: FakeK8sServer, tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    (base / "star_model.json").write_text(json.dumps({"source": "meta-llama/Llama-3.1-8B"}))
    examples = tmp_path / "finetune.jsonl"
    write_rows(examples, [TrainExample(id="1", source="generation", prompt="Q: 1+1\nA:", completion=" 2")])
    training = TrainingConfig(method="full", learning_rate=3e-5)
    spec = WorkerSpec(training=training, seed=7, iteration=2, examples=str(examples), base_dir=str(base),
                      previous_dir=str(base), out_dir=str(tmp_path / "out"), result=str(tmp_path / "result.json"),
                      max_steps=10, deepspeed={"zero_optimization": {"stage": 2}})
    staging = "memory://star-test-staging"
    cfg = DistributedConfig(launcher="torchrun", nodes=2, job_kind="trainjob", staging_uri=staging,
                            job_namespace="team-a")
    seen: dict[str, Any] = {}

    def pods(job: dict[str, Any]) -> None:
        """Act as rank 0 of the job: read the spec it was given, check the staged inputs, write the output."""
        command = job["spec"]["trainer"]["command"]
        spec_url = command[command.index("--spec") + 1]
        remote = WorkerSpec.model_validate_json(fsspec.open(spec_url, "r").open().read())
        seen["spec"] = remote
        seen["examples"] = fsspec.open(remote.examples, "r").open().read()
        seen["base"] = fsspec.open(f"{remote.base_dir}/star_model.json", "r").open().read()
        produced = tmp_path / "rank0-model"  # rank 0 saves the model and uploads it as the worker does
        produced.mkdir()
        (produced / "adapter_config.json").write_text('{"r": 16}')
        upload(produced, remote.out_dir)
        with fsspec.open(remote.result, "w") as f:
            f.write(WorkerResult(steps=10, mean_loss=0.5, world_size=16, backend="nccl",
                                 deepspeed=True).model_dump_json())
        k8s.script(job["metadata"]["name"], [{"conditions": [_condition("Complete", "JobCompleted")]}])

    k8s.on_create(pods)
    result = train_on_nodes(cfg, spec, _settings(), client=k8s.api_client(), watch_s=5, log=lambda _: None)

    assert result == WorkerResult(steps=10, mean_loss=0.5, world_size=16, backend="nccl", deepspeed=True)
    remote = seen["spec"]
    assert remote.previous_dir == remote.base_dir and remote.base_dir.startswith(staging)
    assert remote.max_steps == 10 and remote.deepspeed == spec.deepspeed
    assert remote.training == training and remote.seed == 7 and remote.storage == spec.storage
    assert seen["examples"] == examples.read_text() and "Llama-3.1-8B" in seen["base"]
    assert json.loads((tmp_path / "out" / "adapter_config.json").read_text()) == {"r": 16}
    assert WorkerResult.model_validate_json((tmp_path / "result.json").read_text()) == result
    (job,) = k8s.created()
    assert job["spec"]["trainer"]["numNodes"] == 2 and job["metadata"]["namespace"] == "team-a"
    assert len(k8s.requests_to("DELETE")) == 1
    fs = fsspec.filesystem("memory")
    assert not fs.exists(f"{staging}/{job['metadata']['name']}")  # staged files are cleaned up


def test_job_is_owned_by_the_step_pod(k8s: FakeK8sServer, validators: dict[str, Any]) -> None:
    k8s.pods[("team-a", "star-train-pod-1")] = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "star-train-pod-1", "namespace": "team-a", "uid": "1234-abcd"},
        "spec": {"containers": [{"name": "main", "image": "x"}]},
    }
    owner = step_pod_owner(k8s.api_client(), "team-a", "star-train-pod-1")
    assert owner == {"apiVersion": "v1", "kind": "Pod", "name": "star-train-pod-1", "uid": "1234-abcd",
                     "blockOwnerDeletion": False}
    assert step_pod_owner(k8s.api_client(), "team-a", "no-such-pod") is None
    m = trainjob_manifest("star-demo-it6-ffffff", "team-a", command=COMMAND, nodes=2, nproc_per_node=8,
                          settings=_settings(owner=owner), timeout_s=600)
    _validate(validators, m)
    assert m["metadata"]["ownerReferences"] == [owner]


def test_lost_api_connection_is_one_clear_error() -> None:
    from kubernetes import client

    with FakeK8sServer() as gone:
        url = gone.url
    api = client.CustomObjectsApi(client.ApiClient(client.Configuration(host=url)))
    lines: list[str] = []
    with pytest.raises(StarError, match="Lost the connection to the Kubernetes API"):
        wait_for_job(api, JOB_KINDS["trainjob"], "team-a", "star-x-it1-abcdef", timeout_s=30, watch_s=1,
                     max_connection_failures=1, log=lines.append)
    assert any("retrying" in line for line in lines)
