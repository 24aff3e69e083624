"""The Helm chart in charts/star: rendered with Helm's own Go code (helm-python-sdk), strict lint,
upstream Kubernetes schemas (kubernetes-validate), pod hardening, secrets, the upload hook and checkov."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.paths import REPO

helm = pytest.importorskip(
    "helm_python", reason="helm-python-sdk is not installed (pip install helm-python-sdk==0.2.2)"
)
kubernetes_validate = pytest.importorskip(
    "kubernetes_validate",
    reason="kubernetes-validate is not installed (pip install kubernetes-validate==1.37.0)",
)

REPO = REPO
CHART = REPO / "charts" / "star"
RELEASE = "star"
NAMESPACE = "team-a"
# oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest the validator knows
K8S_VERSIONS = ("1.29.0", kubernetes_validate.utils.latest_version())

ACCESS_KEY = "AKIAEXAMPLEACCESSKEY7"
SECRET_KEY = "s3cr3t/Value+With/Slashes0123456789abcdEXAMPLE"
ENDPOINT = "http://minio-service.kubeflow:9000"

CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    "gpu": {
        "images": {"registry": "123456789012.dkr.ecr.us-east-1.amazonaws.com/ml", "tag": "1.2.3"},
        "serviceAccount": {
            "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/star"}
        },
        "objectStore": {
            "accessKeyId": ACCESS_KEY,
            "secretAccessKey": SECRET_KEY,
            "endpointUrl": ENDPOINT,
            "forcePathStyle": True,
        },
        "kfpLauncher": {"create": True, "defaultPipelineRoot": "s3://star-artifacts/runs"},
        "rbac": {"trainingApi": "both"},
        "pipeline": {
            "name": "star-gsm8k",
            "versionName": "v1",
            "config": {
                "task": {"name": "gsm8k"},
                "generation": {"backend": "vllm", "tensor_parallel_size": 2},
                "placement": {
                    "gpu": {
                        "node_selector": {"cloud.google.com/gke-accelerator": "nvidia-l4"},
                        "tolerations": [
                            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
                        ],
                    }
                },
            },
        },
        "prepull": {"enabled": True, "priorityClassName": "system-node-critical"},
    },
    "tpu": {
        "serviceAccount": {
            "annotations": {"iam.gke.io/gcp-service-account": "star@proj.iam.gserviceaccount.com"}
        },
        "kfpLauncher": {"create": True, "defaultPipelineRoot": "gs://star-artifacts/runs"},
        "rbac": {"trainingApi": "pytorchjob"},
        "pipeline": {
            "config": {
                "task": {"name": "arithmetic"},
                "training": {"accelerator": "tpu"},
                "placement": {
                    "tpu": {
                        "accelerator": "tpu-v5-lite-podslice",
                        "topology": "2x4",
                        "tolerations": [
                            {"key": "google.com/tpu", "operator": "Exists", "effect": "NoSchedule"}
                        ],
                    }
                },
            }
        },
        "prepull": {
            "enabled": True,
            "images": ["trainTpu"],
            "nodeSelector": {"cloud.google.com/gke-tpu-accelerator": "tpu-v5-lite-podslice"},
            "tolerations": [{"key": "google.com/tpu", "operator": "Exists", "effect": "NoSchedule"}],
        },
    },
    "existing-secret": {
        "objectStore": {"existingSecret": "team-a-s3", "endpointUrl": ENDPOINT, "forcePathStyle": True},
        "kfpLauncher": {"create": True, "defaultPipelineRoot": "minio://mlpipeline/star"},
        "hook": {"kfp": {"auth": "secret", "tokenSecret": {"name": "kfp-api-token", "key": "token"}}},
    },
    "standalone-kfp": {
        "hook": {"kfp": {"host": "http://ml-pipeline.kubeflow:8888", "auth": "none", "multiUser": False}},
        "networkPolicy": {"enabled": False},
        "images": {"runtime": {"name": "star-runtime", "digest": "sha256:" + "ab" * 32}},
    },
}

POD_KINDS = {"Pod", "Job", "DaemonSet", "Deployment", "StatefulSet", "CronJob"}


def render(values: dict[str, Any] | None = None, **opts: Any) -> dict[str, str]:
    with helm.Chart.load(str(CHART)) as chart:
        return chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True, **opts)


def manifests(rendered: dict[str, str]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path, text in sorted(rendered.items()):
        if path.endswith(".yaml"):
            docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    if doc["kind"] == "Pod":
        return doc["spec"]
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return doc["spec"]["template"]["spec"]


def containers(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def config(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any], dict[str, str]]:
    values = CONFIGS[request.param]
    return request.param, values, render(values)


# ---- lint and schemas ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_strict_lint_is_clean(name: str) -> None:
    report = helm.lint(str(CHART), CONFIGS[name], strict=True, namespace=NAMESPACE, kube_version="v1.31.0")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_every_manifest_validates_against_upstream_kubernetes_schemas(config: Any) -> None:
    name, _, rendered = config
    docs = manifests(rendered)
    assert docs
    for doc in docs:
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(
                    f"{name}: {doc['kind']}/{doc['metadata']['name']} invalid for {version}: {exc.message}"
                )


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"images": {"pullPolicy": "Sometimes"}}, "/images/pullPolicy"),
        ({"unknownKey": True}, "additional properties 'unknownKey' not allowed"),
        ({"rbac": {"trainingApi": "mpijob"}}, "/rbac/trainingApi"),
        ({"objectStore": {"accessKeyId": ACCESS_KEY}}, "/objectStore/secretAccessKey"),
        (
            {
                "objectStore": {
                    "existingSecret": "x",
                    "accessKeyId": ACCESS_KEY,
                    "secretAccessKey": SECRET_KEY,
                }
            },
            "/objectStore/accessKeyId",
        ),
        ({"hook": {"kfp": {"auth": "secret"}}}, "/hook/kfp/tokenSecret/name"),
        ({"hook": {"kfp": {"host": "ml-pipeline:8888"}}}, "/hook/kfp/host"),
        ({"kfpLauncher": {"defaultPipelineRoot": "hdfs://x/y"}}, "/kfpLauncher/defaultPipelineRoot"),
        ({"hook": {"resources": {"limits": None}}}, "/hook/resources"),  # null deletes the default
        ({"prepull": {"resources": {"limits": {"memory": None}}}}, "/prepull/resources/limits"),
        ({"securityContext": {"runAsUser": 0}}, "/securityContext/runAsUser"),
        ({"podSecurityContext": {"runAsNonRoot": False}}, "/podSecurityContext/runAsNonRoot"),
        ({"securityContext": {"allowPrivilegeEscalation": True}}, "/securityContext/allowPrivilegeEscalation"),
        ({"pipeline": {"root": "/mnt/artifacts"}}, "/pipeline/root"),
        ({"prepull": {"images": ["nginx"]}}, "/prepull/images/0"),
        ({"images": {"trainGpu": {"digest": "latest"}}}, "/images/trainGpu/digest"),
        ({"pipeline": {"config": "task: gsm8k"}}, "/pipeline/config"),
    ],
)
def test_values_that_break_the_schema_are_rejected_with_helms_message(
    values: dict[str, Any], expected: str
) -> None:
    with pytest.raises(helm.HelmValuesError) as err:
        render(values)
    message = str(err.value)
    assert "values don't meet the specifications of the schema" in message
    assert expected in message
    assert SECRET_KEY not in message


# ---- pods ----------------------------------------------------------------------------------------------


def test_every_pod_is_hardened_and_sized(config: Any) -> None:
    name, values, rendered = config
    pods = [d for d in manifests(rendered) if d["kind"] in POD_KINDS]
    assert pods, f"{name}: no pod templates rendered"
    for doc in pods:
        spec = pod_spec(doc)
        where = f"{name}: {doc['kind']}/{doc['metadata']['name']}"
        psc = spec["securityContext"]
        assert psc["runAsNonRoot"] is True, where
        assert psc["runAsUser"] > 0 and psc["seccompProfile"]["type"] == "RuntimeDefault", where
        assert spec.get("automountServiceAccountToken") is False, where
        assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC"), where
        mounts_needed = {"/tmp"} if doc["kind"] == "Job" else set()
        for c in containers(spec):
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True, (where, c["name"])
            assert sc["readOnlyRootFilesystem"] is True, (where, c["name"])
            assert sc["allowPrivilegeEscalation"] is False, (where, c["name"])
            assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"], (
                where,
                c["name"],
            )
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", (where, c["name"])
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][kind]), (where, c["name"], kind)
            assert c["imagePullPolicy"] in ("Always", "IfNotPresent", "Never"), (where, c["name"])
            mounted = {m["mountPath"] for m in c.get("volumeMounts", [])}
            assert mounts_needed <= mounted, (where, c["name"], "writable /tmp on a read-only root")
            emptydirs = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
            for m in c.get("volumeMounts", []):
                if m["mountPath"] in ("/tmp", "/home/star"):
                    assert m["name"] in emptydirs, (where, m)


def test_images_come_from_one_registry_and_tag(config: Any) -> None:
    name, values, rendered = config
    images_values = values.get("images", {})
    registry = images_values.get("registry", "ghcr.io/example")
    tag = images_values.get("tag") or yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    seen: set[str] = set()
    for doc in manifests(rendered):
        if doc["kind"] not in POD_KINDS:
            continue
        for c in containers(pod_spec(doc)):
            image = c["image"]
            seen.add(image)
            if image.startswith("registry.k8s.io/pause:"):
                assert "@sha256:" in image  # third-party image pinned by digest
                continue
            assert image.startswith(f"{registry}/star-"), (name, image)
            repo = image[len(registry) + 1 :]
            assert re.fullmatch(rf"star-[a-z-]+(:{re.escape(tag)}|@sha256:[0-9a-f]{{64}})", repo), (
                name,
                image,
            )
    assert seen
    if name == "standalone-kfp":
        assert f"{registry}/star-runtime@sha256:{'ab' * 32}" in seen


# ---- secrets and object store --------------------------------------------------------------------------


def test_no_secret_value_appears_outside_the_secret() -> None:
    values = CONFIGS["gpu"]
    rendered = render(values)
    (secret,) = find(manifests(rendered), "Secret")
    assert secret["metadata"]["name"] == f"{RELEASE}-object-store"
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data == {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_ENDPOINT_URL": ENDPOINT,
    }
    needles = [SECRET_KEY, base64.b64encode(SECRET_KEY.encode()).decode(), ACCESS_KEY]
    for path, text in rendered.items():
        if path.endswith("templates/secret.yaml"):
            continue
        for needle in needles:
            assert needle not in text, f"secret value leaked into {path}"


def test_existing_secret_is_referenced_not_created() -> None:
    docs = manifests(render(CONFIGS["existing-secret"]))
    assert find(docs, "Secret") == []
    (launcher,) = find(docs, "ConfigMap", "kfp-launcher")
    assert launcher["data"]["defaultPipelineRoot"] == "minio://mlpipeline/star"
    providers = yaml.safe_load(launcher["data"]["providers"])
    default = providers["minio"]["default"]
    assert default["credentials"] == {
        "fromEnv": False,
        "secretRef": {
            "secretName": "team-a-s3",
            "accessKeyKey": "AWS_ACCESS_KEY_ID",
            "secretKeyKey": "AWS_SECRET_ACCESS_KEY",
        },
    }
    assert default["endpoint"] == "minio-service.kubeflow:9000"
    assert default["disableSSL"] is True and default["forcePathStyle"] is True


def test_launcher_config_uses_the_chart_secret_or_the_cloud_identity() -> None:
    docs = manifests(render(CONFIGS["gpu"]))
    (launcher,) = find(docs, "ConfigMap", "kfp-launcher")
    s3 = yaml.safe_load(launcher["data"]["providers"])["s3"]["default"]
    assert s3["credentials"]["secretRef"]["secretName"] == f"{RELEASE}-object-store"

    docs = manifests(render({"kfpLauncher": {"create": True}}))
    (launcher,) = find(docs, "ConfigMap", "kfp-launcher")
    assert launcher["data"]["defaultPipelineRoot"] == "s3://star-artifacts/pipelines"
    s3 = yaml.safe_load(launcher["data"]["providers"])["s3"]["default"]
    assert s3["credentials"] == {"fromEnv": True} and s3["endpoint"] == "s3.amazonaws.com"

    docs = manifests(render(CONFIGS["tpu"]))
    (launcher,) = find(docs, "ConfigMap", "kfp-launcher")
    assert yaml.safe_load(launcher["data"]["providers"]) == {
        "gs": {"default": {"credentials": {"fromEnv": True}}}
    }



def test_kfp_launcher_is_left_to_kubeflow_unless_asked_for() -> None:
    """Kubeflow's profile controller creates kfp-launcher in every profile namespace (standalone KFP ships one in
    kubeflow): a chart that creates it too fails `helm install` there."""
    assert find(manifests(render({})), "ConfigMap", "kfp-launcher") == []
    template = (CHART / "templates" / "kfp-launcher-configmap.yaml").read_text()
    assert 'lookup "v1" "ConfigMap" .Release.Namespace "kfp-launcher"' in template and "fail" in template


# ---- service account and RBAC --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("api", "groups"),
    [
        ("trainjob", {("trainer.kubeflow.org", "trainjobs")}),
        ("pytorchjob", {("kubeflow.org", "pytorchjobs")}),
        ("both", {("trainer.kubeflow.org", "trainjobs"), ("kubeflow.org", "pytorchjobs")}),
        ("none", None),
    ],
)
def test_train_role_is_least_privilege(api: str, groups: set[tuple[str, str]] | None) -> None:
    docs = manifests(render({"rbac": {"trainingApi": api}}))
    roles = find(docs, "Role", f"{RELEASE}-train")
    if groups is None:
        assert roles == [] and find(docs, "RoleBinding", f"{RELEASE}-train") == []
        return
    (role,) = roles
    rules = {
        (g, r): sorted(rule["verbs"])
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
    }
    for key in groups:
        assert rules.pop(key) == sorted(["create", "get", "list", "watch", "delete"])
    assert rules == {("", "pods"): ["get", "list", "watch"], ("", "pods/log"): ["get"],
                     ("", "events"): ["get", "list", "watch"]}
    (binding,) = find(docs, "RoleBinding", f"{RELEASE}-train")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": RELEASE, "namespace": NAMESPACE}]


# What every pod of a KFP v2 run does with its ServiceAccount, read from upstream sources (KFP 2.17 backend/src/v2,
# Argo v3.4+ docs/workflow-rbac.md): (api group, resource, verb).
KFP_POD_NEEDS = {
    ("", "configmaps", "get"),  # driver and launcher: kfp-launcher (v2/config/env.go FromConfigMap)
    ("", "secrets", "get"),  # launcher: the providers' secretRef (v2/objectstore/object_store.go)
    ("", "pods", "get"),  # launcher: its own pod (v2/component/launcher_v2.go, v2/driver/k8s.go)
    ("argoproj.io", "workflows", "get"),  # driver: the run's Workflow (v2/cmd/driver/main.go)
    ("argoproj.io", "workflowtaskresults", "create"),  # Argo's executor reports outputs
    ("argoproj.io", "workflowtaskresults", "patch"),
}


def _granted(docs: list[dict[str, Any]], account: str) -> set[tuple[str, str, str]]:
    roles = {r["metadata"]["name"]: r for r in find(docs, "Role")}
    granted: set[tuple[str, str, str]] = set()
    for binding in find(docs, "RoleBinding"):
        if {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE} in binding["subjects"]:
            for rule in roles[binding["roleRef"]["name"]]["rules"]:
                granted |= {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    return granted


@pytest.mark.parametrize("api", ["trainjob", "pytorchjob", "none"])
def test_the_pipeline_service_account_may_do_what_every_kfp_pod_does(api: str) -> None:
    docs = manifests(render({"rbac": {"trainingApi": api}}))
    assert KFP_POD_NEEDS <= _granted(docs, RELEASE)
    (role,) = find(docs, "Role", f"{RELEASE}-runner")  # read-only but for Argo's own task results
    writes = {(g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
              if set(rule["verbs"]) - {"get", "list", "watch"}}
    assert writes == {("argoproj.io", "workflowtaskresults")}


def test_service_account_carries_cloud_identity_annotations() -> None:
    docs = manifests(render(CONFIGS["gpu"]))
    (sa,) = find(docs, "ServiceAccount", RELEASE)
    assert sa["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/star"
    }
    docs = manifests(render(CONFIGS["tpu"]))
    (sa,) = find(docs, "ServiceAccount", RELEASE)
    assert sa["metadata"]["annotations"]["iam.gke.io/gcp-service-account"].endswith(
        ".iam.gserviceaccount.com"
    )
    for doc in docs:  # every namespaced object lands in the release namespace
        assert doc["metadata"]["namespace"] == NAMESPACE


def test_prepull_runs_a_no_op_in_each_gpu_image_on_gpu_nodes() -> None:
    assert find(manifests(render({})), "DaemonSet") == []  # off by default
    docs = manifests(render(CONFIGS["gpu"]))
    (ds,) = find(docs, "DaemonSet", f"{RELEASE}-prepull")
    spec = pod_spec(ds)
    registry = CONFIGS["gpu"]["images"]["registry"]
    assert [(c["image"], c["command"]) for c in spec["initContainers"]] == [
        (f"{registry}/star-train-gpu:1.2.3", ["true"]),
        (f"{registry}/star-vllm:1.2.3", ["true"]),
    ]
    (main,) = spec["containers"]
    assert main["image"].startswith("registry.k8s.io/pause:")
    # GPU nodes as the GPU operator labels them, or as GKE does (it runs no GPU feature discovery)
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert [t["matchExpressions"] for t in terms] == [
        [{"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}],
        [{"key": "cloud.google.com/gke-accelerator", "operator": "Exists"}],
    ]
    assert "nodeSelector" not in spec
    # no Istio sidecar: behind the pre-puller's deny-all egress policy it would never become ready
    assert ds["spec"]["template"]["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false"
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert spec["priorityClassName"] == "system-node-critical"
    (policy,) = find(docs, "NetworkPolicy", f"{RELEASE}-prepull")
    assert policy["spec"]["egress"] == [] and policy["spec"]["ingress"] == []

    (tpu_ds,) = find(manifests(render(CONFIGS["tpu"])), "DaemonSet")
    tpu_spec = pod_spec(tpu_ds)
    assert [c["image"] for c in tpu_spec["initContainers"]] == ["ghcr.io/example/star-train-tpu:0.1.0"]
    assert tpu_spec["nodeSelector"] == {"cloud.google.com/gke-tpu-accelerator": "tpu-v5-lite-podslice"}


def test_notes_tell_how_to_run() -> None:
    notes = render({})[f"{RELEASE}/templates/NOTES.txt"]
    assert f"Pipeline service account: {RELEASE}" in notes
    kfp_line = next(line for line in notes.splitlines() if "kfp --endpoint" in line)
    assert "run create" in kfp_line and f"--namespace {NAMESPACE}" in kfp_line  # multi-user KFP needs it
    assert "2.14" in notes and "ml-pipeline-ui-artifact" in notes
    single = render({"hook": {"kfp": {"multiUser": False, "auth": "none"}}})[f"{RELEASE}/templates/NOTES.txt"]
    assert "--namespace" not in single
    assert "WARNING" in notes  # no credentials and no cloud identity configured
    assert "WARNING" not in render(CONFIGS["gpu"])[f"{RELEASE}/templates/NOTES.txt"]


# ---- pipeline config and upload hook -------------------------------------------------------------------


def test_pipeline_config_is_rendered_verbatim(config: Any) -> None:
    name, values, rendered = config
    expected = values.get("pipeline", {}).get("config", {"task": {"name": "arithmetic"}})
    (cm,) = find(manifests(rendered), "ConfigMap", f"{RELEASE}-config")
    assert yaml.safe_load(cm["data"]["star.yaml"]) == expected


def _hook_job(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (job,) = find(docs, "Job", f"{RELEASE}-upload")
    return job


def _expand(arg: str, env: dict[str, str]) -> str:
    """Kubernetes $(VAR) expansion in command/args."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), arg)


