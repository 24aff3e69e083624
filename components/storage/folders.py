"""Folders in storage, complete only with their manifest: `MANIFEST.json` lists every file's size and SHA-256
and is written last (and removed first), so a reader never takes a half-written folder for a complete one.
Downloads are verified against it; a file that does not match is downloaded again."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from pydantic import BaseModel

from components.core.errors import StarError
from components.storage.config import StorageConfig, settings
from components.storage.locations import split_url
from components.storage.objects import delete_objects, list_objects
from components.storage.retries import ChecksumMismatch, call
from components.storage.stores import CHUNK_BYTES, open_store

MANIFEST = "MANIFEST.json"


class ManifestEntry(BaseModel):
    size: int
    sha256: str


class Manifest(BaseModel):
    """Written last into an uploaded folder: a reader trusts a folder only when this is there."""

    files: dict[str, ManifestEntry]

    def digest(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(CHUNK_BYTES), b""):
            h.update(block)
    return h.hexdigest()


def build_manifest(local_dir: Path) -> Manifest:
    files = sorted(p for p in local_dir.rglob("*") if p.is_file())
    return Manifest(files={
        p.relative_to(local_dir).as_posix(): ManifestEntry(size=p.stat().st_size, sha256=file_sha256(p))
        for p in files if p.name != MANIFEST
    })


def upload_dir(local_dir: str | Path, url: str, config: StorageConfig | None = None) -> Manifest:
    """Copy a folder to `url`: the old manifest (if any) is removed first, every file is uploaded, and the new
    manifest last, so a reader never takes a half-written folder for a complete one."""
    local_dir = Path(local_dir)
    if not local_dir.is_dir():
        raise StarError(f"{local_dir} is not a folder; nothing to upload.")
    manifest = build_manifest(local_dir)
    clear_manifest(url, config)
    upload_files(local_dir, url, list(manifest.files), config)
    write_manifest(url, manifest, config)
    return manifest


# A folder written by several processes (the ranks of a distributed training run, each with files of its own):
# one clears the manifest, each uploads its files, and one writes the manifest of them all once every upload is
# done. `upload_dir` is the same three steps in one process.


def clear_manifest(url: str, config: StorageConfig | None = None) -> None:
    """Make the folder at `url` incomplete before any of its files change."""
    config = settings(config)
    store = open_store(url, config)
    call(lambda: store.delete([MANIFEST]), f"Clearing the manifest of {url}", url, config)


def upload_files(local_dir: str | Path, url: str, rels: list[str], config: StorageConfig | None = None) -> None:
    """Upload the files `rels` (relative paths) of `local_dir` into the folder at `url`, writing no manifest."""
    config = settings(config)
    local_dir = Path(local_dir)
    store = open_store(url, config)
    for rel in rels:
        call(lambda rel=rel: store.put_file(local_dir / rel, rel), f"Uploading {url}/{rel}", url, config)


def write_manifest(url: str, manifest: Manifest, config: StorageConfig | None = None) -> None:
    """Mark the folder at `url` complete: its manifest, written once every file it lists is uploaded."""
    config = settings(config)
    store = open_store(url, config)
    body = manifest.model_dump_json(indent=1).encode()
    call(lambda: store.put_bytes(body, MANIFEST), f"Writing {url}/{MANIFEST}", url, config)


def read_manifest(url: str, config: StorageConfig | None = None) -> Manifest | None:
    """The folder's manifest; None while the folder is incomplete (or absent)."""
    config = settings(config)
    store = open_store(url, config)
    raw = call(lambda: store.get_bytes(MANIFEST), f"Reading {url}/{MANIFEST}", url, config)
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
    config = settings(config)
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

            call(fetch, f"Downloading {url}/{rel}", url, config)
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
    config = settings(config)
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


def delete_dir(url: str, config: StorageConfig | None = None) -> None:
    """Remove a folder: its manifest first, so it stops counting as complete before any file goes."""
    parent, name = split_url(url)
    keys = list_objects(url, config)
    delete_objects(parent, [f"{name}/{MANIFEST}"], config)
    delete_objects(parent, [f"{name}/{k}" for k in keys if k != MANIFEST], config)
