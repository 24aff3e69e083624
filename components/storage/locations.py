"""What a location string names. One classification for every reader and writer of files, folders and objects:

- a **local path** (`runs/demo`, `/data/train.jsonl`) has no scheme;
- a **URL** has one (`file://`, `s3://`, `gs://`, `memory://`, any fsspec protocol); its parts are joined with
  "/", never as a filesystem path (which would fold `s3://` into `s3:/`);
- a **remote** location is a URL whose objects are not on this machine: every scheme but `file`. Remote
  locations are read and written through a store (and downloaded where a local copy is needed); local
  locations, `file://` URLs included, are opened where they are.
"""

from __future__ import annotations

import re
from pathlib import Path

from components.core.errors import StarError

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")


def url_scheme(location: str) -> str | None:
    """The scheme of a URL in lower case (`s3`, `gs`, `file`, ...); None for a local path."""
    m = _SCHEME.match(location)
    return m.group(1).lower() if m else None


def is_url(location: str) -> bool:
    """The location has a scheme, `file://` included."""
    return url_scheme(location) is not None


def is_remote(location: str) -> bool:
    """A URL of object storage or another non-local filesystem: any scheme except `file://`."""
    return url_scheme(location) not in (None, "file")


def local_path(location: str) -> str:
    """The filesystem path of a local location: a `file://` URL without its scheme, a path as it is. (Remote
    locations are returned unchanged.)"""
    m = _SCHEME.match(location)
    return location[m.end():] if m and m.group(1).lower() == "file" else location


def join_location(folder: str, name: str) -> str:
    """`name` inside `folder`: joined with "/" for a URL, as a path otherwise."""
    return folder.rstrip("/") + "/" + name if is_url(folder) else str(Path(folder) / name)


def split_url(url: str) -> tuple[str, str]:
    """(folder URL, name) of an object URL."""
    head, _, name = url.rstrip("/").rpartition("/")
    if not name or head.endswith(":/") or head.endswith(":"):
        raise StarError(f"{url} names no object.")
    return head, name
