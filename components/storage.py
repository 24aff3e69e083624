"""Object storage: one way to read and write files and folders at a local path, `file://`, `s3://` or `gs://`.

- Writes are atomic. A single object appears whole or not at all (a local file is written beside its target
  and renamed; an S3/GCS object is one PUT or one completed multipart upload). A folder is complete only
  when its `MANIFEST.json` (every file's size and SHA-256) is there, and the manifest is written last.
- Transient errors (5xx, throttling, resets, timeouts, truncated downloads) are retried with exponential
  backoff; a download is verified against the manifest, and a mismatch is retried as a transient error.
- Credentials come only from the environment or the provider's default chain (boto3's and google-auth's);
  no setting here holds one.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from components.errors import StarError

MANIFEST = "MANIFEST.json"
_CHUNK = 1 << 20
_CREDENTIAL_WORDS = ("secret", "password", "token", "access_key", "credential", "private_key")

T = TypeVar("T")
#: The package (with the pin the project was tested against) fsspec needs for a protocol.
FSSPEC_PACKAGES = {"gs": "gcsfs==2026.10.0", "gcs": "gcsfs==2026.10.0"}


class StorageConfig(BaseModel):
    """How to reach object storage. Credentials are not settings: boto3 reads AWS_ACCESS_KEY_ID /
    AWS_SECRET_ACCESS_KEY / AWS_PROFILE / instance roles, gcsfs reads GOOGLE_APPLICATION_CREDENTIALS or
    workload identity."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: S3-compatible endpoint (MinIO, SeaweedFS, Ceph). None: AWS, or the AWS_ENDPOINT_URL_S3 variable.
    endpoint_url: str | None = None
    #: None: AWS_REGION / AWS_DEFAULT_REGION / the profile's region.
    region: str | None = None
    #: Path-style addressing (`http://host/bucket/key`), which most self-hosted servers need.
    path_style: bool = False
    #: Attempts per operation, counting the first, and the backoff between them (doubling, with jitter).
    attempts: int = Field(6, ge=1, le=50)
    backoff_seconds: float = Field(0.5, ge=0.0)
    max_backoff_seconds: float = Field(20.0, ge=0.0)
    timeout_seconds: float = Field(60.0, gt=0.0)

    @model_validator(mode="before")
    @classmethod
    def _no_credentials(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if any(w in str(key).lower() for w in _CREDENTIAL_WORDS):
                    raise ValueError(
                        f"{key} looks like a credential; credentials are never settings. Remove it and provide "
                        "them through the environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                        "GOOGLE_APPLICATION_CREDENTIALS) or the provider's default chain"
                    )
        return data


_default = StorageConfig()


def configure(config: StorageConfig) -> None:
    """The settings used where a caller passes none (task data loading, the training worker): a step sets them
    from its run configuration when it reads it."""
    global _default
    _default = config


def _settings(config: StorageConfig | None) -> StorageConfig:
    return config if config is not None else _default


class ManifestEntry(BaseModel):
    size: int
    sha256: str