def _hook_command(job: dict[str, Any], namespace: str = NAMESPACE) -> tuple[list[str], dict[str, str]]:
    (container,) = pod_spec(job)["containers"]
    env: dict[str, str] = {}
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
        elif item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.namespace":
            env[item["name"]] = namespace
    argv = [_expand(a, env) for a in container["command"] + container.get("args", [])]
    return argv, env


def test_hook_job_is_a_post_install_and_post_upgrade_hook() -> None:
    docs = manifests(render({}))
    job = _hook_job(docs)
    ann = job["metadata"]["annotations"]
    assert set(ann["helm.sh/hook"].split(",")) == {"post-install", "post-upgrade"}
    assert "before-hook-creation" in ann["helm.sh/hook-delete-policy"]
    spec = pod_spec(job)
    assert spec["restartPolicy"] == "Never"
    assert spec["serviceAccountName"] == f"{RELEASE}-uploader"
    (container,) = spec["containers"]
    assert container["image"] == "ghcr.io/example/star-runtime:0.1.0"
    config_volume = next(v for v in spec["volumes"] if v["name"] == "config")
    assert config_volume["configMap"]["name"] == f"{RELEASE}-config"
    assert {"mountPath": "/config", "name": "config", "readOnly": True} in container["volumeMounts"]
    # default (Kubeflow Platform): the projected KFP token is handed to star through KFP_TOKEN only
    token_volume = next(v for v in spec["volumes"] if v["name"] == "kfp-token")
    source = token_volume["projected"]["sources"][0]["serviceAccountToken"]
    assert source["audience"] == "pipelines.kubeflow.org"
    argv, env = _hook_command(job)
    assert argv[:7] == ["star", "upload", "/config/star.yaml", "--host", env["KFP_HOST"], "--pipeline-name", "star"]
    assert argv[argv.index("--namespace") + 1] == NAMESPACE
    # star reads the projected token from the file, as kfp.Client does in a Kubeflow notebook
    assert env["KF_PIPELINES_SA_TOKEN_PATH"] == "/var/run/secrets/kubeflow/pipelines/token"
    assert {"mountPath": "/var/run/secrets/kubeflow/pipelines", "name": "kfp-token", "readOnly": True} in (
        container["volumeMounts"])
    assert env["KFP_HOST"] == "http://ml-pipeline.kubeflow.svc.cluster.local:8888"
    assert env["PIPELINE_NAME"] == "star"
    assert all("KFP_TOKEN" != e["name"] for e in container["env"])  # never in the pod spec
    (role,) = find(docs, "Role", f"{RELEASE}-uploader")
    assert role["rules"] == [
        {
            "apiGroups": ["pipelines.kubeflow.org"],
            "resources": ["pipelines"],
            "verbs": ["create", "get", "list", "delete"],
        }
    ]


