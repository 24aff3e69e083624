"""The storage layer against a real S3 protocol server on loopback, behind a proxy that injects 500/503 replies,
connection resets, truncated downloads and slow responses: operations complete, downloads are verified, and no
reader ever takes a half-written folder for a complete one."""

import json
import threading
from pathlib import Path

import boto3
import pytest

from components import storage
from components.core.errors import StarError
from components.storage import MANIFEST, StorageConfig
from tests.fakes.s3_server import FaultPlan, FaultProxy


def _fast(endpoint: str, **kw: object) -> StorageConfig:
    settings: dict = {"endpoint_url": endpoint, "path_style": True, "attempts": 10, "backoff_seconds": 0.01,
                      "max_backoff_seconds": 0.05, "timeout_seconds": 2.0}
    settings.update(kw)
    return StorageConfig(**settings)


def _folder(root: Path, version: str, files: int = 4) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        (root / f"part-{i}.bin").write_bytes((f"{version}:{i}:".encode()) * (2000 + 7919 * i))
    (root / "nested").mkdir(exist_ok=True)
    (root / "nested" / "config.json").write_text(json.dumps({"version": version}))
    return root


def _contents(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()
            and p.name != MANIFEST}


def test_folder_round_trip_writes_the_manifest_last(s3_bucket: str, s3_endpoint: str, tmp_path: Path) -> None:
    src = _folder(tmp_path / "model", "a")
    url = f"s3://{s3_bucket}/models/tiny"
    with FaultProxy(s3_endpoint) as proxy:
        manifest = storage.upload_dir(src, url, _fast(proxy.url))
        puts = [s.path for s in proxy.seen if s.method == "PUT"]
    assert puts[-1].endswith(f"/models/tiny/{MANIFEST}") and len(puts) == len(manifest.files) + 1
    assert manifest.files["nested/config.json"].size == (src / "nested" / "config.json").stat().st_size
    out = storage.download_dir(url, tmp_path / "copy", _fast(s3_endpoint))
    assert out == manifest and _contents(tmp_path / "copy") == _contents(src)


@pytest.mark.parametrize("fault", ["500", "503", "reset", "reset_after_forward", "truncate", "slow"])
def test_transient_faults_are_retried_and_downloads_verified(
    fault: str, s3_bucket: str, s3_endpoint: str, tmp_path: Path
) -> None:
    src = _folder(tmp_path / "model", "a")
    url = f"s3://{s3_bucket}/m"
    methods = ["GET"] if fault == "truncate" else None  # a truncated reply matters where there is a body
    plan = FaultPlan.every(2, fault, methods=methods, max_faults=8)  # type: ignore[arg-type]
    with FaultProxy(s3_endpoint, plan, slow_seconds=3.0) as proxy:  # slow: longer than the 2 s read timeout
        storage.upload_dir(src, url, _fast(proxy.url))
        storage.download_dir(url, tmp_path / "copy", _fast(proxy.url))
    assert proxy.injected[fault] >= 3
    assert _contents(tmp_path / "copy") == _contents(src)


def test_a_corrupted_object_is_never_accepted(s3_bucket: str, s3_endpoint: str, tmp_path: Path) -> None:
    src = _folder(tmp_path / "model", "a")
    url = f"s3://{s3_bucket}/m"
    storage.upload_dir(src, url, _fast(s3_endpoint))
    boto3.client("s3").put_object(Bucket=s3_bucket, Key="m/part-1.bin", Body=b"bit rot")
    with pytest.raises(StarError, match=r"part-1.bin still failed after 3 attempts .*do not match the manifest"):
        storage.download_dir(url, tmp_path / "copy", _fast(s3_endpoint, attempts=3))
    assert not (tmp_path / "copy").exists()  # nothing half-downloaded is left where the folder would be
    assert not list(tmp_path.glob(".copy.*"))


