"""Upload a compiled STaR pipeline to a Kubeflow Pipelines cluster and start runs.

Plain functions over ``kfp.Client`` (KFP SDK 2.16, REST API ``v2beta1``):

* :func:`upload_pipeline_version` creates the pipeline on first use, otherwise adds a new version to it;
* :func:`submit_run` uploads a version the same way, gets or creates the experiment and starts a run of
  exactly that version.

Every failure that comes from the cluster (unreachable host, TLS, HTTP error, a login page in front of the
API) is raised as :class:`SubmitError` carrying one sentence that names the host and what to check (see
:mod:`pipelines.kfp_client`, which also says where the bearer token comes from; packages are read by
:mod:`pipelines.package`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import secrets
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from components.storage import file_sha256
from pipelines.kfp_client import (
    TOKEN_ENV,
    SubmitError,
    api_errors,
    effective_namespace,
    kfp_session,
    normalize_host,
    preflight,
    quiet,
    resolve_ca_cert,
    resolve_token,
)
from pipelines.package import check_package, pipeline_name_from_package, read_pipeline_spec

__all__ = [
    "TOKEN_ENV",
    "SubmitError",
    "SubmitResult",
    "UploadResult",
    "submit_run",
    "upload_pipeline_version",
]


class UploadResult(BaseModel):
    """Where an uploaded pipeline version lives."""

    model_config = ConfigDict(frozen=True)

    host: str
    pipeline_id: str
    pipeline_name: str
    version_id: str
    version_name: str
    created_pipeline: bool
    """True when this call created the pipeline (first upload), False when it added a version."""
    url: str
    """The version's page in the Kubeflow Pipelines UI."""


class SubmitResult(BaseModel):
    """A started run and the pipeline version it runs."""

    model_config = ConfigDict(frozen=True)

    host: str
    run_id: str
    run_name: str
    experiment_id: str
    experiment_name: str
    pipeline: UploadResult
    url: str
    """The run's page in the Kubeflow Pipelines UI."""


def upload_pipeline_version(
    package_path: str,
    host: str,
    pipeline_name: str,
    version_name: str | None = None,
    namespace: str | None = None,
    existing_token: str | None = None,
    ca_cert: str | None = None,
    version_prefix: str | None = None,
) -> UploadResult:
    """Upload ``package_path`` as a new version of the pipeline ``pipeline_name``.

    The pipeline is created when no pipeline of that name exists (in ``namespace`` for a multi-user
    deployment, among the shared pipelines otherwise). ``version_name`` defaults to
    ``<prefix>-<UTC time>-<first 8 hex digits of the package's sha256>-<4 random hex digits>``, the prefix being
    ``version_prefix`` or the pipeline name (so an upload repeated on every `helm upgrade` never collides).
    """
    package = check_package(package_path)
    if not pipeline_name or not pipeline_name.strip():
        raise SubmitError("The pipeline name is empty: pass a name such as --pipeline-name star.")
    if version_name and version_prefix:
        raise SubmitError("Pass either a version name or a version prefix, not both.")
    base = normalize_host(host)
    token = resolve_token(existing_token)
    ca = resolve_ca_cert(ca_cert)
    multi_user = preflight(base, token, ca)
    with kfp_session(base, token, ca) as client:
        ns = effective_namespace(client, base, namespace, multi_user)
        return _upload(client, base, package, pipeline_name.strip(), version_name, ns, token, version_prefix)


def submit_run(
    package_path: str,
    host: str,
    experiment: str = "star",
    run_name: str | None = None,
    pipeline_name: str | None = None,
    namespace: str | None = None,
    existing_token: str | None = None,
    service_account: str | None = None,
    ca_cert: str | None = None,
) -> SubmitResult:
    """Upload ``package_path`` as a pipeline version and start a run of it in ``experiment``.

    ``pipeline_name`` defaults to the name compiled into the package (``pipelineInfo.name``); ``run_name``
    defaults to ``<pipeline_name> <UTC time>``. The experiment is created when it does not exist.
    ``service_account`` is the Kubernetes ServiceAccount the run's pods use (the Helm chart creates one);
    None leaves the cluster's default. The run's pipeline root is the package's default one (``cluster.pipeline_root``)
    when it has one, as the UI's Create-run form does; else the namespace's ``kfp-launcher`` decides.
    """
    package = check_package(package_path)
    if not experiment or not experiment.strip():
        raise SubmitError("The experiment name is empty: pass a name such as --experiment star.")
    name = (pipeline_name or "").strip() or pipeline_name_from_package(package)
    base = normalize_host(host)
    token = resolve_token(existing_token)
    ca = resolve_ca_cert(ca_cert)
    multi_user = preflight(base, token, ca)
    with kfp_session(base, token, ca) as client:
        ns = effective_namespace(client, base, namespace, multi_user)
        uploaded = _upload(client, base, package, name, None, ns, token)
        with api_errors(base, f"get or create the experiment '{experiment}'", token):
            exp = client.create_experiment(name=experiment.strip(), namespace=ns)
        job_name = run_name or f"{name} {_utc_stamp(human=True)}"
        with api_errors(base, f"start a run of pipeline '{name}'", token):
            run = client.run_pipeline(
                experiment_id=exp.experiment_id,
                job_name=job_name,
                pipeline_id=uploaded.pipeline_id,
                version_id=uploaded.version_id,
                service_account=(service_account or "").strip() or None,
                pipeline_root=read_pipeline_spec(package).get("defaultPipelineRoot") or None,
            )
    if not run.run_id:
        raise SubmitError(
            f"Kubeflow Pipelines at {base} accepted the run but returned no run id; check the server logs."
        )
    return SubmitResult(
        host=base,
        run_id=run.run_id,
        run_name=job_name,
        experiment_id=exp.experiment_id,
        experiment_name=experiment.strip(),
        pipeline=uploaded,
        url=f"{base}/#/runs/details/{run.run_id}",
    )