class Manifest(BaseModel):
    """Written last into an uploaded folder: a reader trusts a folder only when this is there."""

    files: dict[str, ManifestEntry]

    def digest(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()


class Transient(Exception):
    """An error worth retrying: the same request may well succeed in a moment."""


class ChecksumMismatch(Transient):
    pass


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


# -- retries ----------------------------------------------------------------------------------------------

_TRANSIENT_CODES = {
    "InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "RequestTimeTooSkewed", "Throttling",
    "ThrottlingException", "BadDigest", "IncompleteBody", "XAmzContentSHA256Mismatch", "InvalidChunkSizeError",
}


def is_transient(e: BaseException) -> bool:
    """5xx replies, throttling, dropped connections, timeouts and truncated bodies; not missing objects,
    missing buckets, refused credentials or bad requests. Wrapped errors (boto3's S3UploadFailedError wraps
    the ClientError it caught) are judged by what they wrap."""
    inner = e.__cause__ or e.__context__
    return _is_transient_here(e) or (inner is not None and is_transient(inner))


def _is_transient_here(e: BaseException) -> bool:
    if isinstance(e, Transient | ConnectionError | TimeoutError):
        return True
    try:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ParamValidationError
    except ImportError:  # pragma: no cover - boto3 is a dependency
        return False
    if isinstance(e, ClientError):
        code = str(e.response.get("Error", {}).get("Code", ""))
        status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        return status >= 500 or code in _TRANSIENT_CODES
    if isinstance(e, NoCredentialsError | ParamValidationError):
        return False
    if isinstance(e, BotoCoreError):  # connection closed/reset, read timeout, response streaming errors
        from botocore.exceptions import (
            ConnectionError as BotoConnectionError,
        )
        from botocore.exceptions import (
            HTTPClientError,
            IncompleteReadError,
            ResponseStreamingError,
        )

        return isinstance(e, BotoConnectionError | HTTPClientError | IncompleteReadError | ResponseStreamingError)
    try:
        from urllib3.exceptions import HTTPError as Urllib3Error
    except ImportError:  # pragma: no cover
        return False
    return isinstance(e, Urllib3Error)


def with_retries(fn: Callable[[], T], what: str, config: StorageConfig, sleep: Callable[[float], None] = time.sleep
                 ) -> T:
    """`fn()` retried on transient errors, doubling the wait (with jitter) up to `max_backoff_seconds`."""
    for attempt in range(1, config.attempts + 1):
        try:
            return fn()
        except Exception as e:
            if not is_transient(e):
                raise
            if attempt == config.attempts:
                raise StarError(f"{what} still failed after {config.attempts} attempts ({_describe(e)}); the "
                                "storage service is unreachable or unhealthy. Nothing finished was lost: run "
                                "again, or raise storage.attempts.") from e
            wait = min(config.max_backoff_seconds, config.backoff_seconds * 2 ** (attempt - 1))
            sleep(wait * (0.5 + random.random() / 2))
    raise AssertionError("unreachable")  # pragma: no cover


def _describe(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text if len(text) < 300 else text[:300] + "…"


# -- stores -----------------------------------------------------------------------------------------------


class Store(Protocol):
    """Objects under one root URL, addressed by keys with `/` separators. Single-object operations are
    atomic; none of them retries (the callers below do)."""

    url: str

    def put_file(self, local: Path, key: str) -> None: ...
    def put_bytes(self, data: bytes, key: str) -> None: ...
    def get_file(self, key: str, local: Path) -> None: ...
    def get_bytes(self, key: str) -> bytes | None: ...  # None: no such object
    def list(self, prefix: str = "") -> dict[str, int]: ...  # key -> size, recursive
    def delete(self, keys: list[str]) -> None: ...


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root)

    def _path(self, key: str) -> Path:
        return self.root / key if key else self.root

    def _atomic(self, key: str, write: Callable[[Path], None]) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
        os.close(fd)
        try:
            write(Path(tmp))
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def put_file(self, local: Path, key: str) -> None:
        self._atomic(key, lambda tmp: shutil.copyfile(local, tmp))

    def put_bytes(self, data: bytes, key: str) -> None:
        self._atomic(key, lambda tmp: tmp.write_bytes(data))

    def get_file(self, key: str, local: Path) -> None:
        shutil.copyfile(self._path(key), local)

    def get_bytes(self, key: str) -> bytes | None:
        p = self._path(key)
        return p.read_bytes() if p.is_file() else None

    def list(self, prefix: str = "") -> dict[str, int]:
        base = self._path(prefix)
        if base.is_file():
            return {prefix: base.stat().st_size}
        if not base.is_dir():
            return {}
        return {
            p.relative_to(self.root).as_posix(): p.stat().st_size
            for p in base.rglob("*")
            if p.is_file() and not p.name.endswith(".partial")
        }

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            path = self._path(key)
            path.unlink(missing_ok=True)
            for parent in path.parents:  # folders left empty go too, up to the root
                if parent == self.root or not parent.is_relative_to(self.root) or any(parent.iterdir()):
                    break
                parent.rmdir()


class S3Store:
    """boto3; endpoint, region and addressing from `StorageConfig`, credentials from boto3's chain."""

    def __init__(self, bucket: str, prefix: str, config: StorageConfig) -> None:
        import boto3
        from botocore.config import Config

        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.client = boto3.session.Session().client(
            "s3",
            endpoint_url=config.endpoint_url,
            region_name=config.region,
            config=Config(
                retries={"total_max_attempts": 1, "mode": "standard"},  # with_retries does the retrying, with backoff
                s3={"addressing_style": "path" if config.path_style else "auto"},
                connect_timeout=config.timeout_seconds,
                read_timeout=config.timeout_seconds,
            ),
        )

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}".strip("/") if self.prefix else key

    def put_file(self, local: Path, key: str) -> None:
        from boto3.s3.transfer import TransferConfig

        # one PUT below 64 MB, a multipart upload (visible only once completed) above
        self.client.upload_file(str(local), self.bucket, self._key(key),
                                Config=TransferConfig(multipart_threshold=64 << 20, use_threads=False))

    def put_bytes(self, data: bytes, key: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def get_file(self, key: str, local: Path) -> None:
        body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        with local.open("wb") as f:
            for block in body.iter_chunks(_CHUNK):
                f.write(block)

    def get_bytes(self, key: str) -> bytes | None:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None

    def list(self, prefix: str = "") -> dict[str, int]:
        full = self._key(prefix)
        full = full.rstrip("/") + "/" if full else ""
        out: dict[str, int] = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(self.prefix) + 1:] if self.prefix else obj["Key"]
                out[rel] = int(obj["Size"])
        return out

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": self._key(k)} for k in keys[start:start + 1000]]
            if batch:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})


