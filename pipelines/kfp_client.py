"""The connection to a Kubeflow Pipelines API server (KFP SDK 2.16, REST API ``v2beta1``): the host URL, the bearer
token, a health check before anything is sent, a quiet ``kfp.Client`` session, the namespace, and the
translation of what the client raises into :class:`SubmitError`, one sentence naming the host and what to check.

Credentials: the bearer token comes from the ``existing_token`` argument, else the ``KFP_TOKEN`` environment
variable, else the file Kubeflow mounts into notebooks and pods for the KFP API (``KF_PIPELINES_SA_TOKEN_PATH``,
by default ``/var/run/secrets/kubeflow/pipelines/token``, as ``kfp.Client`` reads it). It is sent as an
``Authorization`` header and never printed, logged or put into an error message. A private endpoint's CA
bundle is passed as ``ca_cert`` (``--ca-cert``, ``KFP_CA_CERT``).

The server's release (``tag_name`` of ``/apis/v2beta1/healthz``) is checked against :data:`MIN_KFP_VERSION`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import warnings
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

TOKEN_ENV = "KFP_TOKEN"
"""Environment variable holding the bearer token for the KFP API (used when no token is passed)."""
TOKEN_PATH_ENV = "KF_PIPELINES_SA_TOKEN_PATH"
"""Where Kubeflow's PodDefault puts the projected KFP token of a notebook or pod (kfp.client's own name)."""
DEFAULT_TOKEN_PATH = "/var/run/secrets/kubeflow/pipelines/token"

MIN_KFP_VERSION = "2.14.0"
"""The oldest KFP backend that runs the package: collecting the shards' outputs out of a ParallelFor
(``dsl.Collected``) reached the backend in 2.14.0 (KFP CHANGELOG: "enable dsl.Collected for parameters &
artifacts", #11725); Kubeflow Platform releases ship it from 1.11 on."""

_PREFLIGHT_TIMEOUT_S = 15.0
_MAX_SERVER_MESSAGE = 300


class SubmitError(Exception):
    """A pipeline could not be uploaded or started; the message is one sentence saying what to check."""


def normalize_host(host: str) -> str:
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


def resolve_token(existing_token: str | None) -> str | None:
    """The argument, else $KFP_TOKEN, else the mounted ServiceAccount token file (read fresh each time: the
    kubelet rotates it)."""
    token = existing_token if existing_token else os.environ.get(TOKEN_ENV, "")
    if not token.strip():
        path = os.environ.get(TOKEN_PATH_ENV) or DEFAULT_TOKEN_PATH
        try:
            token = open(path, encoding="utf-8").read()  # noqa: SIM115 - tiny file, read once
        except FileNotFoundError:
            if os.environ.get(TOKEN_PATH_ENV):
                raise SubmitError(f"${TOKEN_PATH_ENV} names {path}, which does not exist; fix the path or unset "
                                  "it.") from None
        except OSError as exc:
            raise SubmitError(f"Could not read the KFP token file {path} ({type(exc).__name__}); check its "
                              "permissions.") from None
    token = token.strip()
    return token or None


def resolve_ca_cert(ca_cert: str | None) -> str | None:
    """A CA bundle file for TLS to a private endpoint: the argument, else $KFP_CA_CERT; None: the public CAs."""
    path = (ca_cert or os.environ.get(CA_CERT_ENV, "")).strip()
    if not path:
        return None
    if not os.path.isfile(path):
        raise SubmitError(f"The CA bundle {path} (--ca-cert or ${CA_CERT_ENV}) does not exist; pass the PEM file of "
                          "the certificate authority that signed the Kubeflow endpoint's certificate.")
    return path


CA_CERT_ENV = "KFP_CA_CERT"


def redact(text: str, token: str | None) -> str:
    return text.replace(token, "***") if token else text


def server_message(body: bytes | str | None) -> str:
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


def http_hint(status: int) -> str:
    if status in (401, 403):
        return (f"check the bearer token (argument, ${TOKEN_ENV} or the file ${TOKEN_PATH_ENV} names) and that it "
                "may use this namespace")
    if status == 404:
        return "check that the URL points at the Kubeflow Pipelines UI/API (the one serving /apis/v2beta1)"
    if status == 409:
        return "the name is already taken; choose another version or pipeline name"
    if 400 <= status < 500:
        return "check the package and the names passed"
    return "check the Kubeflow Pipelines API server (ml-pipeline) logs"


def check_server_version(base: str, tag: str | None) -> None:
    """Refuse a KFP backend older than MIN_KFP_VERSION; a release it does not name ("unknown", a dev build) is
    let through."""
    match = re.fullmatch(r"v?(\d+)\.(\d+)\.(\d+)(?:[-+.].*)?", (tag or "").strip())
    if match is None:
        return
    if tuple(map(int, match.groups())) < tuple(map(int, MIN_KFP_VERSION.split("."))):
        raise SubmitError(
            f"Kubeflow Pipelines at {base} is release {tag}; this pipeline collects its shards' outputs out of a "
            f"ParallelFor (dsl.Collected), which KFP's backend runs from {MIN_KFP_VERSION} on (Kubeflow 1.11): "
            "upgrade Kubeflow Pipelines."
        )


def preflight(base: str, token: str | None, ca_cert: str | None = None) -> bool:
    """Check that ``base`` serves the KFP v2beta1 API of a recent enough release; returns its multi-user flag."""
    import certifi
    import urllib3

    url = f"{base}/apis/v2beta1/healthz"
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    pool = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=ca_cert or certifi.where())
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
            f"TLS to Kubeflow Pipelines at {base} failed ({redact(type(exc).__name__, token)}); "
            "check the certificate (a private CA: --ca-cert) or use the right http/https scheme."
        ) from None
    except urllib3.exceptions.HTTPError as exc:
        reason = getattr(exc, "reason", None) or exc
        if isinstance(reason, urllib3.exceptions.SSLError):  # after retries urllib3 wraps it in MaxRetryError
            raise SubmitError(
                f"TLS to Kubeflow Pipelines at {base} failed (the certificate is not trusted here); pass the CA "
                f"that signed it with --ca-cert (or ${CA_CERT_ENV}), or use the right http/https scheme."
            ) from None
        raise SubmitError(
            f"Could not reach Kubeflow Pipelines at {base} ({redact(type(reason).__name__, token)}); "
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
        detail = server_message(resp.data)
        detail = f": {redact(detail, token)}" if detail else ""
        raise SubmitError(
            f"Kubeflow Pipelines at {base} answered HTTP {resp.status} to {url}{detail}; "
            f"{http_hint(resp.status)}."
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
    check_server_version(base, payload.get("tag_name"))
    return bool(payload.get("multi_user") or payload.get("multiUser"))


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence kfp.Client's own prints (links, 'Experiment details') and its FutureWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.redirect_stdout(io.StringIO()):
            yield


@contextlib.contextmanager
def kfp_session(base: str, token: str | None, ca_cert: str | None = None) -> Iterator[Any]:
    import kfp

    try:
        with quiet(), api_errors(base, "connect", token):
            client = kfp.Client(host=base, existing_token=token, ssl_ca_cert=ca_cert)
    except TimeoutError:
        raise SubmitError(
            f"Kubeflow Pipelines at {base} did not answer its health check; check the ml-pipeline service."
        ) from None
    with quiet():
        yield client


def effective_namespace(client: Any, base: str, namespace: str | None, multi_user: bool) -> str | None:
    ns = (namespace or "").strip() or (client.get_user_namespace() or "").strip() or None
    if multi_user and ns is None:
        raise SubmitError(
            f"Kubeflow Pipelines at {base} runs in multi-user mode: pass --namespace with your Kubeflow "
            "profile namespace."
        )
    return ns


@contextlib.contextmanager
def api_errors(base: str, action: str, token: str | None) -> Iterator[None]:
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
                f"({redact(str(exc.reason or 'no answer'), token)}); check the URL, TLS and network."
            ) from None
        detail = server_message(exc.body)
        detail = f" ({redact(detail, token)})" if detail else ""
        raise SubmitError(
            f"Kubeflow Pipelines at {base} refused to {action}: HTTP {status}{detail}; {http_hint(status)}."
        ) from None
    except urllib3.exceptions.HTTPError as exc:
        reason = getattr(exc, "reason", None) or exc
        raise SubmitError(
            f"Could not {action}: Kubeflow Pipelines at {base} is unreachable ({type(reason).__name__}); "
            "check the URL and that the API is reachable from here."
        ) from None
    except ValueError as exc:  # kfp.Client raises ValueError for ambiguous names and bad packages
        raise SubmitError(
            f"Kubeflow Pipelines at {base}: could not {action} ({redact(str(exc), token)}); "
            "check the names passed."
        ) from None
