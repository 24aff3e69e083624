"""A stand-in Kubeflow Pipelines API server (REST ``/apis/v2beta1``) for tests.

It implements just the endpoints that ``kfp.Client`` 2.16 (through ``kfp_server_api``) calls for uploading
pipelines and versions, getting or creating experiments and creating runs, keeps its state in memory and
records every request, so a test can check what was uploaded (e.g. that the package is a valid pipeline
spec and holds no secret). Only the Python standard library is used; the server listens on 127.0.0.1 on a
free port and runs in a daemon thread.

Behaviour follows the real API server where the client can tell the difference: grpc-gateway style error
bodies (``{"code", "message", "details"}``), 409 for a duplicate pipeline or version name, 404 for unknown
ids, 400 for a package that is not a pipeline spec, multi-user mode requiring a namespace for experiments,
and an optional bearer token (401 without it).

    with FakeKfpServer() as kfp_api:
        client = kfp.Client(host=kfp_api.url)
        ...
        assert kfp_api.requests_to("POST", "/apis/v2beta1/pipelines/upload_version")
"""

from __future__ import annotations

import datetime as _dt
import email.parser
import email.policy
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import yaml

API = "/apis/v2beta1"

# grpc status codes used in error bodies
_GRPC = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 500: 13, 503: 14}

# kfp.Client sends filter operations as integers (see kfp/client/client.py _FILTER_OPERATIONS)
_OPERATIONS = {1: "EQUALS", 2: "NOT_EQUALS", 9: "IS_SUBSTRING"}


@dataclass(frozen=True)
class UploadedFile:
    """One file part of a multipart upload."""

    field: str
    filename: str
    content_type: str
    data: bytes

    def text(self) -> str:
        return self.data.decode("utf-8")

    def documents(self) -> list[Any]:
        """The YAML documents of the file (pipeline spec first, platform spec after)."""
        return [d for d in yaml.safe_load_all(self.text()) if d is not None]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    """Header names lower-cased."""
    body: bytes
    files: dict[str, UploadedFile] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else None

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class _Failure:
    method: str
    path_prefix: str
    status: int
    message: str
    times: int


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _new_id() -> str:
    return str(uuid.uuid4())