class FsspecStore:
    """gs:// (gcsfs) and any other fsspec protocol; objects are written whole by one upload."""

    def __init__(self, url: str) -> None:
        import fsspec

        self.url = url.rstrip("/")
        self.fs, self.root = fsspec.core.url_to_fs(self.url)
        self.root = self.root.rstrip("/")

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}" if key else self.root

    def put_file(self, local: Path, key: str) -> None:
        self.fs.put_file(str(local), self._path(key))

    def put_bytes(self, data: bytes, key: str) -> None:
        self.fs.pipe_file(self._path(key), data)

    def get_file(self, key: str, local: Path) -> None:
        self.fs.get_file(self._path(key), str(local))

    def get_bytes(self, key: str) -> bytes | None:
        try:
            return self.fs.cat_file(self._path(key))
        except FileNotFoundError:
            return None

    def list(self, prefix: str = "") -> dict[str, int]:
        base = self._path(prefix)
        try:
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            return {}
        return {str(p)[len(self.root) + 1:]: int(info.get("size") or 0) for p, info in found.items()
                if info.get("type") != "directory"}

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            try:
                self.fs.rm_file(self._path(key))
            except FileNotFoundError:
                continue
            parent = self._path(key).rsplit("/", 1)[0]
            while len(parent) > len(self.root):  # filesystems with real folders: drop the ones left empty
                try:
                    if self.fs.ls(parent):
                        break
                    self.fs.rmdir(parent)
                except (FileNotFoundError, NotImplementedError, OSError):
                    break
                parent = parent.rsplit("/", 1)[0]


def is_remote(url: str) -> bool:
    return "://" in url and not url.startswith("file://")


def open_store(url: str, config: StorageConfig | None = None) -> Store:
    """The store rooted at `url`: a local path or file:// URL, s3://bucket/prefix, gs://bucket/prefix (or any
    other fsspec protocol)."""
    config = _settings(config)
    if url.startswith("file://"):
        return LocalStore(Path(url[len("file://"):]))
    if "://" not in url:
        return LocalStore(Path(url))
    protocol, rest = url.split("://", 1)
    if protocol == "s3":
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise StarError(f"{url} names no bucket; write s3://BUCKET/PREFIX.")
        try:
            return S3Store(bucket, prefix, config)
        except ImportError as e:
            raise StarError(f"Reading {url} needs boto3 ({e}); install the project with its dependencies.") from e
    try:
        return FsspecStore(url)
    except ImportError as e:
        pin = FSSPEC_PACKAGES.get(protocol)
        if pin is None:
            raise StarError(f"Reading {url} needs the fsspec filesystem for {protocol}:// ({e}).") from e
        raise StarError(f"Reading {url} needs {pin.split('==')[0]} ({e}); install it with `pip install {pin}`."
                        ) from e
    except ValueError as e:
        raise StarError(f"{url}: {e}.") from e


