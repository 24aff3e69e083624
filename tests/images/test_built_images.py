"""The runtime image, built here (images/podman_build.py, from the stand-in base where no registry answers):
the `star` command runs in it, as the non-root user, with torch's CPU build and nothing of the build left in it."""

from __future__ import annotations

import json

from tests.images.engine import VERSION, podman


def test_star_help_runs_in_the_runtime_image(runtime_image: str) -> None:
    proc = podman("run", "--rm", runtime_image, "star", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage: star" in proc.stdout
    for command in ("run", "compile", "submit", "storage"):
        assert f" {command} " in proc.stdout, command


def test_the_runtime_image_runs_as_its_user_with_the_cpu_build_of_torch(runtime_image: str) -> None:
    probe = (
        "import json, os, pathlib, torch, components, pipelines.cli; "
        "print(json.dumps({'uid': os.getuid(), 'torch': torch.__version__, 'cuda': torch.version.cuda, "
        "'home': os.environ['HOME'], 'leftovers': [p for p in ('/etc/pip.conf', '/opt/wheels', '/src') "
        "if pathlib.Path(p).exists()]}))"
    )
    proc = podman("run", "--rm", runtime_image, "python", "-c", probe)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["uid"] == 10001 and seen["home"] == "/home/star"
    assert seen["torch"].startswith("2.13.0") and seen["cuda"] is None
    assert seen["leftovers"] == []  # the build's pip settings were mounted into the build stage only


def test_the_runtime_image_carries_its_labels(runtime_image: str) -> None:
    proc = podman("image", "inspect", runtime_image)
    assert proc.returncode == 0, proc.stderr
    labels = json.loads(proc.stdout)[0]["Labels"]
    assert labels["org.opencontainers.image.title"] == "star-runtime"
    assert labels["org.opencontainers.image.version"] == VERSION
