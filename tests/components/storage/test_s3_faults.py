"""The S3 test infrastructure itself: moto's server mode behind the fault-injecting proxy, driven by plain boto3.

Everything stays on 127.0.0.1 and uses dummy credentials. Findings pinned here (boto3/botocore 1.44.5, moto 5.2.5):

- ``retries={"max_attempts": N}`` counts *retries*, not attempts: ``max_attempts=1`` sends a request twice.
  ``total_max_attempts=1`` is the setting for "exactly one request".
- 500/503 replies, connection resets and read timeouts are all retried by botocore's standard mode. SlowDown (503)
  counts as throttling: its backoff starts at up to 1 s instead of up to 50 ms.
- A truncated body of a non-streaming operation (e.g. ListObjectsV2) is retried: botocore's S3 handler turns a 200
  with an unparseable XML body into a 500. A truncated GetObject body is *not* retried by botocore (the body is
  read after the call returned) and surfaces as ResponseStreamingError; s3transfer's ``download_file`` retries it.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import http.client
import os
import socket
import uuid
import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import botocore.exceptions
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from tests.fakes.s3_server import (
    AWS_ENV_TO_CLEAR,
    FAULT_KINDS,
    Fault,
    FaultPlan,
    FaultProxy,
    moto_require_signatures,
    moto_server,
    s3_env,
)

MB = 1024 * 1024
NO_RETRIES = {"max_attempts": 1, "mode": "standard"}  # one retry: see the module docstring
RETRIES = {"max_attempts": 10, "mode": "standard"}


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, moto_endpoint: str) -> None:
    """Dummy credentials and region, moto as the default S3 endpoint, nothing from the real environment."""
    for name in AWS_ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    for name, value in s3_env(moto_endpoint).items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def proxy(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """A proxy without faults in front of moto, set as the default S3 endpoint; tests set faults themselves."""
    with FaultProxy(moto_endpoint) as fault_proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", fault_proxy.url)
        yield fault_proxy


@pytest.fixture
def bucket(moto_endpoint: str) -> str:
    """A fresh bucket, created directly in moto (not through the proxy)."""
    name = f"bkt-{uuid.uuid4().hex[:12]}"
    s3_client(moto_endpoint).create_bucket(Bucket=name)
    return name


@functools.cache
def shared_session() -> boto3.session.Session:
    """One session for the module's clients (a fresh one costs ~50 ms per client); env is read per client."""
    return boto3.session.Session()


def s3_client(endpoint: str | None = None, retries: dict[str, Any] | None = None, **config: Any) -> Any:
    """A path-style S3 client; the endpoint comes from the environment (AWS_ENDPOINT_URL_S3) unless given."""
    cfg = Config(s3={"addressing_style": "path"}, retries=retries or NO_RETRIES, **config)
    return shared_session().client("s3", endpoint_url=endpoint, config=cfg)


def force_trailing_checksum(params: dict[str, Any], **_: Any) -> None:
    """Make botocore send ``aws-chunked`` with a trailing checksum, which it otherwise only does over https."""
    algorithm = params["context"].get("checksum", {}).get("request_algorithm")
    if isinstance(algorithm, dict):
        algorithm["in"] = "trailer"


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


# -- the fault schedule ----------------------------------------------------------------------------------------


def test_fault_plan_every_nth_cycles_kinds_and_filters() -> None:
    plan = FaultPlan.every(2, "500", "reset", methods=["get"], target=r"/data/")
    chosen = [plan.choose(method, path) for method, path in [
        ("GET", "/b/data/1"), ("GET", "/b/data/2"), ("PUT", "/b/data/3"), ("GET", "/b/other"),
        ("GET", "/b/data/4"), ("GET", "/b/data/5"), ("GET", "/b/data/6"), ("GET", "/b/data/7"),
    ]]
    assert chosen == [None, "500", None, None, None, "reset", None, "500"]
    assert plan.injected == 3


