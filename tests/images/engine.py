"""Helpers for the tests that build and run images: names of this checkout's test images, and podman run in the
environment images/podman_build.py sets up (runc, ulimits within this machine's limits)."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from tests.paths import REPO

BUILD = REPO / "images" / "podman_build.py"
#: registry part of the test images' names: one per checkout, so builds from other checkouts on the same machine
#: do not replace them
REGISTRY = f"localhost/star-test-{hashlib.sha256(str(REPO).encode()).hexdigest()[:8]}"
VERSION = "test"


def cannot_build() -> str | None:
    """Why images cannot be built here, or None."""
    if shutil.which("podman") or (os.geteuid() == 0 and shutil.which("apt-get")):
        return None
    return "podman is not installed and installing it needs root (apt-get install podman buildah runc mmdebstrap)"


def load_podman_build() -> ModuleType:
    """images/podman_build.py as a module (it is a script, outside the packages)."""
    spec = importlib.util.spec_from_file_location("podman_build", BUILD)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("podman_build", module)  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


#: This checkout's own podman event log: podman 4.3 appends events from concurrent podman processes to one shared
#: file without a lock, an interleaved line stops `podman events` from reading any further, and the tests count the
#: containers a run started from the events.
EVENTS_LOG = REPO / ".pytest_cache" / f"podman-events-{REGISTRY.rsplit('-', 1)[1]}.log"


def engine_env() -> dict[str, str]:
    """The environment podman runs in: the containers.conf podman_build.py writes, with this checkout's event log."""
    env = load_podman_build().engine_env()
    base = Path(env["CONTAINERS_CONF"]).read_text()
    if "[engine]" not in base:
        base += "\n[engine]\n"
    EVENTS_LOG.parent.mkdir(parents=True, exist_ok=True)
    conf = EVENTS_LOG.with_suffix(".conf")
    engine = f'[engine]\nevents_logger = "file"\nevents_logfile_path = "{EVENTS_LOG}"\n'
    conf.write_text(base.replace("[engine]\n", engine, 1))
    return {**env, "CONTAINERS_CONF": str(conf)}


def podman(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], env=engine_env(), capture_output=True, text=True, timeout=timeout)
