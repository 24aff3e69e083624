"""A stand-in Kubernetes API server for the custom-object endpoints the `kubernetes` client calls.

Namespaced custom objects (`/apis/{group}/{version}/namespaces/{ns}/{plural}[/{name}]`): create (POST, 409 on a
duplicate name), get, list, watch (`?watch=true`, newline-delimited JSON events, `fieldSelector=metadata.name=`
and `timeoutSeconds` honoured) and delete. State lives in memory; every request is recorded.

A tiny "operator" moves created jobs along: `script(name, [status, status, ...])` queues the statuses a job goes
through; each watch request first sends the object as it is (ADDED, as the real API does for a watch without a
resourceVersion), then applies the queued statuses one by one as MODIFIED events. With nothing queued a watch
stays open until its timeout (capped by `hold_s`) and ends without events. `on_create(hook)` runs a hook on
every created object (to act as the job's pods, e.g. writing their output). Pods can be read too
(`GET /api/v1/namespaces/{ns}/pods/{name}`, from `pods`), and Events listed
(`GET /api/v1/namespaces/{ns}/events?fieldSelector=involvedObject.kind=…,involvedObject.name=…,type=…`, from
`events`, as the API server shows events.k8s.io Events in core/v1: no `firstTimestamp`).

`unknown_fields[plural]` lists dotted paths an older CRD does not know: created with `fieldValidation=Strict` an
object holding one is refused (400, the API server's strict-decoding message); without it the field is dropped.

    with FakeK8sServer() as k8s:
        client = k8s.api_client()
        ...
        assert k8s.requests_to("DELETE")
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

_POD = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods/(?P<name>[^/]+)$")
_EVENTS = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/events$")
_PATH = re.compile(r"^/apis/(?P<group>[^/]+)/(?P<version>[^/]+)/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)"
                   r"(?:/(?P<name>[^/]+))?$")


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any


class FakeK8sServer:
    def __init__(self, hold_s: float = 0.2) -> None:
        self.hold_s = hold_s
        self.objects: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self.scripts: dict[str, list[dict[str, Any]]] = {}
        self.requests: list[Request] = []
        self.hooks: list[Callable[[dict[str, Any]], None]] = []
        #: Pods that GET /api/v1/namespaces/{ns}/pods/{name} returns, keyed by (namespace, name).
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        #: core/v1 Events, each with `metadata.namespace`, `involvedObject`, `type`, `reason`, `message`.
        self.events: list[dict[str, Any]] = []
        self.unknown_fields: dict[str, list[str]] = {}
        self.lock = threading.Lock()
        self._rv = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def __enter__(self) -> FakeK8sServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def api_client(self) -> Any:
        from kubernetes import client

        configuration = client.Configuration(host=self.url)
        return client.ApiClient(configuration)

    # -- test controls -----------------------------------------------------------------------------------------
    def script(self, name: str, statuses: list[dict[str, Any]]) -> None:
        with self.lock:
            self.scripts.setdefault(name, []).extend(statuses)

    def warn(self, namespace: str, kind: str, name: str, reason: str, message: str) -> None:
        """A Warning Event about an object, as a controller's events.k8s.io recorder writes it."""
        with self.lock:
            self.events.append({
                "apiVersion": "v1", "kind": "Event", "type": "Warning", "reason": reason, "message": message,
                "metadata": {"name": f"{name}.{len(self.events):x}", "namespace": namespace},
                "involvedObject": {"kind": kind, "name": name, "namespace": namespace},
                "firstTimestamp": None, "eventTime": "2026-01-01T00:00:00.000000Z", "action": "Reconciling",
            })

    def on_create(self, hook: Callable[[dict[str, Any]], None]) -> None:
        self.hooks.append(hook)

    def requests_to(self, method: str, plural: str | None = None) -> list[Request]:
        return [r for r in self.requests
                if r.method == method and (plural is None or f"/{plural}" in r.path)]

    def created(self) -> list[dict[str, Any]]:
        return [r.body for r in self.requests_to("POST")]

    # -- helpers -----------------------------------------------------------------------------------------------
    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def _send(self, code: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _status(self, code: int, reason: str, message: str) -> None:
                self._send(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
                                  "reason": reason, "code": code})

            def _route(self, method: str) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                with server.lock:
                    server.requests.append(Request(method, parts.path, query, body))
                events = _EVENTS.match(parts.path)
                if events and method == "GET":
                    wanted = dict(f.split("=", 1) for sel in query.get("fieldSelector", []) for f in sel.split(","))
                    fields = {"involvedObject.kind": lambda e: e["involvedObject"]["kind"],
                              "involvedObject.name": lambda e: e["involvedObject"]["name"],
                              "type": lambda e: e["type"], "reason": lambda e: e["reason"]}
                    items = [e for e in server.events if e["metadata"]["namespace"] == events["ns"]
                             and all(fields[k](e) == v for k, v in wanted.items())]
                    self._send(200, {"apiVersion": "v1", "kind": "EventList", "metadata": {}, "items": items})
                    return
                pod = _POD.match(parts.path)
                if pod and method == "GET":
                    found = server.pods.get((pod["ns"], pod["name"]))
                    if found is None:
                        self._status(404, "NotFound", f"pods {pod['name']!r} not found")
                    else:
                        self._send(200, found)
                    return
                m = _PATH.match(parts.path)
                if not m:
                    self._status(404, "NotFound", f"no route for {parts.path}")
                    return
                key = (m["group"], m["version"], m["ns"], m["plural"])
                name = m["name"]
                if method == "POST" and name is None:
                    self._create(key, body, strict=query.get("fieldValidation", [""])[0] == "Strict")
                elif method == "GET" and name is not None:
                    obj = server.objects.get((key[2], key[3], name, key[0]))
                    if obj is None:
                        self._status(404, "NotFound", f"{key[3]} {name!r} not found")
                    else:
                        self._send(200, obj)
                elif method == "GET" and query.get("watch", ["false"])[0] in ("true", "1", "True"):
                    self._watch(key, query)
                elif method == "GET":
                    self._send(200, {"apiVersion": f"{key[0]}/{key[1]}", "kind": "List",
                                     "metadata": {"resourceVersion": str(server._rv)},
                                     "items": self._matching(key, query)})
                elif method == "DELETE" and name is not None:
                    obj = server.objects.pop((key[2], key[3], name, key[0]), None)
                    if obj is None:
                        self._status(404, "NotFound", f"{key[3]} {name!r} not found")
                    else:
                        self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success",
                                         "details": {"name": name, "group": key[0], "kind": key[3]}})
                else:
                    self._status(405, "MethodNotAllowed", f"{method} {parts.path}")

            def _matching(self, key: tuple[str, str, str, str], query: dict[str, list[str]]) -> list[dict[str, Any]]:
                wanted = None
                for sel in query.get("fieldSelector", []):
                    if sel.startswith("metadata.name="):
                        wanted = sel.split("=", 1)[1]
                return [o for (ns, plural, name, group), o in server.objects.items()
                        if (ns, plural, group) == (key[2], key[3], key[0]) and wanted in (None, name)]

            def _create(self, key: tuple[str, str, str, str], body: Any, strict: bool = False) -> None:
                if not isinstance(body, dict) or "metadata" not in body or not body["metadata"].get("name"):
                    self._status(422, "Invalid", "metadata.name is required")
                    return
                for path in server.unknown_fields.get(key[3], []):
                    *parents, leaf = path.split(".")
                    holder = body
                    for part in parents:
                        holder = holder.get(part) if isinstance(holder, dict) else None
                    if isinstance(holder, dict) and leaf in holder:
                        if strict:
                            self._status(400, "BadRequest", f"{body.get('kind')} in version \"{key[1]}\" cannot be "
                                         f"handled as a {body.get('kind')}: strict decoding error: unknown field "
                                         f"\"{path}\"")
                            return
                        holder.pop(leaf)  # the API server prunes what the schema does not know
                name = body["metadata"]["name"]
                store_key = (key[2], key[3], name, key[0])
                with server.lock:
                    if store_key in server.objects:
                        self._status(409, "AlreadyExists", f"{key[3]} {name!r} already exists")
                        return
                    obj = json.loads(json.dumps(body))
                    obj["metadata"].update(uid=str(uuid.uuid4()), resourceVersion=server._next_rv(),
                                           creationTimestamp="2026-01-01T00:00:00Z", namespace=key[2])
                    server.objects[store_key] = obj
                for hook in server.hooks:
                    hook(obj)
                self._send(201, obj)

            def _event(self, kind: str, obj: dict[str, Any]) -> None:
                self.wfile.write((json.dumps({"type": kind, "object": obj}) + "\n").encode())
                self.wfile.flush()

            def _watch(self, key: tuple[str, str, str, str], query: dict[str, list[str]]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Connection", "close")
                self.end_headers()
                timeout = float(query.get("timeoutSeconds", ["30"])[0])
                for obj in self._matching(key, query):
                    self._event("ADDED", obj)
                    name = obj["metadata"]["name"]
                    while True:
                        with server.lock:
                            queue = server.scripts.get(name) or []
                            if not queue:
                                break
                            obj["status"] = queue.pop(0)
                            obj["metadata"]["resourceVersion"] = server._next_rv()
                        self._event("MODIFIED", obj)
                time.sleep(min(timeout, server.hold_s))

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

            def do_DELETE(self) -> None:
                self._route("DELETE")

        return Handler