def test_fault_plan_rates_are_reproducible_and_capped() -> None:
    def run(seed: int, max_faults: int | None = None) -> list[Fault | None]:
        plan = FaultPlan({"500": 0.3, "truncate": 0.2}, seed=seed, max_faults=max_faults)
        return [plan.choose("GET", f"/b/k{i}") for i in range(200)]

    first = run(7)
    assert first == run(7)
    assert first != run(8)
    counts = Counter(first)
    assert 40 <= counts["500"] <= 80 and 20 <= counts["truncate"] <= 60
    assert sum(f is not None for f in run(7, max_faults=5)) == 5
    with pytest.raises(ValueError):
        FaultPlan({"500": 0.8, "503": 0.8})
    with pytest.raises(ValueError):
        FaultPlan.every(1, "teapot")  # type: ignore[arg-type]


# -- forwarding without faults ---------------------------------------------------------------------------------


def test_roundtrip_without_faults_reuses_connections(proxy: FaultProxy, bucket: str) -> None:
    s3 = s3_client()  # endpoint from AWS_ENDPOINT_URL_S3 = the proxy
    s3.put_object(Bucket=bucket, Key="dir/a.txt", Body=b"alpha")
    s3.put_object(Bucket=bucket, Key="dir/b.txt", Body=b"beta" * 1000)
    assert s3.get_object(Bucket=bucket, Key="dir/a.txt")["Body"].read() == b"alpha"
    assert s3.get_object(Bucket=bucket, Key="dir/b.txt", Range="bytes=0-3")["Body"].read() == b"beta"
    assert s3.head_object(Bucket=bucket, Key="dir/b.txt")["ContentLength"] == 4000
    with pytest.raises(botocore.exceptions.ClientError) as missing:
        s3.head_object(Bucket=bucket, Key="dir/missing")
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="dir/")
    assert [o["Key"] for o in listed["Contents"]] == ["dir/a.txt", "dir/b.txt"]
    s3.delete_object(Bucket=bucket, Key="dir/a.txt")
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "dir/b.txt"}]})  # POST
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0

    assert {seen.method for seen in proxy.seen} == {"PUT", "GET", "HEAD", "DELETE", "POST"}
    assert proxy.requests == proxy.forwarded == len(proxy.seen) == 10
    assert not proxy.injected
    assert proxy.connections < proxy.requests  # HTTP/1.1 keep-alive: boto3 reused its connection


def test_multipart_upload_file(proxy: FaultProxy, bucket: str, tmp_path: Path) -> None:
    data = os.urandom(12 * MB)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    s3 = s3_client()
    config = TransferConfig(multipart_threshold=5 * MB, multipart_chunksize=5 * MB)
    s3.upload_file(str(source), bucket, "big.bin", Config=config)  # file parts go with Expect: 100-continue

    assert sum(s.method == "PUT" and "partNumber=" in s.path for s in proxy.seen) == 3
    others = [s for s in proxy.seen if "partNumber=" not in s.path]
    assert [s.method for s in others] == ["POST", "POST"] and others[0].path.endswith("?uploads")
    target = tmp_path / "back.bin"
    s3.download_file(bucket, "big.bin", str(target))
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(data).digest()


@pytest.mark.parametrize("forward_chunked", [False, True], ids=["dechunked", "rechunked"])
def test_aws_chunked_put_with_trailing_checksum(moto_endpoint: str, bucket: str, forward_chunked: bool) -> None:
    body = b"chunked body " * 5000
    with FaultProxy(moto_endpoint, forward_chunked=forward_chunked) as fault_proxy:
        s3 = s3_client(fault_proxy.url)
        s3.meta.events.register("before-call.s3.PutObject", force_trailing_checksum)
        s3.put_object(Bucket=bucket, Key="chunked", Body=body, ChecksumAlgorithm="CRC32")
        got = s3.get_object(Bucket=bucket, Key="chunked", ChecksumMode="ENABLED")
        assert got["Body"].read() == body
        assert got["ChecksumCRC32"] == crc32_b64(body)
        assert fault_proxy.seen[0].method == "PUT" and fault_proxy.seen[0].chunked


