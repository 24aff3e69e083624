"""A real S3 protocol server on loopback (moto's server mode) and a fault-injecting HTTP proxy in front of it.

``moto_server()`` runs moto's ``ThreadedMotoServer`` on 127.0.0.1 (a free port) and yields its endpoint URL.
``FaultProxy`` is a reverse proxy on 127.0.0.1 that forwards every request unchanged (Host header, signed headers
and body bytes included, so SigV4 signatures and path- vs virtual-host-style addressing work as the client
intended) and injects faults on a deterministic schedule (``FaultPlan``). No real credentials are needed: set the
variables from ``s3_env()`` (dummy keys) before creating a client, e.g. with ``monkeypatch.setenv``.

    with moto_server() as endpoint, FaultProxy(endpoint, FaultPlan.every(3, "503", max_faults=5)) as proxy:
        for name, value in s3_env(proxy.url).items():
            monkeypatch.setenv(name, value)
        boto3.client("s3").put_object(Bucket="some-bucket", Key="k", Body=b"x")
        assert proxy.injected["503"] <= 5

Fault kinds (``Fault``):

- ``"500"`` / ``"503"``: reply 500 InternalError / 503 SlowDown with an S3 XML error body; not forwarded.
- ``"reset"``: close the client connection with a TCP RST (SO_LINGER 0) and no reply; not forwarded.
- ``"reset_after_forward"``: forward (the server applies the request), then reset the client connection.
- ``"truncate"``: forward, then send the status and headers (full Content-Length) but only half the body, then
  close. A response without a body (HEAD, most PUT replies) passes unharmed but is still counted; aim it at GETs
  with ``methods``.
- ``"slow"``: forward, then wait ``slow_seconds`` before replying (pair with a short client ``read_timeout``).

Request bodies sent with ``Transfer-Encoding: chunked`` are de-chunked and forwarded with a Content-Length (or
re-framed as one chunk with ``forward_chunked=True``); any ``Content-Encoding: aws-chunked`` framing inside is
left alone for the server to decode. ``Expect: 100-continue`` is answered by the proxy and not forwarded.
"""

from __future__ import annotations

import collections
import http.client
import json
import random
import re
import socket
import struct
import sys
import threading
import urllib.request
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, NamedTuple, get_args
from urllib.parse import urlsplit

Fault = Literal["500", "503", "reset", "reset_after_forward", "truncate", "slow"]
FAULT_KINDS: tuple[Fault, ...] = get_args(Fault)
#: A custom schedule: called with (method, request target) for every request, returns the fault to inject or None.
FaultChooser = Callable[[str, str], Fault | None]

DUMMY_ACCESS_KEY_ID = "testing-key-id"
DUMMY_SECRET_ACCESS_KEY = "testing-secret-key-value"
REGION = "us-east-1"

# Headers that describe one hop of the connection, not the request; never forwarded as they are.
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
                         "te", "trailer", "transfer-encoding", "upgrade", "expect"})
_ERRORS: dict[Fault | None, tuple[int, str, str]] = {
    "500": (500, "InternalError", "We encountered an internal error. Please try again."),
    "503": (503, "SlowDown", "Please reduce your request rate."),
}


# -- moto ------------------------------------------------------------------------------------------------------


@contextmanager
def moto_server() -> Iterator[str]:
    """Run moto's server mode on 127.0.0.1 (free port) in a thread; yields ``http://127.0.0.1:PORT``.

    Moto keeps its state per process (shared with any in-process ``mock_aws``); use unique bucket names or
    ``moto_reset()``. It does not check signatures unless ``moto_require_signatures()`` is active.
    """
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        wsgi_server = getattr(server, "_server", None)  # stop() shuts the server down but leaves its socket open
        if wsgi_server is not None:
            wsgi_server.server_close()