def test_hook_command_in_standalone_mode_is_the_plain_star_upload() -> None:
    job = _hook_job(manifests(render(CONFIGS["standalone-kfp"])))
    argv, _ = _hook_command(job)
    assert argv == [
        "star",
        "upload",
        "/config/star.yaml",
        "--host",
        "http://ml-pipeline.kubeflow:8888",
        "--pipeline-name",
        "star",
        "--set", "cluster.images.registry=ghcr.io/example",
        "--set", "cluster.images.tag=0.1.0",
        "--set", f"cluster.images.runtime=star-runtime@sha256:{'ab' * 32}",
        "--set", "cluster.images.train_gpu=star-train-gpu",
        "--set", "cluster.images.train_tpu=star-train-tpu",
        "--set", "cluster.images.vllm=star-vllm",
        "--set", "storage.region=us-east-1",
        "--set", "storage.path_style=false",
    ]


def test_hook_token_from_a_secret_is_mounted_as_a_file() -> None:
    job = _hook_job(manifests(render(CONFIGS["existing-secret"])))
    spec = pod_spec(job)
    token_volume = next(v for v in spec["volumes"] if v["name"] == "kfp-token")
    assert token_volume["secret"]["secretName"] == "kfp-api-token"
    assert token_volume["secret"]["items"] == [{"key": "token", "path": "token"}]
    (container,) = spec["containers"]
    assert not any("secretKeyRef" in e.get("valueFrom", {}) for e in container["env"])