class FakeKfpServer:
    """In-memory KFP v2beta1 API on 127.0.0.1; use as a context manager or call start()/stop()."""

    def __init__(self, *, multi_user: bool = False, token: str | None = None, tag_name: str = "2.17.0",
                 tls: tuple[str, str] | None = None) -> None:
        """`tls`: (certificate, key) PEM files to serve HTTPS with."""
        self.tls = tls
        self.multi_user = multi_user
        self.token = token
        self.tag_name = tag_name
        self.requests: list[RecordedRequest] = []
        self.pipelines: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, list[dict[str, Any]]] = {}
        self.experiments: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self._failures: list[_Failure] = []
        self._lock = threading.RLock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    # ---- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> FakeKfpServer:
        handler = _make_handler(self)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        if self.tls is not None:
            import ssl

            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        self._port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-kfp-api", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> FakeKfpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port it listens (or listened) on."""
        if self._port is None:
            raise RuntimeError("the fake KFP server was never started")
        return self._port

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    # ---- test helpers ----------------------------------------------------------------------------------

    def fail_next(
        self, method: str, path_prefix: str, status: int, message: str = "injected", times: int = 1
    ) -> None:
        """Answer the next ``times`` requests matching method and path prefix with an error."""
        with self._lock:
            self._failures.append(_Failure(method.upper(), path_prefix, status, message, times))

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.method == method.upper() and r.path == path]

    def uploaded_files(self) -> list[UploadedFile]:
        """Every file uploaded through /pipelines/upload or /pipelines/upload_version, in order."""
        with self._lock:
            return [f for r in self.requests for f in r.files.values()]

    def versions_of(self, pipeline_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.versions.get(pipeline_id, []))

    # ---- request handling ------------------------------------------------------------------------------

    def _take_failure(self, method: str, path: str) -> _Failure | None:
        with self._lock:
            for failure in self._failures:
                if failure.method == method and path.startswith(failure.path_prefix):
                    failure.times -= 1
                    if failure.times <= 0:
                        self._failures.remove(failure)
                    return failure
        return None

    def handle(self, req: RecordedRequest) -> tuple[int, Any]:
        with self._lock:
            self.requests.append(req)
        failure = self._take_failure(req.method, req.path)
        if failure is not None:
            return failure.status, _error_body(failure.status, failure.message)
        if self.token is not None and req.headers.get("authorization") != f"Bearer {self.token}":
            return 401, _error_body(401, "Unauthenticated: missing or invalid bearer token")
        for method, pattern, func in self._routes():
            match = pattern.fullmatch(req.path)
            if method == req.method and match:
                try:
                    with self._lock:
                        return 200, func(req, **{k: unquote(v) for k, v in match.groupdict().items()})
                except ApiError as exc:
                    return exc.status, _error_body(exc.status, exc.message)
        return 404, _error_body(404, f"Not Found: {req.method} {req.path}")

    def _routes(self) -> Iterator[tuple[str, re.Pattern[str], Callable[..., Any]]]:
        table: list[tuple[str, str, Callable[..., Any]]] = [
            ("GET", r"/healthz", self._healthz),
            ("POST", r"/pipelines/upload", self._upload_pipeline),
            ("POST", r"/pipelines/upload_version", self._upload_version),
            ("POST", r"/pipelines", self._create_pipeline),
            ("GET", r"/pipelines", self._list_pipelines),
            ("GET", r"/pipelines/names/(?P<name>[^/]+)", self._get_pipeline_by_name),
            ("GET", r"/pipelines/(?P<pipeline_id>[^/]+)", self._get_pipeline),
            ("DELETE", r"/pipelines/(?P<pipeline_id>[^/]+)", self._delete_pipeline),
            ("GET", r"/pipelines/(?P<pipeline_id>[^/]+)/versions", self._list_versions),
            ("GET", r"/pipelines/(?P<pipeline_id>[^/]+)/versions/(?P<version_id>[^/]+)", self._get_version),
            ("POST", r"/experiments", self._create_experiment),
            ("GET", r"/experiments", self._list_experiments),
            ("GET", r"/experiments/(?P<experiment_id>[^/:]+)", self._get_experiment),
            ("POST", r"/runs", self._create_run),
            ("GET", r"/runs", self._list_runs),
            ("GET", r"/runs/(?P<run_id>[^/:]+)", self._get_run),
        ]
        for method, pattern, func in table:
            yield method, re.compile(re.escape(API) + pattern), func

    # ---- endpoints -------------------------------------------------------------------------------------

    def _healthz(self, req: RecordedRequest) -> dict[str, Any]:
        # as backend/src/apiserver/main.go's healthzResponse answers
        return {"commit_sha": "0" * 40, "tag_name": self.tag_name, "multi_user": self.multi_user,
                "pipeline_store": "database"}

    def _pipeline_exists(self, name: str, namespace: str) -> bool:
        return any(p["name"] == name and p.get("namespace", "") == namespace for p in self.pipelines.values())

    def _new_pipeline(self, name: str, display_name: str, description: str, namespace: str) -> dict[str, Any]:
        if not (name or display_name):
            raise ApiError(400, "Invalid input error: pipeline name is empty")
        name = name or display_name
        if self._pipeline_exists(name, namespace):
            raise ApiError(
                409,
                f"Already exists: Failed to create a new pipeline. The name {name} already exists. "
                "Please specify a new name",
            )
        pipeline = {
            "pipeline_id": _new_id(),
            "name": name,
            "display_name": display_name or name,
            "description": description,
            "created_at": _now(),
            "namespace": namespace,
        }
        self.pipelines[pipeline["pipeline_id"]] = pipeline
        self.versions[pipeline["pipeline_id"]] = []
        return pipeline

    def _new_version(
        self, pipeline_id: str, name: str, description: str, upload: UploadedFile
    ) -> dict[str, Any]:
        spec = _parse_pipeline_spec(upload)
        if any(v["name"] == name for v in self.versions[pipeline_id]):
            raise ApiError(
                409,
                f"Already exists: Failed to create a pipeline version. The name {name} already exists in "
                f"pipeline {pipeline_id}",
            )
        version = {
            "pipeline_id": pipeline_id,
            "pipeline_version_id": _new_id(),
            "name": name,
            "display_name": name,
            "description": description,
            "created_at": _now(),
            "pipeline_spec": spec,
        }
        self.versions[pipeline_id].append(version)
        return version

    def _upload_pipeline(self, req: RecordedRequest) -> dict[str, Any]:
        upload = _require_file(req)
        name = req.param("name") or req.param("display_name") or upload.filename.rsplit(".", 1)[0]
        namespace = req.param("namespace") or ""
        _parse_pipeline_spec(upload)  # reject a bad package before creating anything
        pipeline = self._new_pipeline(
            name, req.param("display_name") or name, req.param("description") or "", namespace
        )
        self._new_version(pipeline["pipeline_id"], name, req.param("description") or "", upload)
        return pipeline

    def _upload_version(self, req: RecordedRequest) -> dict[str, Any]:
        upload = _require_file(req)
        pipeline_id = req.param("pipelineid")
        if not pipeline_id or pipeline_id not in self.pipelines:
            raise ApiError(404, f"Not found: pipeline {pipeline_id} not found")
        name = req.param("name") or req.param("display_name") or upload.filename
        return self._new_version(pipeline_id, name, req.param("description") or "", upload)

    def _create_pipeline(self, req: RecordedRequest) -> dict[str, Any]:
        body = req.json() or {}
        return self._new_pipeline(
            body.get("name") or "",
            body.get("display_name") or "",
            body.get("description") or "",
            body.get("namespace") or "",
        )

    def _list_pipelines(self, req: RecordedRequest) -> dict[str, Any]:
        namespace = req.param("namespace") or ""
        items = [p for p in self.pipelines.values() if p.get("namespace", "") == namespace]
        items = _apply_filter(items, req.param("filter"))
        return _page(items, "pipelines", req)

    def _get_pipeline_by_name(self, req: RecordedRequest, name: str) -> dict[str, Any]:
        namespace = req.param("namespace") or ""
        for pipeline in self.pipelines.values():
            if pipeline["name"] == name and pipeline.get("namespace", "") == namespace:
                return pipeline
        raise ApiError(404, f"Not found: pipeline with name {name} not found")

    def _get_pipeline(self, req: RecordedRequest, pipeline_id: str) -> dict[str, Any]:
        if pipeline_id not in self.pipelines:
            raise ApiError(404, f"Not found: pipeline {pipeline_id} not found")
        return self.pipelines[pipeline_id]

    def _delete_pipeline(self, req: RecordedRequest, pipeline_id: str) -> dict[str, Any]:
        if pipeline_id not in self.pipelines:
            raise ApiError(404, f"Not found: pipeline {pipeline_id} not found")
        if self.versions.get(pipeline_id) and req.param("cascade") != "true":
            raise ApiError(
                400, f"Failed precondition: pipeline {pipeline_id} has versions; delete them first"
            )
        del self.pipelines[pipeline_id]
        self.versions.pop(pipeline_id, None)
        return {}

    def _list_versions(self, req: RecordedRequest, pipeline_id: str) -> dict[str, Any]:
        if pipeline_id not in self.pipelines:
            raise ApiError(404, f"Not found: pipeline {pipeline_id} not found")
        items = _apply_filter(list(self.versions[pipeline_id]), req.param("filter"))
        return _page(items, "pipeline_versions", req)

    def _get_version(self, req: RecordedRequest, pipeline_id: str, version_id: str) -> dict[str, Any]:
        for version in self.versions.get(pipeline_id, []):
            if version["pipeline_version_id"] == version_id:
                return version
        raise ApiError(404, f"Not found: pipeline version {version_id} not found")

    def _create_experiment(self, req: RecordedRequest) -> dict[str, Any]:
        body = req.json() or {}
        name = body.get("display_name") or ""
        namespace = body.get("namespace") or ""
        if not name:
            raise ApiError(400, "Invalid input error: experiment display_name is empty")
        if self.multi_user and not namespace:
            raise ApiError(400, "Invalid input error: In multi-user mode, experiment namespace must be set")
        if any(e["display_name"] == name and e["namespace"] == namespace for e in self.experiments.values()):
            raise ApiError(409, f"Already exists: experiment {name} already exists")
        experiment = {
            "experiment_id": _new_id(),
            "display_name": name,
            "description": body.get("description") or "",
            "created_at": _now(),
            "namespace": namespace,
            "storage_state": "AVAILABLE",
        }
        self.experiments[experiment["experiment_id"]] = experiment
        return experiment

    def _list_experiments(self, req: RecordedRequest) -> dict[str, Any]:
        namespace = req.param("namespace") or ""
        if self.multi_user and not namespace:
            raise ApiError(
                400, "Invalid input error: In multi-user mode, namespace must be set to list experiments"
            )
        items = [e for e in self.experiments.values() if e["namespace"] == namespace]
        items = _apply_filter(items, req.param("filter"))
        return _page(items, "experiments", req)

    def _get_experiment(self, req: RecordedRequest, experiment_id: str) -> dict[str, Any]:
        if experiment_id not in self.experiments:
            raise ApiError(404, f"Not found: experiment {experiment_id} not found")
        return self.experiments[experiment_id]

    def _create_run(self, req: RecordedRequest) -> dict[str, Any]:
        body = req.json() or {}
        experiment_id = body.get("experiment_id") or ""
        if experiment_id and experiment_id not in self.experiments:
            raise ApiError(404, f"Not found: experiment {experiment_id} not found")
        ref = body.get("pipeline_version_reference") or {}
        if ref:
            self._get_version(req, ref.get("pipeline_id", ""), ref.get("pipeline_version_id", ""))
        elif not body.get("pipeline_spec"):
            raise ApiError(
                400, "Invalid input error: a run needs a pipeline_spec or a pipeline_version_reference"
            )
        if not body.get("display_name"):
            raise ApiError(400, "Invalid input error: run display_name is empty")
        run = {
            "run_id": _new_id(),
            "experiment_id": experiment_id,
            "display_name": body["display_name"],
            "description": body.get("description") or "",
            "pipeline_version_reference": ref or None,
            "runtime_config": body.get("runtime_config") or {},
            "service_account": body.get("service_account") or "",
            "storage_state": "AVAILABLE",
            "state": "PENDING",
            "created_at": _now(),
        }
        self.runs[run["run_id"]] = run
        return run

    def _list_runs(self, req: RecordedRequest) -> dict[str, Any]:
        items = list(self.runs.values())
        experiment_id = req.param("experiment_id")
        if experiment_id:
            items = [r for r in items if r["experiment_id"] == experiment_id]
        return _page(_apply_filter(items, req.param("filter")), "runs", req)

    def _get_run(self, req: RecordedRequest, run_id: str) -> dict[str, Any]:
        if run_id not in self.runs:
            raise ApiError(404, f"Not found: run {run_id} not found")
        return self.runs[run_id]