def test_signatures_verified_through_proxy(moto_endpoint: str, proxy: FaultProxy, bucket: str) -> None:
    with moto_require_signatures(moto_endpoint) as (key_id, secret):
        signed = boto3.session.Session(aws_access_key_id=key_id, aws_secret_access_key=secret).client(
            "s3", endpoint_url=proxy.url, config=Config(s3={"addressing_style": "path"}))
        signed.put_object(Bucket=bucket, Key="plain", Body=b"signed")
        signed.meta.events.register("before-call.s3.PutObject", force_trailing_checksum)
        signed.put_object(Bucket=bucket, Key="chunked", Body=b"signed, chunked")
        assert signed.get_object(Bucket=bucket, Key="plain")["Body"].read() == b"signed"
        assert signed.get_object(Bucket=bucket, Key="chunked")["Body"].read() == b"signed, chunked"

        wrong_secret = boto3.session.Session(aws_access_key_id=key_id, aws_secret_access_key="not-the-secret").client(
            "s3", endpoint_url=proxy.url, config=Config(s3={"addressing_style": "path"}))
        with pytest.raises(botocore.exceptions.ClientError, match="SignatureDoesNotMatch"):
            wrong_secret.get_object(Bucket=bucket, Key="plain")

        # Control: the same request signed for the proxy's host:port but sent straight to moto (another Host).
        def send_to_moto(request: Any, **_: Any) -> None:
            request.url = request.url.replace(proxy.url, moto_endpoint)

        other_host = boto3.session.Session(aws_access_key_id=key_id, aws_secret_access_key=secret).client(
            "s3", endpoint_url=proxy.url, config=Config(s3={"addressing_style": "path"}))
        other_host.meta.events.register("before-send.s3", send_to_moto)
        with pytest.raises(botocore.exceptions.ClientError, match="SignatureDoesNotMatch"):
            other_host.get_object(Bucket=bucket, Key="plain")
    assert proxy.seen[-1].path == f"/{bucket}/plain"  # the rejected wrong-secret request went through the proxy


def test_virtual_host_style_through_proxy_mode(proxy: FaultProxy) -> None:
    """Virtual-host style needs DNS for bucket.host; instead the client uses the proxy as its HTTP proxy.

    The client sends absolute-form targets (``GET http://bkt.s3.test/key``) with ``Host: bkt.s3.test`` to the
    proxy only (``.test`` never resolves); moto takes the bucket from the Host header.
    """
    name = f"bkt-{uuid.uuid4().hex[:12]}"
    config = Config(s3={"addressing_style": "virtual"}, proxies={"http": proxy.url}, retries={"total_max_attempts": 1})
    s3 = shared_session().client("s3", endpoint_url="http://s3.test", config=config)
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="a/b.txt", Body=b"virtual")
    assert s3.get_object(Bucket=name, Key="a/b.txt")["Body"].read() == b"virtual"
    assert s3.list_objects_v2(Bucket=name)["KeyCount"] == 1
    assert all(seen.path.startswith(f"http://{name}.s3.test/") for seen in proxy.seen)
    assert s3_client(proxy.upstream).get_object(Bucket=name, Key="a/b.txt")["Body"].read() == b"virtual"