def test_hook_can_be_disabled() -> None:
    docs = manifests(render({"hook": {"enabled": False}}))
    assert find(docs, "Job") == [] and find(docs, "ServiceAccount", f"{RELEASE}-uploader") == []


def test_hook_version_name_is_a_prefix() -> None:
    """The hook uploads on every `helm upgrade`: a fixed version name would be refused (409) the second time."""
    job = _hook_job(
        manifests(render({**CONFIGS["standalone-kfp"], "pipeline": {"name": "p", "versionName": "v7"}}))
    )
    argv, _ = _hook_command(job)
    assert argv[argv.index("--version-prefix") + 1] == "v7" and "--version-name" not in argv


# ---- the hook's command against the stand-in KFP API (needs the `star` CLI) ------------------------------

STAR = shutil.which("star")
needs_star = pytest.mark.skipif(
    STAR is None, reason="the `star` command line is not installed (pip install -e .)"
)


def _write_hook_config(docs: list[dict[str, Any]], tmp_path: Path) -> Path:
    (cm,) = find(docs, "ConfigMap", f"{RELEASE}-config")
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "star.yaml").write_text(cm["data"]["star.yaml"])
    return config_dir


def _run_env(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    run_env = {k: v for k, v in os.environ.items() if k not in ("KFP_TOKEN", "KF_PIPELINES_ENDPOINT")}
    run_env.update(env)
    run_env["HOME"] = str(tmp_path / "home")
    run_env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    run_env["NO_PROXY"] = "127.0.0.1,localhost"
    bindir = str(Path(sys.executable).parent)
    run_env["PATH"] = bindir + os.pathsep + run_env.get("PATH", "")
    (tmp_path / "home").mkdir(exist_ok=True)
    return run_env


def _fake_server_class() -> Any:
    try:
        from tests.fakes.kfp_api import FakeKfpServer
    except ImportError:  # pragma: no cover - depends on how pytest puts tests/ on sys.path
        from fakes.kfp_api import FakeKfpServer  # type: ignore[no-redef]
    return FakeKfpServer


def _run_hook(argv: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, env=_run_env(env, tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (
        f"hook command failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc


@needs_star
def test_hook_command_uploads_the_pipeline_to_kfp(tmp_path: Path) -> None:
    """Standalone KFP (no auth): the rendered command, run as is, registers the pipeline."""
    with _fake_server_class()() as api:
        values = {
            **CONFIGS["standalone-kfp"],
            "hook": {"kfp": {"host": api.url, "auth": "none", "multiUser": False}},
        }
        docs = manifests(render(values))
        config_dir = _write_hook_config(docs, tmp_path)
        argv, env = _hook_command(_hook_job(docs))
        argv = [a.replace("/config/star.yaml", str(config_dir / "star.yaml")) for a in argv]
        assert argv[0] == "star"
        _run_hook(argv, env, tmp_path)

        assert [p["display_name"] for p in api.pipelines.values()] == ["star"]
        (upload,) = api.requests_to("POST", "/apis/v2beta1/pipelines/upload_version")
        spec = upload.files["uploadfile"].documents()[0]
        assert "pipelineInfo" in spec and "root" in spec
        # the pipeline's steps run the images the chart's values name: one place for image references
        images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
        assert images == {f"ghcr.io/example/star-runtime@sha256:{'ab' * 32}"}


@needs_star
def test_hook_hands_the_projected_token_file_to_star(tmp_path: Path) -> None:
    """Kubeflow Platform (multi-user, projected token): star reads the token from the mounted file."""
    token = "projected-sa-token-for-tests"
    with _fake_server_class()(multi_user=True, token=token) as api:
        docs = manifests(render({"hook": {"kfp": {"host": api.url}}}))
        config_dir = _write_hook_config(docs, tmp_path)
        token_file = tmp_path / "token"
        token_file.write_text(token)
        argv, env = _hook_command(_hook_job(docs))
        env["KF_PIPELINES_SA_TOKEN_PATH"] = str(token_file)
        argv = [a.replace("/config/star.yaml", str(config_dir / "star.yaml")) for a in argv]
        proc = _run_hook(argv, env, tmp_path)
        assert token not in proc.stdout and token not in proc.stderr

        assert api.requests and all(r.headers.get("authorization") == f"Bearer {token}" for r in api.requests)
        (pipeline,) = api.pipelines.values()
        assert pipeline["display_name"] == "star" and pipeline["namespace"] == NAMESPACE


@needs_star
def test_the_registered_pipeline_uses_the_charts_object_store_for_any_release_name(tmp_path: Path) -> None:
    """A release not named "star": the pipeline the hook registers must name the Secret this release created (else
    every step fails with CreateContainerConfigError) and reach the MinIO endpoint the values give (else its
    steps call AWS). Upgrading twice with a version prefix registers two versions."""
    release = "models"
    with _fake_server_class()() as api:
        values = {
            "hook": {"kfp": {"host": api.url, "auth": "none", "multiUser": False}},
            "objectStore": {"accessKeyId": ACCESS_KEY, "secretAccessKey": SECRET_KEY, "endpointUrl": ENDPOINT,
                            "region": "eu-west-3", "forcePathStyle": True},
            "pipeline": {"versionName": "nightly", "root": "minio://team-bucket/star"},
            "images": {"pullSecrets": ["regcred"]},
        }
        with helm.Chart.load(str(CHART)) as chart:
            docs = manifests(chart.render(values, name=release, namespace=NAMESPACE, is_install=True))
        (secret,) = find(docs, "Secret")
        (cm,) = find(docs, "ConfigMap", f"{release}-star-config")
        config_dir = tmp_path / "config"
        config_dir.mkdir()
        (config_dir / "star.yaml").write_text(cm["data"]["star.yaml"])
        (job,) = find(docs, "Job")
        argv, env = _hook_command(job)
        argv = [a.replace("/config/star.yaml", str(config_dir / "star.yaml")) for a in argv]
        _run_hook(argv, env, tmp_path)
        _run_hook(argv, env, tmp_path)  # `helm upgrade` runs the hook again

        uploads = api.requests_to("POST", "/apis/v2beta1/pipelines/upload_version")
        assert len(uploads) == 2
        spec, platform = uploads[-1].files["uploadfile"].documents()[:2]
    assert spec["defaultPipelineRoot"] == "minio://team-bucket/star"
    for name, executor in platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"].items():
        assert {e["secretName"] for e in executor["secretAsEnv"]} == {secret["metadata"]["name"]}, name
        assert [s["secretName"] for s in executor["imagePullSecret"]] == ["regcred"], name  # a private registry
    settings = [json.loads(p["defaultValue"]) for p in spec["root"]["inputDefinitions"]["parameters"].values()
                if str(p.get("defaultValue", "")).startswith("{")]
    storages = [s["storage"] for s in settings if "storage" in s]
    assert storages and all(s["endpoint_url"] == ENDPOINT and s["region"] == "eu-west-3" and s["path_style"]
                            for s in storages)
    assert [v for v in api.versions.values()][0][0]["display_name"].startswith("nightly-")


# ---- checkov --------------------------------------------------------------------------------------------


def _checkov() -> str | None:
    return os.environ.get("CHECKOV_BIN") or shutil.which("checkov")


@pytest.mark.skipif(
    _checkov() is None, reason="checkov is not installed (pip install checkov==3.3.30; or CHECKOV_BIN)"
)
def test_checkov_finds_nothing_or_each_skip_is_annotated_with_a_reason(config: Any, tmp_path: Path) -> None:
    name, _, rendered = config
    out = tmp_path / "rendered"
    out.mkdir()
    for path, text in rendered.items():
        if path.endswith(".yaml") and text.strip():
            (out / Path(path).name).write_text(text)
    proc = subprocess.run(
        [
            _checkov() or "checkov",
            "-d",
            str(out),
            "--framework",
            "kubernetes",
            "--skip-download",
            "--compact",
            "-o",
            "json",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_EXPERIMENTAL_IMAGE_REFERENCING": "False"},
    )
    assert proc.stdout.strip(), proc.stderr[-2000:]
    reports = json.loads(proc.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}"
        for r in reports
        for c in r.get("results", {}).get("failed_checks", [])
    ]
    assert failed == [], f"{name}: checkov failures:\n" + "\n".join(failed)
    for r in reports:
        for c in r.get("results", {}).get("skipped_checks", []):
            comment = (c.get("check_result") or {}).get("suppress_comment", "")
            assert len(comment) > 20, (
                f"{name}: {c['check_id']} on {c['resource']} is skipped without a reason"
            )
