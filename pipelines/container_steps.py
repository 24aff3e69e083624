"""`star run --runner container`: every step of a local run executes inside its image (the images a cluster run
uses, `cluster.images`), through kfp.local's DockerRunner and a Docker-compatible engine: a Docker engine, or
podman's socket (`podman system service`, with DOCKER_HOST pointing at it)."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.core.errors import StarError
from pipelines.config import RunConfig
from pipelines.placement import image_for

if TYPE_CHECKING:
    from kfp.local import DockerRunner

#: HOME inside the containers: steps run as the user who started the run (so the files they write in the run
#: folder are that user's), who may have no home in the image.
CONTAINER_HOME = "/tmp"


class LocalRunner(StrEnum):
    """Where the steps of a local run execute."""

    subprocess = "subprocess"  # in this Python environment
    container = "container"  # each in its image


def step_images(config: RunConfig) -> list[str]:
    """The images the run's steps use, as a cluster run would."""
    backend = config.generation.backend
    return sorted({image_for(kind, config.cluster, backend) for kind in ("cpu", "generate", "train", "evaluate")})


def _local(location: str | None) -> bool:
    from components.storage import is_remote

    return bool(location) and not is_remote(location) and not str(location).startswith("builtin:")


def with_absolute_paths(config: RunConfig, out: Path) -> tuple[RunConfig, list[tuple[Path, bool]]]:
    """`config` with the local paths it names made absolute (a step's working folder differs in its container),
    and the folders to mount at the same place: (path, writable). The run folder is writable; inputs that exist
    here (data file, few-shot prompts, model folder, a published run to start from) are read-only; local
    `publish`, checkpoint and model-cache folders are created and writable."""
    from components.storage import local_path

    mounts: list[tuple[Path, bool]] = [(out, True)]

    def absolute(location: str | None, writable: bool = False) -> str | None:
        if location is None or not _local(location):
            return location
        path = Path(local_path(location)).resolve()
        if writable:
            path.mkdir(parents=True, exist_ok=True)
        elif not path.exists():
            return location  # a model ID, or a file the preflight reports
        mounts.append((path, writable))
        return str(path)

    task_update = {key: absolute(getattr(config.task, key)) for key in ("path", "prompts_dir")
                   if getattr(config.task, key, None) is not None}
    config = config.model_copy(update={
        "task": config.task.model_copy(update=task_update),
        "model": config.model.model_copy(update={"base": absolute(config.model.base),
                                                  "cache_dir": absolute(config.model.cache_dir, writable=True)}),
        "start": config.start.model_copy(update={"from_url": absolute(config.start.from_url)}),
        "publish": absolute(config.publish, writable=True),
        "training": config.training.model_copy(
            update={"checkpoints": absolute(config.training.checkpoints, writable=True)}),
    })
    return config, mounts


def docker_runner(config: RunConfig, mounts: list[tuple[Path, bool]]) -> DockerRunner:
    """kfp.local's DockerRunner for this run, once the engine answers and holds every image the steps use."""
    try:
        import docker
        from docker.types import Mount
    except ImportError as e:  # docker is a dependency of the project; an environment may still lack it
        raise StarError("--runner container needs the Python package docker (pip install docker).") from e
    from kfp import local

    try:
        client = docker.from_env()
        client.ping()
    except Exception as e:
        where = os.environ.get("DOCKER_HOST", "the default Docker socket")
        raise StarError(
            f"--runner container found no container engine at {where}: start Docker, or podman's socket "
            "(`podman system service --time=0 unix:///tmp/podman.sock &` and DOCKER_HOST=unix:///tmp/podman.sock)."
        ) from e
    try:
        missing = []
        for image in step_images(config):
            try:
                client.images.get(image)
            except docker.errors.ImageNotFound:
                missing.append(image)
    finally:
        client.close()
    if missing:
        raise StarError(f"--runner container: image {', '.join(missing)} is not on this machine; build it with "
                        "`make images` (or set cluster.images to images the engine has).")
    from kfp.local import docker_task_handler

    # kfp.local starts each step's container with auto-removal, then asks for its logs; docker-py looks the
    # container up after the log stream opens, and podman (4.3) answers a container it has just removed with a
    # 500, not the 404 kfp.local catches, so a step failed at random (1 in 8 here). Steps' containers are removed
    # after their exit status is read instead.
    docker_task_handler.run_docker_container = run_step_container
    args: dict[str, Any] = {
        "user": f"{os.getuid()}:{os.getgid()}",
        "environment": {"HOME": CONTAINER_HOME},
        "mounts": [Mount(target=str(p), source=str(p), type="bind", read_only=not rw) for p, rw in _unique(mounts)],
    }
    return local.DockerRunner(**args)


def _unique(mounts: list[tuple[Path, bool]]) -> list[tuple[Path, bool]]:
    """Each folder once, a writable mount winning over a read-only one of the same path."""
    best: dict[Path, bool] = {}
    for path, rw in mounts:
        best[path] = best.get(path, False) or rw
    return sorted(best.items())


def run_step_container(client: Any, image: str, command: list[str], volumes: dict[str, Any], **run_args: Any) -> int:
    """One step's container (kfp.local's `run_docker_container`, same arguments): started, its output printed as
    it comes, its exit status returned, then removed."""
    print(f"in image {image!r}")
    container = client.containers.run(image=image, command=command, detach=True, stdout=True, stderr=True,
                                      volumes=volumes, **run_args)
    try:
        for chunk in container.logs(stream=True, follow=True):
            print(chunk.decode(errors="replace"), end="")
        return int(container.wait()["StatusCode"])
    finally:
        container.remove(force=True)
