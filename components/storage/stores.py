"""Stores: the objects under one root URL, on the local filesystem (a path or `file://`), in S3 (boto3) or in any
fsspec filesystem (`gs://` with gcsfs, `memory://`, ...). Single-object operations are atomic; none of them
retries (`components.storage.retries.call` does)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from components.core.errors import StarError
from components.storage.config import StorageConfig, settings
from components.storage.locations import local_path, url_scheme

#: Read and hash files in blocks of this many bytes.
CHUNK_BYTES = 1 << 20
#: The package (with the pin the project was tested against) fsspec needs for a protocol.
FSSPEC_PACKAGES = {"gs": "gcsfs==2026.10.0", "gcs": "gcsfs==2026.10.0"}


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
            for block in body.iter_chunks(CHUNK_BYTES):
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


def open_store(url: str, config: StorageConfig | None = None) -> Store:
    """The store rooted at `url`: a local path or file:// URL, s3://bucket/prefix, gs://bucket/prefix (or any
    other fsspec protocol)."""
    config = settings(config)
    protocol = url_scheme(url)
    if protocol in (None, "file"):
        return LocalStore(Path(local_path(url)))
    rest = url.split("://", 1)[1]
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