def test_readers_never_see_a_half_written_folder(s3_bucket: str, s3_endpoint: str, tmp_path: Path) -> None:
    """A folder is overwritten (version a -> b) through a faulty connection while a reader keeps downloading
    it: every download that succeeds is exactly version a or exactly version b."""
    a, b = _folder(tmp_path / "a", "a", files=6), _folder(tmp_path / "b", "b", files=6)
    url = f"s3://{s3_bucket}/ckpt"
    storage.upload_dir(a, url, _fast(s3_endpoint))
    versions = [_contents(a), _contents(b)]
    seen: list[str] = []
    done = threading.Event()

    def reader() -> None:
        n = 0
        while not done.is_set():
            n += 1
            target = tmp_path / f"read-{n}"
            try:
                storage.download_dir(url, target, _fast(s3_endpoint, attempts=2))
            except StarError:
                seen.append("incomplete")  # between the old manifest's removal and the new one's arrival
                continue
            got = _contents(target)
            assert got in versions, "a download mixed two versions"
            seen.append("ab"[versions.index(got)])

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        with FaultProxy(s3_endpoint, FaultPlan.every(3, "503", "reset", max_faults=10)) as proxy:
            storage.upload_dir(b, url, _fast(proxy.url))
    finally:
        done.set()
        thread.join(timeout=60)
    final = storage.download_dir(url, tmp_path / "final", _fast(s3_endpoint))
    assert _contents(tmp_path / "final") == versions[1] and final.files
    assert seen and proxy.injected.total() > 0


def test_an_upload_cut_off_leaves_no_complete_folder(s3_bucket: str, s3_endpoint: str, tmp_path: Path) -> None:
    src = _folder(tmp_path / "model", "a")
    url = f"s3://{s3_bucket}/cut"
    with FaultProxy(s3_endpoint, FaultPlan.every(1, "reset", methods=["PUT"], target=r"part-2")) as proxy:
        with pytest.raises(StarError, match=rf"Uploading {url}/part-2.bin still failed after 3 attempts"):
            storage.upload_dir(src, url, _fast(proxy.url, attempts=3))
    assert storage.read_manifest(url, _fast(s3_endpoint)) is None
    with pytest.raises(StarError, match=rf"{url} is not a complete folder: it has no {MANIFEST}"):
        storage.download_dir(url, tmp_path / "copy", _fast(s3_endpoint))
    # whatever objects did arrive are whole: S3 never shows a partial PUT
    listed = storage.list_objects(url, _fast(s3_endpoint))
    assert all(size == (src / key).stat().st_size for key, size in listed.items())


