"""Object storage: one way to read and write files and folders at a local path, `file://`, `s3://` or `gs://`.

- Writes are atomic. A single object appears whole or not at all (a local file is written beside its target
  and renamed; an S3/GCS object is one PUT or one completed multipart upload). A folder is complete only
  when its `MANIFEST.json` (every file's size and SHA-256) is there, and the manifest is written last.
- Transient errors (5xx, throttling, resets, timeouts, truncated downloads) are retried with exponential
  backoff; a download is verified against the manifest, and a mismatch is retried as a transient error.
- Credentials come only from the environment or the provider's default chain (boto3's and google-auth's);
  no setting here holds one.

Modules: `config` (StorageConfig and the default settings), `locations` (what a location string names: local
path, `file://`, remote URL), `retries` (transient errors, backoff, permanent errors in words), `stores` (local,
S3 and fsspec stores), `objects` (single objects and listings), `folders` (folders with a manifest).
"""

from components.storage.config import StorageConfig, configure
from components.storage.folders import (
    MANIFEST,
    Manifest,
    ManifestEntry,
    build_manifest,
    cached_download,
    clear_manifest,
    delete_dir,
    describe_manifest,
    download_dir,
    file_sha256,
    is_complete,
    read_manifest,
    upload_dir,
    upload_files,
    write_manifest,
)
from components.storage.locations import is_remote, is_url, join_location, local_path, split_url, url_scheme
from components.storage.objects import (
    check_reachable,
    delete_objects,
    list_objects,
    read_bytes,
    read_text,
    write_bytes,
    write_text,
)
from components.storage.retries import ChecksumMismatch, Transient, is_transient, with_retries
from components.storage.stores import FSSPEC_PACKAGES, FsspecStore, LocalStore, S3Store, Store, open_store

__all__ = [
    "FSSPEC_PACKAGES",
    "MANIFEST",
    "ChecksumMismatch",
    "FsspecStore",
    "LocalStore",
    "Manifest",
    "ManifestEntry",
    "S3Store",
    "StorageConfig",
    "Store",
    "Transient",
    "build_manifest",
    "cached_download",
    "check_reachable",
    "clear_manifest",
    "configure",
    "delete_dir",
    "delete_objects",
    "describe_manifest",
    "download_dir",
    "file_sha256",
    "is_complete",
    "is_remote",
    "is_transient",
    "is_url",
    "join_location",
    "list_objects",
    "local_path",
    "open_store",
    "read_bytes",
    "read_manifest",
    "read_text",
    "split_url",
    "upload_dir",
    "upload_files",
    "url_scheme",
    "with_retries",
    "write_bytes",
    "write_manifest",
    "write_text",
]