def _upload(
    client: Any,
    base: str,
    package: Path,
    pipeline_name: str,
    version_name: str | None,
    namespace: str | None,
    token: str | None,
    version_prefix: str | None = None,
) -> UploadResult:
    from kfp_server_api import V2beta1Pipeline

    # default: readable, traceable to the package, and unique even for two uploads within one second
    prefix = (version_prefix or "").strip() or pipeline_name
    version = version_name or f"{prefix}-{_utc_stamp()}-{file_sha256(package)[:8]}-{secrets.token_hex(2)}"
    with api_errors(base, f"look up pipeline '{pipeline_name}'", token):
        pipeline_id = _find_pipeline_id(client, pipeline_name, namespace)
    created = pipeline_id is None
    if pipeline_id is None:
        # Create the pipeline empty, then upload the package as its first version: the version gets the
        # requested name (an upload to /pipelines/upload would name it after the pipeline).
        with api_errors(base, f"create pipeline '{pipeline_name}'", token):
            pipeline = client.pipelines.pipeline_service_create_pipeline(
                pipeline=V2beta1Pipeline(
                    display_name=pipeline_name,
                    name=pipeline_name,
                    description="STaR (Self-Taught Reasoner) pipeline",
                    namespace=namespace,
                )
            )
        pipeline_id = pipeline.pipeline_id
        if not pipeline_id:
            raise SubmitError(
                f"Kubeflow Pipelines at {base} created pipeline '{pipeline_name}' but returned no id; "
                "check the server logs."
            )
    try:
        with api_errors(base, f"upload version '{version}' of pipeline '{pipeline_name}'", token):
            uploaded = client.upload_pipeline_version(
                pipeline_package_path=str(package),
                pipeline_version_name=version,
                pipeline_id=pipeline_id,
                description=f"Uploaded from {package.name}",
            )
    except SubmitError:
        if created:  # leave no empty pipeline behind
            with contextlib.suppress(Exception), quiet():
                client.delete_pipeline(pipeline_id)
        raise
    version_id = uploaded.pipeline_version_id
    if not version_id:
        raise SubmitError(
            f"Kubeflow Pipelines at {base} accepted version '{version}' but returned no id; "
            "check the server logs."
        )
    return UploadResult(
        host=base,
        pipeline_id=pipeline_id,
        pipeline_name=pipeline_name,
        version_id=version_id,
        version_name=uploaded.display_name or uploaded.name or version,
        created_pipeline=created,
        url=f"{base}/#/pipelines/details/{pipeline_id}/version/{version_id}",
    )


def _find_pipeline_id(client: Any, name: str, namespace: str | None) -> str | None:
    """The id of the pipeline whose display name is ``name``, or None (same filter as kfp.Client)."""
    flt = json.dumps({"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]})
    result = client.list_pipelines(filter=flt, namespace=namespace, page_size=10)
    matches = [p for p in (result.pipelines or []) if p.display_name == name or p.name == name]
    if len(matches) > 1:
        raise SubmitError(
            f"Kubeflow Pipelines has {len(matches)} pipelines named '{name}'; pass a unique --pipeline-name."
        )
    return matches[0].pipeline_id if matches else None


def _utc_stamp(human: bool = False) -> str:
    now = _dt.datetime.now(_dt.UTC)
    return now.strftime("%Y-%m-%d %H:%M:%S UTC") if human else now.strftime("%Y%m%d-%H%M%S")