# --------------------------------------------------------------------------------------------------------
# helpers


def _error_body(status: int, message: str) -> dict[str, Any]:
    return {"error": message, "code": _GRPC.get(status, 2), "message": message, "details": []}


def _require_file(req: RecordedRequest) -> UploadedFile:
    upload = req.files.get("uploadfile")
    if upload is None:
        raise ApiError(400, "Invalid input error: the multipart field 'uploadfile' is missing")
    return upload


def _parse_pipeline_spec(upload: UploadedFile) -> dict[str, Any]:
    try:
        docs = upload.documents()
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ApiError(400, f"Invalid input error: the uploaded file is not YAML or JSON ({exc})") from None
    spec = docs[0] if docs else None
    if not isinstance(spec, dict) or "pipelineInfo" not in spec or "root" not in spec:
        raise ApiError(
            400,
            "Invalid input error: Failed to create a pipeline version due to template creation error: "
            "the file is not a compiled pipeline spec",
        )
    return spec


def _apply_filter(items: list[dict[str, Any]], raw: str | None) -> list[dict[str, Any]]:
    if not raw:
        return items
    try:
        spec = json.loads(raw)
    except ValueError:
        raise ApiError(400, f"Invalid input error: filter is not JSON: {raw}") from None
    for predicate in spec.get("predicates", []):
        op = predicate.get("operation") or predicate.get("op")
        op = _OPERATIONS.get(op, op) if isinstance(op, int) else op
        key = predicate.get("key", "")
        value = predicate.get("stringValue", predicate.get("string_value"))
        if op == "EQUALS":
            items = [i for i in items if str(i.get(key, "")) == value]
        elif op == "NOT_EQUALS":
            items = [i for i in items if str(i.get(key, "")) != value]
        elif op == "IS_SUBSTRING":
            items = [i for i in items if str(value) in str(i.get(key, ""))]
        else:
            raise ApiError(400, f"Invalid input error: filter operation {op} is not supported by the fake")
    return items