def test_permanent_errors_are_one_sentence_naming_what_to_fix(
    s3_bucket: str, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(StarError, match=r"The bucket of s3://no-such-bucket-x/m does not exist; create it"):
        storage.read_manifest("s3://no-such-bucket-x/m", _fast(s3_endpoint))
    dead = _fast("http://127.0.0.1:9", attempts=2)  # nothing listens on the discard port
    with pytest.raises(StarError, match=r"training.checkpoints s3://b/ck cannot be used: .*after 2 attempts"):
        storage.check_reachable("s3://b/ck", "training.checkpoints", dead)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(StarError, match=r"No credentials to reach s3://.*AWS_ACCESS_KEY_ID"):
        storage.read_manifest(f"s3://{s3_bucket}/m", _fast(s3_endpoint))


def test_refused_credentials_are_named(s3_bucket: str, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.fakes.s3_server import moto_require_signatures

    with moto_require_signatures(s3_endpoint):
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-right-secret")
        with pytest.raises(StarError, match=r"Access to s3://.* was refused .*check the credentials"):
            storage.read_manifest(f"s3://{s3_bucket}/m", _fast(s3_endpoint))


def test_local_and_fsspec_stores_keep_the_same_contract(tmp_path: Path) -> None:
    src = _folder(tmp_path / "model", "a")
    for url in (str(tmp_path / "store" / "m"), f"file://{tmp_path}/store2/m", "memory://star-storage-test/m"):
        storage.upload_dir(src, url)
        assert storage.is_complete(url)
        storage.download_dir(url, tmp_path / "copy", StorageConfig())
        assert _contents(tmp_path / "copy") == _contents(src)
        storage.delete_dir(url)
        assert not storage.is_complete(url) and storage.list_objects(url) == {}
    assert not list((tmp_path / "store").rglob("*.partial"))


def test_credentials_are_never_settings() -> None:
    with pytest.raises(ValueError, match="aws_secret_access_key looks like a credential"):
        StorageConfig.model_validate({"aws_secret_access_key": "x"})


@pytest.mark.parametrize(
    "location, scheme, url, remote, local",
    [
        ("runs/demo", None, False, False, "runs/demo"),
        ("/data/train.jsonl", None, False, False, "/data/train.jsonl"),
        ("file:///data/train.jsonl", "file", True, False, "/data/train.jsonl"),
        ("FILE:///data/train.jsonl", "file", True, False, "/data/train.jsonl"),
        ("s3://bucket/runs/x", "s3", True, True, "s3://bucket/runs/x"),
        ("gs://bucket/data.csv", "gs", True, True, "gs://bucket/data.csv"),
        ("memory://staging/job", "memory", True, True, "memory://staging/job"),
        ("hf:openai/gsm8k:main@train", None, False, False, "hf:openai/gsm8k:main@train"),
        ("openai/gsm8k:main", None, False, False, "openai/gsm8k:main"),
    ],
)
def test_one_classification_of_locations(location: str, scheme: str | None, url: bool, remote: bool,
                                         local: str) -> None:
    """file:// is a URL (joined with "/", kept as written) but not remote (opened in place, never downloaded)."""
    assert storage.url_scheme(location) == scheme
    assert storage.is_url(location) is url
    assert storage.is_remote(location) is remote
    assert storage.local_path(location) == local


def test_file_urls_are_read_and_written_in_place(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/sub/note.txt"
    assert storage.read_text(url) is None and storage.read_text(str(tmp_path / "nope.txt")) is None
    storage.write_text(url, "héllo")
    assert (tmp_path / "sub" / "note.txt").read_text(encoding="utf-8") == "héllo"
    assert storage.read_text(url) == storage.read_text(str(tmp_path / "sub" / "note.txt")) == "héllo"
    assert storage.join_location(f"file://{tmp_path}/sub", "note.txt") == url
    assert storage.join_location(str(tmp_path / "sub"), "note.txt") == str(tmp_path / "sub" / "note.txt")
    storage.write_text("memory://star-storage-text/a/b.txt", "in memory")
    assert storage.read_text("memory://star-storage-text/a/b.txt") == "in memory"
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(StarError, match="latin1.txt is not UTF-8 text"):
        storage.read_text(f"file://{tmp_path}/latin1.txt")


def test_one_credential_detector_for_settings_and_job_environments() -> None:
    from components.core.credentials import looks_like_credential

    for name in ("AWS_SECRET_ACCESS_KEY", "hf_token", "DB_PASSWORD", "db_passwd", "OPENAI_API_KEY", "private_key",
                 "gcp_credentials", "aws_access_key_id"):
        assert looks_like_credential(name), name
    for name in ("endpoint_url", "region", "HF_HUB_OFFLINE", "NCCL_DEBUG", "PYTHONUNBUFFERED"):
        assert not looks_like_credential(name), name
    with pytest.raises(ValueError, match="api_key looks like a credential"):
        StorageConfig.model_validate({"api_key": "x"})


def test_transient_and_permanent_errors_are_told_apart() -> None:
    from botocore.exceptions import ClientError

    def client_error(code: str, status: int) -> ClientError:
        return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject")

    assert storage.is_transient(client_error("SlowDown", 503)) and storage.is_transient(client_error("X", 500))
    assert not storage.is_transient(client_error("NoSuchKey", 404))
    assert not storage.is_transient(client_error("AccessDenied", 403))
    assert storage.is_transient(ConnectionResetError()) and not storage.is_transient(ValueError())
    wrapped = RuntimeError("upload failed")
    wrapped.__context__ = client_error("InternalError", 500)
    assert storage.is_transient(wrapped)  # boto3's S3UploadFailedError wraps the reply this way


def test_task_data_reads_from_a_bucket_through_faults(s3_bucket: str, s3_endpoint: str) -> None:
    """The real GSM8K split and its few-shot files, read from s3:// while GETs are cut short or refused."""
    from components.tasks import GSM8KConfig, make_task
    from tests.conftest import real_data

    storage.upload_dir(real_data("gsm8k"), f"s3://{s3_bucket}/data/gsm8k", _fast(s3_endpoint))
    plan = FaultPlan.every(1, "truncate", "503", "reset", methods=["GET"], max_faults=5)
    with FaultProxy(s3_endpoint, plan) as proxy:
        storage.configure(_fast(proxy.url))  # what a step does with its run configuration's storage settings
        try:
            task = make_task(GSM8KConfig(path=f"s3://{s3_bucket}/data/gsm8k/train_rand_split.jsonl"))
            report = task.read()
            shots = task.prefix(hint=False, direct=False)
        finally:
            storage.configure(StorageConfig())
    assert (report.read, report.rejected) == (7473, 0) and shots.startswith("Q: ")
    assert proxy.injected.total() == 5
