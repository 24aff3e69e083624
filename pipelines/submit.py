"""Upload a compiled STaR pipeline to a Kubeflow Pipelines cluster and start runs.

Plain functions over ``kfp.Client`` (KFP SDK 2.16, REST API ``v2beta1``):

* :func:`upload_pipeline_version` creates the pipeline on first use, otherwise adds a new version to it;
* :func:`submit_run` uploads a version the same way, gets or creates the experiment and starts a run of
  exactly that version.

Every failure that comes from the cluster (unreachable host, TLS, HTTP error, a login page in front of the
API) is raised as :class:`SubmitError` carrying one sentence that names the host and what to check.

Credentials: the bearer token comes only from the ``existing_token`` argument or the ``KFP_TOKEN``
environment variable. It is sent as an ``Authorization`` header and never printed, logged or put into an
error message.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import io
import json
import os
import secrets
import tarfile
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict

__all__ = [
    "TOKEN_ENV",
    "SubmitError",
    "SubmitResult",
    "UploadResult",
    "submit_run",
    "upload_pipeline_version",
]

TOKEN_ENV = "KFP_TOKEN"
"""Environment variable holding the bearer token for the KFP API (used when no token is passed)."""

PACKAGE_SUFFIXES = (".yaml", ".yml", ".json", ".zip", ".tar.gz", ".tgz")
_PREFLIGHT_TIMEOUT_S = 15.0
_MAX_SERVER_MESSAGE = 300


class SubmitError(Exception):
    """A pipeline could not be uploaded or started; the message is one sentence saying what to check."""


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


# --------------------------------------------------------------------------------------------------------
# public functions


def upload_pipeline_version(
    package_path: str,
    host: str,
    pipeline_name: str,
    version_name: str | None = None,
    namespace: str | None = None,
    existing_token: str | None = None,
) -> UploadResult:
    """Upload ``package_path`` as a new version of the pipeline ``pipeline_name``.

    The pipeline is created when no pipeline of that name exists (in ``namespace`` for a multi-user
    deployment, among the shared pipelines otherwise). ``version_name`` defaults to
    ``<pipeline_name>-<UTC time>-<first 8 hex digits of the package's sha256>-<4 random hex digits>``.
    """
    package = _check_package(package_path)
    if not pipeline_name or not pipeline_name.strip():
        raise SubmitError("The pipeline name is empty: pass a name such as --pipeline-name star.")
    base = _normalize_host(host)
    token = _resolve_token(existing_token)
    multi_user = _preflight(base, token)
    with _kfp_session(base, token) as client:
        ns = _effective_namespace(client, base, namespace, multi_user)
        return _upload(client, base, package, pipeline_name.strip(), version_name, ns, token)


def submit_run(
    package_path: str,
    host: str,
    experiment: str = "star",
    run_name: str | None = None,
    pipeline_name: str | None = None,
    namespace: str | None = None,
    existing_token: str | None = None,
    service_account: str | None = None,
) -> SubmitResult:
    """Upload ``package_path`` as a pipeline version and start a run of it in ``experiment``.

    ``pipeline_name`` defaults to the name compiled into the package (``pipelineInfo.name``); ``run_name``
    defaults to ``<pipeline_name> <UTC time>``. The experiment is created when it does not exist.
    ``service_account`` is the Kubernetes ServiceAccount the run's pods use (the Helm chart creates one);
    None leaves the cluster's default.
    """
    package = _check_package(package_path)
    if not experiment or not experiment.strip():
        raise SubmitError("The experiment name is empty: pass a name such as --experiment star.")
    name = (pipeline_name or "").strip() or _pipeline_name_from_package(package)
    base = _normalize_host(host)
    token = _resolve_token(existing_token)
    multi_user = _preflight(base, token)
    with _kfp_session(base, token) as client:
        ns = _effective_namespace(client, base, namespace, multi_user)
        uploaded = _upload(client, base, package, name, None, ns, token)
        with _api_errors(base, f"get or create the experiment '{experiment}'", token):
            exp = client.create_experiment(name=experiment.strip(), namespace=ns)
        job_name = run_name or f"{name} {_utc_stamp(human=True)}"
        with _api_errors(base, f"start a run of pipeline '{name}'", token):
            run = client.run_pipeline(
                experiment_id=exp.experiment_id,
                job_name=job_name,
                pipeline_id=uploaded.pipeline_id,
                version_id=uploaded.version_id,
                service_account=(service_account or "").strip() or None,
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


# --------------------------------------------------------------------------------------------------------
# upload


def _upload(
    client: Any,
    base: str,
    package: Path,
    pipeline_name: str,
    version_name: str | None,
    namespace: str | None,
    token: str | None,
) -> UploadResult:
    from kfp_server_api import V2beta1Pipeline

    # default: readable, traceable to the package, and unique even for two uploads within one second
    version = version_name or f"{pipeline_name}-{_utc_stamp()}-{_sha256(package)[:8]}-{secrets.token_hex(2)}"
    with _api_errors(base, f"look up pipeline '{pipeline_name}'", token):
        pipeline_id = _find_pipeline_id(client, pipeline_name, namespace)
    created = pipeline_id is None
    if pipeline_id is None:
        # Create the pipeline empty, then upload the package as its first version: the version gets the
        # requested name (an upload to /pipelines/upload would name it after the pipeline).
        with _api_errors(base, f"create pipeline '{pipeline_name}'", token):
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
        with _api_errors(base, f"upload version '{version}' of pipeline '{pipeline_name}'", token):
            uploaded = client.upload_pipeline_version(
                pipeline_package_path=str(package),
                pipeline_version_name=version,
                pipeline_id=pipeline_id,
                description=f"Uploaded from {package.name}",
            )
    except SubmitError:
        if created:  # leave no empty pipeline behind
            with contextlib.suppress(Exception), _quiet():
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


# --------------------------------------------------------------------------------------------------------
# package checks


def _check_package(package_path: str) -> Path:
    path = Path(package_path)
    if not path.is_file():
        raise SubmitError(
            f"Pipeline package {package_path} does not exist; compile it first with `star compile`."
        )
    if not path.name.lower().endswith(PACKAGE_SUFFIXES):
        raise SubmitError(
            f"Pipeline package {package_path} must end with one of {', '.join(PACKAGE_SUFFIXES)}; "
            "compile it with `star compile CONFIG -o pipeline.yaml`."
        )
    spec = _read_pipeline_spec(path)
    if not isinstance(spec, dict) or "pipelineInfo" not in spec or "root" not in spec:
        raise SubmitError(
            f"Pipeline package {package_path} is not a compiled KFP pipeline (no pipelineInfo/root); "
            "compile it with `star compile`."
        )
    return path


def _read_pipeline_spec(path: Path) -> Any:
    """The first YAML/JSON document of a package (the PipelineSpec), unpacking .zip/.tar.gz archives."""
    name = path.name.lower()
    try:
        if name.endswith((".zip", ".tar.gz", ".tgz")):
            text = _read_from_archive(path)
        else:
            text = path.read_text(encoding="utf-8")
        docs = yaml.safe_load_all(text)
        return next(iter(docs), None)
    except (
        OSError,
        UnicodeDecodeError,
        yaml.YAMLError,
        tarfile.TarError,
        zipfile.BadZipFile,
        KeyError,
    ) as exc:
        raise SubmitError(
            f"Pipeline package {path} cannot be read ({type(exc).__name__}); recompile it."
        ) from exc


def _read_from_archive(path: Path) -> str:
    def choose(names: list[str]) -> str:
        yamls = [n for n in names if n.endswith((".yaml", ".yml", ".json"))]
        if "pipeline.yaml" in yamls:
            return "pipeline.yaml"
        if len(yamls) == 1:
            return yamls[0]
        raise KeyError("pipeline.yaml")

    if path.name.lower().endswith(".zip"):
        with zipfile.ZipFile(path) as zf:
            return zf.read(choose(zf.namelist())).decode("utf-8")
    with tarfile.open(path, "r:gz") as tf:
        member = tf.getmember(choose([m.name for m in tf.getmembers() if m.isfile()]))
        handle = tf.extractfile(member)
        if handle is None:
            raise KeyError(member.name)
        return handle.read().decode("utf-8")


def _pipeline_name_from_package(package: Path) -> str:
    spec = _read_pipeline_spec(package)
    name = (spec.get("pipelineInfo") or {}).get("name") if isinstance(spec, dict) else None
    if not isinstance(name, str) or not name.strip():
        raise SubmitError(f"Pipeline package {package} has no pipelineInfo.name; pass --pipeline-name.")
    return name.strip()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _utc_stamp(human: bool = False) -> str:
    now = _dt.datetime.now(_dt.UTC)
    return now.strftime("%Y-%m-%d %H:%M:%S UTC") if human else now.strftime("%Y%m%d-%H%M%S")


# --------------------------------------------------------------------------------------------------------
# connection, credentials, errors


def _normalize_host(host: str) -> str:
    raw = (host or "").strip()
    if not raw:
        raise SubmitError("No Kubeflow Pipelines host given: pass --host, e.g. --host http://localhost:8080.")
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SubmitError(
            f"Kubeflow Pipelines host '{raw}' is not an http(s) URL: pass it as http://{raw} or https://{raw}."
        )
    if parts.query or parts.fragment:
        raise SubmitError(f"Kubeflow Pipelines host '{raw}' must not contain a query or #fragment.")
    return raw.rstrip("/")


def _resolve_token(existing_token: str | None) -> str | None:
    token = existing_token if existing_token else os.environ.get(TOKEN_ENV, "")
    token = token.strip()
    return token or None


def _redact(text: str, token: str | None) -> str:
    return text.replace(token, "***") if token else text


def _server_message(body: bytes | str | None) -> str:
    """The ``message``/``error`` field of a KFP (grpc-gateway) error body, shortened."""
    if not body:
        return ""
    raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    try:
        payload = json.loads(raw)
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        raw = str(payload.get("message") or payload.get("error") or "")
    elif raw.lstrip().startswith("<"):
        return ""  # an HTML page says nothing useful in one sentence
    raw = " ".join(raw.split())
    return raw[:_MAX_SERVER_MESSAGE] + ("..." if len(raw) > _MAX_SERVER_MESSAGE else "")


def _http_hint(status: int) -> str:
    if status in (401, 403):
        return f"check the bearer token (argument or ${TOKEN_ENV}) and that it may use this namespace"
    if status == 404:
        return "check that the URL points at the Kubeflow Pipelines UI/API (the one serving /apis/v2beta1)"
    if status == 409:
        return "the name is already taken; choose another version or pipeline name"
    if 400 <= status < 500:
        return "check the package and the names passed"
    return "check the Kubeflow Pipelines API server (ml-pipeline) logs"


def _preflight(base: str, token: str | None) -> bool:
    """Check that ``base`` serves the KFP v2beta1 API; returns its multi-user flag."""
    import certifi
    import urllib3

    url = f"{base}/apis/v2beta1/healthz"
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    pool = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=certifi.where())
    try:
        resp = pool.request(
            "GET",
            url,
            headers=headers,
            redirect=False,
            retries=urllib3.Retry(total=2, connect=2, read=0, redirect=0, backoff_factor=0.2),
            timeout=urllib3.Timeout(total=_PREFLIGHT_TIMEOUT_S),
        )
    except urllib3.exceptions.SSLError as exc:
        raise SubmitError(
            f"TLS to Kubeflow Pipelines at {base} failed ({_redact(type(exc).__name__, token)}); "
            "check the certificate or use the right http/https scheme."
        ) from None
    except urllib3.exceptions.HTTPError as exc:
        reason = getattr(exc, "reason", None) or exc
        raise SubmitError(
            f"Could not reach Kubeflow Pipelines at {base} ({_redact(type(reason).__name__, token)}); "
            "check the URL, that the API is reachable from here (e.g. kubectl port-forward "
            "svc/ml-pipeline-ui 8080:80 -n kubeflow) and any proxy settings."
        ) from None
    finally:
        pool.clear()
    if 300 <= resp.status < 400:
        raise SubmitError(
            f"Kubeflow Pipelines at {base} redirected the API call to a login page; pass a bearer token "
            f"(${TOKEN_ENV}) or use a port-forwarded URL."
        )
    if resp.status != 200:
        detail = _server_message(resp.data)
        detail = f": {_redact(detail, token)}" if detail else ""
        raise SubmitError(
            f"Kubeflow Pipelines at {base} answered HTTP {resp.status} to {url}{detail}; "
            f"{_http_hint(resp.status)}."
        )
    try:
        payload = json.loads(resp.data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        payload = None
    if not isinstance(payload, dict):
        raise SubmitError(
            f"{base} answered {url} with something that is not the Kubeflow Pipelines v2 API "
            "(a login page?); "
            f"check the URL and pass a bearer token via ${TOKEN_ENV} if the cluster needs one."
        )
    return bool(payload.get("multi_user") or payload.get("multiUser"))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence kfp.Client's own prints (links, 'Experiment details') and its FutureWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.redirect_stdout(io.StringIO()):
            yield


@contextlib.contextmanager
def _kfp_session(base: str, token: str | None) -> Iterator[Any]:
    import kfp

    try:
        with _quiet(), _api_errors(base, "connect", token):
            client = kfp.Client(host=base, existing_token=token)
    except TimeoutError:
        raise SubmitError(
            f"Kubeflow Pipelines at {base} did not answer its health check; check the ml-pipeline service."
        ) from None
    with _quiet():
        yield client


def _effective_namespace(client: Any, base: str, namespace: str | None, multi_user: bool) -> str | None:
    ns = (namespace or "").strip() or (client.get_user_namespace() or "").strip() or None
    if multi_user and ns is None:
        raise SubmitError(
            f"Kubeflow Pipelines at {base} runs in multi-user mode: pass --namespace with your Kubeflow "
            "profile namespace."
        )
    return ns


@contextlib.contextmanager
def _api_errors(base: str, action: str, token: str | None) -> Iterator[None]:
    """Turn what kfp/kfp_server_api/urllib3 raise into one-sentence SubmitErrors."""
    import kfp_server_api
    import urllib3

    try:
        yield
    except SubmitError:
        raise
    except kfp_server_api.ApiException as exc:
        status = int(exc.status or 0)
        if status == 0:
            raise SubmitError(
                f"Could not {action} at Kubeflow Pipelines {base} "
                f"({_redact(str(exc.reason or 'no answer'), token)}); check the URL, TLS and network."
            ) from None
        detail = _server_message(exc.body)
        detail = f" ({_redact(detail, token)})" if detail else ""
        raise SubmitError(
            f"Kubeflow Pipelines at {base} refused to {action}: HTTP {status}{detail}; {_http_hint(status)}."
        ) from None
    except urllib3.exceptions.HTTPError as exc:
        reason = getattr(exc, "reason", None) or exc
        raise SubmitError(
            f"Could not {action}: Kubeflow Pipelines at {base} is unreachable ({type(reason).__name__}); "
            "check the URL and that the API is reachable from here."
        ) from None
    except ValueError as exc:  # kfp.Client raises ValueError for ambiguous names and bad packages
        raise SubmitError(
            f"Kubeflow Pipelines at {base}: could not {action} ({_redact(str(exc), token)}); "
            "check the names passed."
        ) from None
