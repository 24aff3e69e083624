"""Single objects and listings at a URL (or local path): read, write, list, delete, each retried on transient
errors and failing with one sentence on permanent ones."""

from __future__ import annotations

from pathlib import Path

from components.core.errors import StarError
from components.storage.config import StorageConfig, settings
from components.storage.locations import is_remote, local_path, split_url
from components.storage.retries import call
from components.storage.stores import open_store


def list_objects(url: str, config: StorageConfig | None = None) -> dict[str, int]:
    """Every object under the folder `url` (recursive): key relative to `url` -> size."""
    config = settings(config)
    store = open_store(url, config)
    return call(lambda: store.list(""), f"Listing {url}", url, config)


def delete_objects(url: str, keys: list[str], config: StorageConfig | None = None) -> None:
    config = settings(config)
    store = open_store(url, config)
    call(lambda: store.delete(keys), f"Deleting under {url}", url, config)


def check_reachable(url: str, what: str, config: StorageConfig | None = None) -> None:
    """Fail at once, with the setting to fix, when the bucket of `url` cannot be listed: a missing bucket,
    refused credentials, or an endpoint that does not answer (tried briefly, not with the full retry budget)."""
    config = settings(config)
    brief = config.model_copy(update={"attempts": min(config.attempts, 2), "timeout_seconds": 10.0})
    try:
        list_objects(url, brief)
    except StarError as e:
        raise StarError(f"{what} {url} cannot be used: {e}") from e


def write_bytes(url: str, data: bytes, config: StorageConfig | None = None) -> None:
    """Write one object (or local file) whole: a reader sees the old content or the new, never a part."""
    config = settings(config)
    folder, name = split_url(url)
    store = open_store(folder, config)
    call(lambda: store.put_bytes(data, name), f"Writing {url}", url, config)


def read_bytes(url: str, config: StorageConfig | None = None) -> bytes | None:
    """The object's bytes, or None when there is no such object."""
    config = settings(config)
    folder, name = split_url(url)
    store = open_store(folder, config)
    return call(lambda: store.get_bytes(name), f"Reading {url}", url, config)


def write_text(location: str, text: str, config: StorageConfig | None = None) -> None:
    """Write a small text file (UTF-8) whole: locally by rename, on object storage as one PUT."""
    write_bytes(location, text.encode("utf-8"), config)


def read_text(location: str, config: StorageConfig | None = None) -> str | None:
    """The UTF-8 text of the file or object at `location` (a path, `file://` or a remote URL); None when there is
    no such file. Any other problem (refused access, an unreachable service, bytes that are not UTF-8 text) is
    a StarError naming the location."""
    try:
        if is_remote(location):
            data = read_bytes(location, config)
        else:
            path = Path(local_path(location))
            data = path.read_bytes() if path.is_file() else None
        return None if data is None else data.decode("utf-8")
    except StarError:
        raise
    except UnicodeDecodeError as e:
        raise StarError(f"{location} is not UTF-8 text ({e.reason} at byte {e.start}).") from e
    except Exception as e:  # credentials, permissions, network: the filesystem's own words
        raise StarError(f"Could not read {location}: {e}.") from e