def split_url(url: str) -> tuple[str, str]:
    """(folder URL, name) of an object URL."""
    head, _, name = url.rstrip("/").rpartition("/")
    if not name or head.endswith(":/") or head.endswith(":"):
        raise StarError(f"{url} names no object.")
    return head, name


def _friendly(e: Exception, url: str) -> Exception:
    """Permanent storage errors as one sentence naming what to fix."""
    try:
        from botocore.exceptions import ClientError, NoCredentialsError
    except ImportError:  # pragma: no cover
        return e
    if isinstance(e, NoCredentialsError):
        return StarError(f"No credentials to reach {url}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or "
                         "AWS_PROFILE, or give the pod a role) in the environment.")
    if isinstance(e, ClientError):
        code = str(e.response.get("Error", {}).get("Code", ""))
        if code in ("NoSuchBucket",):
            return StarError(f"The bucket of {url} does not exist; create it or fix the URL.")
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "AllAccessDisabled"):
            return StarError(f"Access to {url} was refused ({code}); check the credentials in the environment "
                             "and the bucket's policy.")
        return StarError(f"{url}: {code or 'error'} ({_describe(e)}).")
    return e


def _call(fn: Callable[[], T], what: str, url: str, config: StorageConfig) -> T:
    try:
        return with_retries(fn, what, config)
    except StarError:
        raise
    except Exception as e:
        friendly = _friendly(e, url)
        if friendly is e:
            raise
        raise friendly from e


def list_objects(url: str, config: StorageConfig | None = None) -> dict[str, int]:
    """Every object under the folder `url` (recursive): key relative to `url` -> size."""
    config = _settings(config)
    store = open_store(url, config)
    return _call(lambda: store.list(""), f"Listing {url}", url, config)


def delete_objects(url: str, keys: list[str], config: StorageConfig | None = None) -> None:
    config = _settings(config)
    store = open_store(url, config)
    _call(lambda: store.delete(keys), f"Deleting under {url}", url, config)


def delete_dir(url: str, config: StorageConfig | None = None) -> None:
    """Remove a folder: its manifest first, so it stops counting as complete before any file goes."""
    parent, name = split_url(url)
    keys = list_objects(url, config)
    delete_objects(parent, [f"{name}/{MANIFEST}"], config)
    delete_objects(parent, [f"{name}/{k}" for k in keys if k != MANIFEST], config)


def check_reachable(url: str, what: str, config: StorageConfig | None = None) -> None:
    """Fail at once, with the setting to fix, when the bucket of `url` cannot be listed: a missing bucket,
    refused credentials, or an endpoint that does not answer (tried briefly, not with the full retry budget)."""
    config = _settings(config)
    brief = config.model_copy(update={"attempts": min(config.attempts, 2), "timeout_seconds": 10.0})
    try:
        list_objects(url, brief)
    except StarError as e:
        raise StarError(f"{what} {url} cannot be used: {e}") from e


# -- single objects -----------------------------------------------------------------------------------------


def write_bytes(url: str, data: bytes, config: StorageConfig | None = None) -> None:
    config = _settings(config)
    folder, name = split_url(url)
    store = open_store(folder, config)
    _call(lambda: store.put_bytes(data, name), f"Writing {url}", url, config)


def read_bytes(url: str, config: StorageConfig | None = None) -> bytes | None:
    """The object's bytes, or None when there is no such object."""
    config = _settings(config)
    folder, name = split_url(url)
    store = open_store(folder, config)
    return _call(lambda: store.get_bytes(name), f"Reading {url}", url, config)


# -- folders with a manifest ------------------------------------------------------------------------------


