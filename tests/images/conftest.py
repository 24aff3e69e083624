"""The runtime image, built from this worktree, and podman's Docker-compatible socket, for the tests that run
containers (tests/images/test_built_images.py, tests/images/test_container_run.py).

The image is built with images/podman_build.py (podman/buildah, installed from Debian's packages when missing;
layers and the stand-in base are cached between runs), under this checkout's own registry name. Without podman and
without root to install it, those tests are skipped with that reason; in CI (`CI` set) they fail instead."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.images.engine import BUILD, REGISTRY, VERSION, cannot_build, engine_env


@pytest.fixture(scope="session")
def runtime_image() -> str:
    """The runtime image's reference, built from this worktree (from the stand-in base where no registry
    answers)."""
    reason = cannot_build()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    env = {**os.environ, "REGISTRY": REGISTRY, "VERSION": VERSION}
    proc = subprocess.run([sys.executable, str(BUILD), "runtime"], env=env, capture_output=True, text=True,
                          timeout=1800)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]
    return f"{REGISTRY}/star-runtime:{VERSION}"


@pytest.fixture(scope="session")
def podman_socket(runtime_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """DOCKER_HOST of podman's Docker-compatible API, served for the session and stopped after it."""
    socket = tmp_path_factory.mktemp("podman") / "podman.sock"
    log_path = socket.with_name("service.log")
    with log_path.open("w") as log:
        service = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{socket}"],
                                   env=engine_env(), stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while not socket.exists():
                assert service.poll() is None and time.monotonic() < deadline, (
                    f"podman system service did not start: {log_path.read_text()}")
                time.sleep(0.1)
            yield f"unix://{socket}"
        finally:
            service.terminate()
            try:
                service.wait(timeout=30)
            except subprocess.TimeoutExpired:
                service.kill()