def s3_env(endpoint: str) -> dict[str, str]:
    """Environment for an S3 client talking to ``endpoint``: dummy keys, region, endpoint, no shared config files."""
    return {
        "AWS_ACCESS_KEY_ID": DUMMY_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET_ACCESS_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL_S3": endpoint,
        # Keep ~/.aws/{config,credentials} (profiles, retry settings, endpoints) out of the tests.
        "AWS_CONFIG_FILE": "/nonexistent/aws-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    }


#: Variables that would change what an S3 client does under ``s3_env()``; tests should unset them.
AWS_ENV_TO_CLEAR: tuple[str, ...] = (
    "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL",
    "AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS", "AWS_REQUEST_CHECKSUM_CALCULATION", "AWS_RESPONSE_CHECKSUM_VALIDATION",
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy", "no_proxy",
)


def _moto_api(endpoint: str, path: str, data: bytes = b"") -> dict[str, Any]:
    # Not form-encoded (urllib's default), or werkzeug parses the body away before moto reads request.data.
    request = urllib.request.Request(f"{endpoint}/moto-api/{path}", data=data, method="POST",
                                     headers={"Content-Type": "text/plain"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, whatever the env says
    with opener.open(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


def moto_reset(endpoint: str) -> None:
    """Drop all of moto's state (buckets, objects, IAM users) through its ``/moto-api/reset`` endpoint."""
    _moto_api(endpoint, "reset")


@contextmanager
def moto_require_signatures(endpoint: str) -> Iterator[tuple[str, str]]:
    """Make moto verify SigV4 signatures and IAM permissions; yields (access key id, secret) allowed ``s3:*``.

    Creates an IAM user with an access key in moto first (auth is off while doing so) and restores moto's
    previous setting on exit. The setting is global to the moto server (and process).
    """
    import boto3

    iam = boto3.client("iam", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=DUMMY_ACCESS_KEY_ID,
                       aws_secret_access_key=DUMMY_SECRET_ACCESS_KEY)
    user = f"fault-proxy-{uuid.uuid4().hex[:12]}"
    iam.create_user(UserName=user)
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    iam.put_user_policy(UserName=user, PolicyName="s3-all", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    previous = _moto_api(endpoint, "reset-auth", b"0")["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"]
    try:
        yield key["AccessKeyId"], key["SecretAccessKey"]
    finally:
        _moto_api(endpoint, "reset-auth", str(previous).encode())


# -- fault schedule --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class FaultPlan:
    """A reproducible fault schedule over the requests whose method is in ``methods`` (all when None) and whose
    raw target (path and query) matches the regex ``target`` (searched; all when None).

    With ``every_nth`` the n-th, 2n-th, ... such request gets a fault, cycling through ``kinds`` (default: the
    keys of ``rates``); otherwise each request gets fault ``k`` with probability ``rates[k]``, drawn from
    ``random.Random(seed)``. At most ``max_faults`` faults are injected in total. Not thread-safe on its own
    (``FaultProxy`` serialises calls).
    """

    rates: Mapping[Fault, float] | Sequence[tuple[Fault, float]] = ()
    seed: int = 0
    every_nth: int | None = None
    kinds: Sequence[Fault] = ()
    methods: Collection[str] | None = None
    target: str | None = None
    max_faults: int | None = None
    injected: int = field(default=0, init=False)
    _rates: dict[Fault, float] = field(init=False, repr=False)
    _rng: random.Random = field(init=False, repr=False)
    _eligible: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        self._rates = dict(self.rates)
        self.kinds = tuple(self.kinds) or tuple(self._rates)
        for kind in self.kinds:
            if kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
        if any(rate < 0 for rate in self._rates.values()) or sum(self._rates.values()) > 1:
            raise ValueError(f"fault rates must be >= 0 and sum to at most 1: {self._rates}")
        if self.every_nth is not None and (self.every_nth < 1 or not self.kinds):
            raise ValueError("every_nth needs n >= 1 and at least one fault kind")
        if self.methods is not None:
            self.methods = frozenset(m.upper() for m in self.methods)
        self._rng = random.Random(self.seed)

    @classmethod
    def every(cls, n: int, *kinds: Fault, methods: Collection[str] | None = None, target: str | None = None,
              max_faults: int | None = None) -> FaultPlan:
        """Inject on every n-th matching request, cycling through ``kinds``."""
        return cls(every_nth=n, kinds=kinds, methods=methods, target=target, max_faults=max_faults)

    def choose(self, method: str, path: str) -> Fault | None:
        """The fault for the next request (``path`` is the raw request target), or None."""
        if self.methods is not None and method.upper() not in self.methods:
            return None
        if self.target is not None and not re.search(self.target, path):
            return None
        if self.max_faults is not None and self.injected >= self.max_faults:
            return None
        self._eligible += 1
        fault: Fault | None = None
        if self.every_nth is not None:
            if self._eligible % self.every_nth == 0:
                fault = self.kinds[(self._eligible // self.every_nth - 1) % len(self.kinds)]
        else:
            draw, total = self._rng.random(), 0.0
            for kind, rate in self._rates.items():
                total += rate
                if draw < total:
                    fault = kind
                    break
        if fault is not None:
            self.injected += 1
        return fault


class Seen(NamedTuple):
    """One request the proxy received: method, raw target, fault injected (or None), whether its body was chunked."""

    method: str
    path: str
    fault: Fault | None
    chunked: bool = False


# -- proxy -----------------------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        self.aborted: set[socket.socket] = set()
        self.open: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open.discard(request)
            aborted = request in self.aborted
            self.aborted.discard(request)
        if aborted:  # skip the graceful FIN of shutdown(SHUT_WR): close() with SO_LINGER 0 sends a RST
            self.close_request(request)
        else:
            super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # clients vanishing mid-request (timeouts, resets) are expected here
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.sockets_lock:
            self.server.open.add(self.connection)
        with self.server.proxy._lock:
            self.server.proxy.connections += 1

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._proxy()

    do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    def _proxy(self) -> None:
        try:
            self._proxy_one()
        except OSError:  # the client went away (e.g. its read timeout fired during a "slow" fault)
            self.close_connection = True

    def _proxy_one(self) -> None:
        proxy = self.server.proxy
        body, chunked = self._read_body()
        if body is None:
            return
        fault = proxy._next_fault(self.command, self.path, chunked)
        if fault in _ERRORS:
            self._send_s3_error(*_ERRORS[fault])
            return
        if fault == "reset":
            self._reset()
            return
        try:
            status, reason, headers, data = self._forward(body, chunked and proxy.forward_chunked)
        except OSError as exc:
            self._send_s3_error(502, "BadGateway", f"fault proxy: upstream failed: {exc}")
            return
        if fault == "reset_after_forward":
            self._reset()
            return
        if fault == "slow" and proxy._closing.wait(proxy.slow_seconds):
            self._reset()
            return
        self._reply(status, reason, headers, data, truncate=fault == "truncate")

    def _read_body(self) -> tuple[bytes | None, bool]:
        """The request body (de-chunked) and whether it came chunked; None if the request is unusable.

        A malformed request gets a 400; one whose body ends early (the client gave up) gets no reply. Either way
        the connection is closed and nothing is forwarded.
        """
        encodings = [e.strip().lower() for e in self.headers.get("Transfer-Encoding", "").split(",") if e.strip()]
        length = self.headers.get("Content-Length")
        try:
            if encodings:
                if encodings[-1] != "chunked":
                    raise ValueError("unsupported Transfer-Encoding")
                return self._read_chunked(), True
            if length is None:
                return b"", False
            if not length.strip().isdigit():
                raise ValueError("bad Content-Length")
            body = self.rfile.read(int(length))
            if len(body) < int(length):
                raise EOFError
            return body, False
        except ValueError as exc:
            self.close_connection = True
            self._send_s3_error(400, "BadRequest", f"fault proxy: {exc}")
        except EOFError:
            self.close_connection = True
        return None, False

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            line = self.rfile.readline(65537)
            if not line:
                raise EOFError
            size = int(line.split(b";", 1)[0].strip(), 16)  # ValueError: a malformed chunk
            if size < 0:
                raise ValueError("malformed chunk size")
            if size == 0:
                while (trailer := self.rfile.readline(65537)) not in (b"\r\n", b"\n"):  # HTTP trailers: dropped
                    if not trailer:
                        raise EOFError
                return b"".join(parts)
            data = self.rfile.read(size)
            if len(data) < size:
                raise EOFError
            if self.rfile.readline(65537) not in (b"\r\n", b"\n"):
                raise ValueError("malformed chunk")
            parts.append(data)

    def _forward(self, body: bytes, chunked: bool) -> tuple[int, str, list[tuple[str, str]], bytes]:
        proxy = self.server.proxy
        target = self.path
        if target.startswith(("http://", "https://")):
            # Absolute form (the client uses us as an HTTP proxy): send the origin form, keep the Host header.
            parts = urlsplit(target)
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn = http.client.HTTPConnection(proxy._upstream_host, proxy._upstream_port, timeout=proxy.upstream_timeout)
        try:
            conn.putrequest(self.command, target, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                    conn.putheader(name, value)
            if chunked:
                conn.putheader("Transfer-Encoding", "chunked")
                framed = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
                conn.endheaders(framed)
            else:
                if body or "Content-Length" in self.headers or self.command in ("POST", "PUT", "PATCH"):
                    conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body or None)
            with proxy._lock:
                proxy.forwarded += 1
            response = conn.getresponse()
            data = response.read()
            return response.status, response.reason, response.getheaders(), data
        finally:
            conn.close()

    def _reply(self, status: int, reason: str, headers: list[tuple[str, str]], data: bytes, truncate: bool) -> None:
        self.send_response_only(status, reason)
        has_length = False
        for name, value in headers:
            lname = name.lower()
            if lname in _HOP_BY_HOP:
                continue
            has_length = has_length or lname == "content-length"
            self.send_header(name, value)
        bodyless = self.command == "HEAD" or status in (204, 304) or 100 <= status < 200
        if not has_length and not bodyless:
            self.send_header("Content-Length", str(len(data)))
        if truncate:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if not bodyless:
            self.wfile.write(data[: len(data) // 2] if truncate else data)

    def _send_s3_error(self, status: int, code: str, message: str) -> None:
        request_id = f"faultproxy{id(self):x}"
        xml = ('<?xml version="1.0" encoding="UTF-8"?>\n'
               f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{request_id}</RequestId>"
               "<HostId>fault-proxy</HostId></Error>").encode()
        self.send_response_only(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("x-amz-request-id", request_id)
        self.send_header("Content-Length", "0" if self.command == "HEAD" else str(len(xml)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(xml)

    def _reset(self) -> None:
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with self.server.sockets_lock:
            self.server.aborted.add(self.connection)


class FaultProxy:
    """A reverse proxy on 127.0.0.1 in front of ``upstream`` that injects faults; use as a context manager.

    ``faults`` is a ``FaultPlan``, a list of ``(kind, rate)`` pairs (a ``FaultPlan`` with seed 0), a callable
    ``(method, target) -> Fault | None``, or None for no faults. Counters (updated under a lock): ``requests``
    (received), ``forwarded`` (sent upstream), ``connections`` (client connections accepted), ``injected`` (faults
    by kind) and ``seen`` (every request, in arrival order). Clients may also use it as an HTTP proxy
    (absolute-form targets), which is how virtual-host-style requests reach it without DNS.
    """

    def __init__(self, upstream: str, faults: FaultPlan | Sequence[tuple[Fault, float]] | FaultChooser | None = None,
                 *, slow_seconds: float = 0.5, forward_chunked: bool = False, upstream_timeout: float = 60.0) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be an http:// URL, got {upstream!r}")
        self.upstream = upstream
        self._upstream_host = parts.hostname
        self._upstream_port = parts.port or 80
        self.slow_seconds = slow_seconds
        self.forward_chunked = forward_chunked
        self.upstream_timeout = upstream_timeout
        self.injected: collections.Counter[str] = collections.Counter()
        self.requests = 0
        self.forwarded = 0
        self.connections = 0
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._paused = False
        self._closing = threading.Event()
        self._choose: FaultChooser | None = None
        self.set_faults(faults)
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fault-proxy", daemon=True)
        self._started = False

    @property
    def url(self) -> str:
        """The proxy's endpoint, ``http://127.0.0.1:PORT``."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start serving in a background thread."""
        if not self._started:
            self._started = True
            self._thread.start()

    def close(self) -> None:
        """Stop serving and drop open client connections (idle keep-alive ones included)."""
        self._closing.set()
        if self._started:
            self._server.shutdown()
            self._thread.join()
        with self._server.sockets_lock:
            open_sockets = list(self._server.open)
        for sock in open_sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._server.server_close()

    def set_faults(self, faults: FaultPlan | Sequence[tuple[Fault, float]] | FaultChooser | None) -> None:
        """Replace the fault schedule."""
        if faults is None:
            chooser: FaultChooser | None = None
        elif isinstance(faults, FaultPlan):
            chooser = faults.choose
        elif callable(faults):
            chooser = faults
        else:
            chooser = FaultPlan(rates=list(faults)).choose
        with self._lock:
            self._choose = chooser

    def pause_faults(self) -> None:
        """Forward everything unharmed (the schedule does not advance) until ``resume_faults()``."""
        with self._lock:
            self._paused = True

    def resume_faults(self) -> None:
        """Inject faults again after ``pause_faults()``."""
        with self._lock:
            self._paused = False

    @contextmanager
    def no_faults(self) -> Iterator[None]:
        """Pause faults inside a ``with`` block (e.g. for test setup)."""
        self.pause_faults()
        try:
            yield
        finally:
            self.resume_faults()

    def _next_fault(self, method: str, path: str, chunked: bool) -> Fault | None:
        with self._lock:
            self.requests += 1
            fault = None if self._paused or self._choose is None else self._choose(method, path)
            if fault is not None:
                if fault not in FAULT_KINDS:
                    raise ValueError(f"unknown fault kind {fault!r}")
                self.injected[fault] += 1
            self.seen.append(Seen(method, path, fault, chunked))
            return fault