def build_manifest(local_dir: Path) -> Manifest:
    files = sorted(p for p in local_dir.rglob("*") if p.is_file())
    return Manifest(files={
        p.relative_to(local_dir).as_posix(): ManifestEntry(size=p.stat().st_size, sha256=file_sha256(p))
        for p in files if p.name != MANIFEST
    })


def upload_dir(local_dir: str | Path, url: str, config: StorageConfig | None = None) -> Manifest:
    """Copy a folder to `url`: the old manifest (if any) is removed first, every file is uploaded, and the new
    manifest last, so a reader never takes a half-written folder for a complete one."""
    config = _settings(config)
    local_dir = Path(local_dir)
    if not local_dir.is_dir():
        raise StarError(f"{local_dir} is not a folder; nothing to upload.")
    manifest = build_manifest(local_dir)
    store = open_store(url, config)
    _call(lambda: store.delete([MANIFEST]), f"Clearing the manifest of {url}", url, config)
    for rel in manifest.files:
        _call(lambda rel=rel: store.put_file(local_dir / rel, rel), f"Uploading {url}/{rel}", url, config)
    body = manifest.model_dump_json(indent=1).encode()
    _call(lambda: store.put_bytes(body, MANIFEST), f"Writing {url}/{MANIFEST}", url, config)
    return manifest


def read_manifest(url: str, config: StorageConfig | None = None) -> Manifest | None:
    """The folder's manifest; None while the folder is incomplete (or absent)."""
    config = _settings(config)
    store = open_store(url, config)
    raw = _call(lambda: store.get_bytes(MANIFEST), f"Reading {url}/{MANIFEST}", url, config)
    if raw is None:
        return None
    try:
        return Manifest.model_validate_json(raw)
    except ValueError as e:
        raise StarError(f"{url}/{MANIFEST} is damaged ({e}); upload the folder again.") from e


def is_complete(url: str, config: StorageConfig | None = None) -> bool:
    return read_manifest(url, config) is not None


def download_dir(url: str, local_dir: str | Path, config: StorageConfig | None = None) -> Manifest:
    """Copy the complete folder at `url` to `local_dir`, each file checked against the manifest (a mismatch is
    downloaded again). The folder appears at `local_dir` only once every file is in and verified."""
    config = _settings(config)
    local_dir = Path(local_dir)
    manifest = read_manifest(url, config)
    if manifest is None:
        raise StarError(f"{url} is not a complete folder: it has no {MANIFEST} (its upload did not finish, or the "
                        "URL is wrong). Upload folders with `star storage put DIR URL`.")
    store = open_store(url, config)
    local_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{local_dir.name}.", suffix=".partial", dir=local_dir.parent))
    try:
        for rel, entry in manifest.files.items():
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)

            def fetch(rel: str = rel, entry: ManifestEntry = entry, target: Path = target) -> None:
                store.get_file(rel, target)
                size = target.stat().st_size
                if size != entry.size or file_sha256(target) != entry.sha256:
                    raise ChecksumMismatch(f"{url}/{rel}: got {size} bytes that do not match the manifest")

            _call(fetch, f"Downloading {url}/{rel}", url, config)
        (staging / MANIFEST).write_text(manifest.model_dump_json(indent=1))
        if local_dir.exists():
            shutil.rmtree(local_dir)
        os.replace(staging, local_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return manifest


def cached_download(url: str, cache_root: str | Path, config: StorageConfig | None = None) -> Path:
    """A verified local copy of the folder at `url` under `cache_root`, downloaded again only when the
    folder's manifest has changed."""
    config = _settings(config)
    manifest = read_manifest(url, config)
    if manifest is None:
        raise StarError(f"{url} is not a complete folder: it has no {MANIFEST} (its upload did not finish, or the "
                        "URL is wrong). Upload folders with `star storage put DIR URL`.")
    name = hashlib.sha256(url.encode()).hexdigest()[:16]
    target = Path(cache_root) / f"{name}-{manifest.digest()[:16]}"
    if not (target / MANIFEST).exists():
        download_dir(url, target, config)
    return target


def describe_manifest(manifest: Manifest) -> str:
    total = sum(e.size for e in manifest.files.values())
    return f"{len(manifest.files)} files, {total / 1e6:.1f} MB"
