"""A run's published iterations: `<publish>/iteration-<n>/` holds iteration n's model (`model/`) and the run's
history up to n (`history.jsonl`), copied with a manifest written last, so a folder is complete or absent. A later
run starts from one of them (a long run as a chain of runs; a failed cluster run resumed)."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from components.core.artifact_files import HISTORY
from components.core.errors import StarError
from components.storage import MANIFEST, StorageConfig, download_dir, list_objects, upload_dir

MODEL = "model"
_ITERATION = re.compile(r"^iteration-(\d+)/" + re.escape(MANIFEST) + "$")


def iteration_url(url: str, iteration: int) -> str:
    return f"{url.rstrip('/')}/iteration-{iteration}"


def publish_iteration(url: str, iteration: int, model_dir: str | Path, history_dir: str | Path,
                      storage: StorageConfig | None = None) -> str:
    """Copy iteration `iteration`'s model and history to `<url>/iteration-<n>/`; its URL."""
    target = iteration_url(url, iteration)
    with tempfile.TemporaryDirectory(prefix="star-publish-") as work:
        folder = Path(work) / "iteration"
        shutil.copytree(model_dir, folder / MODEL)
        shutil.copy(Path(history_dir) / HISTORY, folder / HISTORY)
        upload_dir(folder, target, storage)
    return target


def published_iterations(url: str, storage: StorageConfig | None = None) -> list[int]:
    """The complete published iterations under `url`, in order."""
    return sorted(int(m.group(1)) for key in list_objects(url, storage) if (m := _ITERATION.match(key)))


def require_iteration(url: str, iteration: int, storage: StorageConfig | None = None) -> list[int]:
    """The published iterations under `url`, which must include `iteration` (StarError naming them otherwise)."""
    have = published_iterations(url, storage)
    if iteration not in have:
        listed = ", ".join(map(str, have)) if have else "none"
        raise StarError(f"{url} has no complete iteration {iteration} to start iteration {iteration + 1} from "
                        f"(published there: {listed}); start after one of those.")
    return have


def fetch_iteration(url: str, iteration: int, model_dir: str | Path, history_dir: str | Path,
                    storage: StorageConfig | None = None) -> None:
    """Download published iteration `iteration` (verified against its manifest) into the two folders."""
    require_iteration(url, iteration, storage)
    with tempfile.TemporaryDirectory(prefix="star-start-") as work:
        folder = Path(work) / "iteration"
        download_dir(iteration_url(url, iteration), folder, storage)
        shutil.copytree(folder / MODEL, model_dir, dirs_exist_ok=True)
        Path(history_dir).mkdir(parents=True, exist_ok=True)
        shutil.copy(folder / HISTORY, Path(history_dir) / HISTORY)