def read_head(sock: socket.socket) -> bytes:
    """Read one response head (status line and headers) from a raw socket."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        chunk = sock.recv(1)
        assert chunk, f"connection closed after {head!r}"
        head += chunk
    return head


def test_raw_http_expect_continue_and_tcp_reset(proxy: FaultProxy, bucket: str) -> None:
    host, port = "127.0.0.1", urlsplit(proxy.url).port
    assert port is not None
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(f"PUT /{bucket}/raw HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: 5\r\n"
                     "Expect: 100-continue\r\n\r\n".encode())
        assert read_head(sock) == b"HTTP/1.1 100 Continue\r\n\r\n"  # answered before the body is sent
        sock.sendall(b"hello")
        assert read_head(sock).startswith(b"HTTP/1.1 200 ")

    proxy.set_faults(FaultPlan.every(1, "reset", "reset_after_forward"))
    conn = http.client.HTTPConnection(host, port, timeout=10)
    for _ in range(2):
        conn.request("HEAD", f"/{bucket}/raw")
        with pytest.raises(ConnectionResetError):  # a RST, not a FIN (which would be RemoteDisconnected)
            conn.getresponse()
        conn.close()
    assert proxy.injected == Counter({"reset": 1, "reset_after_forward": 1})
    assert proxy.forwarded == 2  # the PUT and the HEAD that was reset after forwarding


# -- faults ----------------------------------------------------------------------------------------------------

# What a client sees when every attempt fails; truncate only bites on a body, so it is aimed at GetObject.
EXPECTED_ERRORS: dict[Fault, type[Exception]] = {
    "500": botocore.exceptions.ClientError,
    "503": botocore.exceptions.ClientError,
    "reset": botocore.exceptions.ConnectionClosedError,
    "reset_after_forward": botocore.exceptions.ConnectionClosedError,
    "truncate": botocore.exceptions.ResponseStreamingError,
    "slow": botocore.exceptions.ReadTimeoutError,
}
FAST_TIMEOUTS = {"read_timeout": 0.2, "connect_timeout": 2}  # below FaultProxy's default slow_seconds (0.5)


def put_then_get(s3: Any, bucket: str, key: str, body: bytes) -> bytes:
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_fault_surfaces_without_retries(kind: Fault, proxy: FaultProxy, bucket: str) -> None:
    with proxy.no_faults():
        s3_client().put_object(Bucket=bucket, Key="k", Body=b"0123456789")
    proxy.set_faults(FaultPlan.every(1, kind, methods=["GET"]))
    s3 = s3_client(retries=NO_RETRIES, **FAST_TIMEOUTS)
    with pytest.raises(EXPECTED_ERRORS[kind]) as error:
        # closing(), not `with body:` -- StreamingBody.__enter__ returns the raw urllib3 stream, whose errors
        # are urllib3's ProtocolError instead of botocore's ResponseStreamingError.
        with closing(s3.get_object(Bucket=bucket, Key="k")["Body"]) as body:
            body.read()
    if kind in ("500", "503"):
        status = error.value.response["ResponseMetadata"]["HTTPStatusCode"]  # type: ignore[attr-defined]
        assert (status, error.value.response["Error"]["Code"]) == (  # type: ignore[attr-defined]
            (500, "InternalError") if kind == "500" else (503, "SlowDown"))
    # max_attempts=1 means one retry -- except for the truncated body, which is read after the call returned.
    attempts = 1 if kind == "truncate" else 2
    assert proxy.injected == Counter({kind: attempts})
    assert proxy.requests == 1 + attempts


def test_total_max_attempts_one_sends_one_request(proxy: FaultProxy, bucket: str) -> None:
    proxy.set_faults(FaultPlan.every(1, "500"))
    with pytest.raises(botocore.exceptions.ClientError, match="InternalError"):
        s3_client(retries={"total_max_attempts": 1, "mode": "standard"}).list_objects_v2(Bucket=bucket)
    assert proxy.requests == 1


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_fault_retried_by_boto3(kind: Fault, proxy: FaultProxy, bucket: str) -> None:
    s3 = s3_client(retries=RETRIES, **FAST_TIMEOUTS)
    if kind == "truncate":
        # Only truncation of a body botocore parses itself (here ListObjectsV2's XML) is retried.
        s3.put_object(Bucket=bucket, Key="listed", Body=b"x")
        proxy.set_faults(FaultPlan.every(1, kind, methods=["GET"], max_faults=2))
        assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["listed"]
        assert proxy.injected == Counter({kind: 2}) and proxy.requests == 4
        return
    proxy.set_faults(FaultPlan.every(1, kind, max_faults=2))
    assert put_then_get(s3, bucket, "k", b"payload") == b"payload"
    assert proxy.injected == Counter({kind: 2})
    assert proxy.requests == 4  # 2 faulted PUTs, the PUT that went through, the GET


def test_truncated_get_object_body_is_not_retried(proxy: FaultProxy, bucket: str, tmp_path: Path) -> None:
    """botocore returns GetObject once the headers are in; reading the cut body fails however many retries.

    s3transfer's download_file retries the read itself. Our storage layer must retry and verify checksums too.
    """
    body = os.urandom(64 * 1024)
    with proxy.no_faults():
        s3_client().put_object(Bucket=bucket, Key="k", Body=body)
    proxy.set_faults(FaultPlan.every(1, "truncate", methods=["GET"], max_faults=2))
    s3 = s3_client(retries=RETRIES)
    response = s3.get_object(Bucket=bucket, Key="k")
    assert response["ContentLength"] == len(body)  # the headers promise the full body...
    with closing(response["Body"]) as cut, pytest.raises(botocore.exceptions.ResponseStreamingError) as error:
        cut.read()  # ...which never comes, and nothing retries it
    assert "IncompleteRead" in str(error.value)
    assert proxy.requests == 2  # the PUT and one GET

    target = tmp_path / "k"
    s3.download_file(bucket, "k", str(target))  # second truncation, then s3transfer's own retry succeeds
    assert target.read_bytes() == body
    assert proxy.injected == Counter({"truncate": 2})
    assert [s.fault for s in proxy.seen if s.method == "GET"] == ["truncate", "truncate", None]


def test_reset_after_forward_applies_the_write(proxy: FaultProxy, bucket: str, tmp_path: Path) -> None:
    """The nasty case: the server applied the request, the client saw a dropped connection."""
    proxy.set_faults(FaultPlan.every(1, "reset_after_forward", methods=["PUT"], max_faults=1))
    s3 = s3_client(retries={"total_max_attempts": 1})
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        s3.put_object(Bucket=bucket, Key="applied", Body=b"it is there")
    assert s3.get_object(Bucket=bucket, Key="applied")["Body"].read() == b"it is there"

    # CompleteMultipartUpload applied but unanswered: upload_file raises (and aborts the upload, too late),
    # yet the object exists. Moto also accepts the retried Complete, so with retries the upload just succeeds.
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(11 * MB))
    config = TransferConfig(multipart_threshold=5 * MB, multipart_chunksize=5 * MB)
    proxy.set_faults(FaultPlan.every(1, "reset_after_forward", methods=["POST"], target=r"uploadId=", max_faults=1))
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        s3.upload_file(str(source), bucket, "big-no-retry", Config=config)
    assert s3.head_object(Bucket=bucket, Key="big-no-retry")["ContentLength"] == 11 * MB
    proxy.set_faults(FaultPlan.every(1, "reset_after_forward", methods=["POST"], target=r"uploadId=", max_faults=1))
    s3_client(retries=RETRIES).upload_file(str(source), bucket, "big-retried", Config=config)
    assert s3.head_object(Bucket=bucket, Key="big-retried")["ContentLength"] == 11 * MB
    assert proxy.injected == Counter({"reset_after_forward": 3})


def test_max_faults_caps_injection(proxy: FaultProxy, bucket: str) -> None:
    proxy.set_faults(FaultPlan({"500": 1.0}, max_faults=3))  # every request would fail, but only three do
    s3 = s3_client(retries=RETRIES)
    for i in range(5):
        assert put_then_get(s3, bucket, f"k{i}", b"v") == b"v"
    assert proxy.injected == Counter({"500": 3})
    assert proxy.requests == 3 + 10
    assert [s.fault for s in proxy.seen[:4]] == ["500", "500", "500", None]


def test_pause_and_resume_faults(proxy: FaultProxy, bucket: str) -> None:
    proxy.set_faults([("503", 1.0)])  # (kind, rate) pairs: a FaultPlan with seed 0
    s3 = s3_client(retries={"total_max_attempts": 1})
    proxy.pause_faults()
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    proxy.resume_faults()
    with pytest.raises(botocore.exceptions.ClientError, match="SlowDown"):
        s3.get_object(Bucket=bucket, Key="k")
    assert proxy.injected == Counter({"503": 1}) and proxy.requests == 2


def test_callable_schedule(proxy: FaultProxy, bucket: str) -> None:
    proxy.set_faults(lambda method, target: "reset" if target.endswith("/flaky") else None)
    s3 = s3_client(retries={"total_max_attempts": 1})
    s3.put_object(Bucket=bucket, Key="steady", Body=b"v")
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        s3.put_object(Bucket=bucket, Key="flaky", Body=b"v")
    assert proxy.injected == Counter({"reset": 1})


def test_seeded_random_faults_are_reproducible_and_survivable(moto_endpoint: str, bucket: str) -> None:
    def run() -> list[Fault | None]:
        plan = FaultPlan({"500": 0.15, "reset": 0.1, "reset_after_forward": 0.1}, seed=1234)
        with FaultProxy(moto_endpoint, plan) as fault_proxy:
            s3 = s3_client(fault_proxy.url, retries=RETRIES)
            for i in range(12):
                assert put_then_get(s3, bucket, f"r{i}", f"value {i}".encode()) == f"value {i}".encode()
            faults = [s.fault for s in fault_proxy.seen]
            assert fault_proxy.injected == Counter(f for f in faults if f is not None)
            assert fault_proxy.requests == len(faults) == 24 + sum(fault_proxy.injected.values())
            return faults

    first = run()
    assert sum(f is not None for f in first) >= 4
    assert run() == first