def _page(items: list[dict[str, Any]], key: str, req: RecordedRequest) -> dict[str, Any]:
    sort_by = (req.param("sort_by") or "").strip()
    if sort_by:
        name, _, order = sort_by.partition(" ")
        items = sorted(items, key=lambda i: str(i.get(name, "")), reverse=order.strip().lower() == "desc")
    size = int(req.param("page_size") or 0) or len(items)
    page = items[:size]
    out: dict[str, Any] = {"total_size": len(items)}
    if page:
        out[key] = page
    if len(items) > size:
        out["next_page_token"] = str(size)
    return out


def _parse_multipart(content_type: str, body: bytes) -> dict[str, UploadedFile]:
    header = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(header + body)
    files: dict[str, UploadedFile] = {}
    if not message.is_multipart():
        return files
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        filename = part.get_filename() or ""
        payload = part.get_payload(decode=True)
        files[name] = UploadedFile(
            field=name,
            filename=filename,
            content_type=part.get_content_type(),
            data=payload if isinstance(payload, bytes) else b"",
        )
    return files


def _make_handler(server: FakeKfpServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "FakeKFP/2.16"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            return  # keep pytest output clean

        def _dispatch(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            content_type = self.headers.get("Content-Type") or ""
            files = _parse_multipart(content_type, body) if content_type.startswith("multipart/") else {}
            req = RecordedRequest(
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                files=files,
            )
            try:
                status, payload = server.handle(req)
            except Exception as exc:  # a bug in the fake: answer 500 rather than hang the client
                status, payload = 500, _error_body(500, f"fake server error: {exc!r}")
            data = json.dumps(payload).encode()
            self.send_response(
                status, HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
            )
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = _dispatch  # noqa: N815 - http.server naming
        do_POST = _dispatch  # noqa: N815
        do_DELETE = _dispatch  # noqa: N815
        do_PATCH = _dispatch  # noqa: N815

    return Handler


@pytest.fixture
def fake_kfp() -> Iterator[FakeKfpServer]:
    """A running single-user fake KFP API; import this fixture into a test module to use it."""
    with FakeKfpServer() as api:
        yield api
