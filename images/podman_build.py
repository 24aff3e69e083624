"""Build the STaR images with podman/buildah, on a machine without a Docker engine (`make images` uses `docker
buildx bake` where a Docker engine answers). Standard library only: it runs before any virtual environment.

    python3 images/podman_build.py                 # every image this machine can build
    python3 images/podman_build.py runtime         # one image (a bake target name)

What it does, so that the same Dockerfiles build here as with BuildKit:
- installs Debian's podman, buildah, runc and mmdebstrap when missing (as root; otherwise it names them);
- reads the images, their Dockerfiles and tags from images/docker-bake.hcl (REGISTRY and VERSION from the
  environment, as bake does);
- takes each pinned base image from the local store or its registry; where no registry answers, a
  `python:*-bookworm` base is replaced by a stand-in made with `mmdebstrap --variant=minbase bookworm` plus
  Python 3.11 (built once, kept in podman's store), through `--build-context '<the FROM ref>=container-image://…'`
  so the Dockerfiles keep their real pins; an image whose base can be neither pulled nor stood in for is skipped
  with the reason (exit status 0 only when every requested image was built);
- gives `pip` inside the build this machine's pip settings (`pip config list`, written to /etc/pip.conf) and
  mounts the files and folders they name (CA bundle, constraints, local wheels and indexes) read-only;
- when the PyTorch CPU index does not answer, builds with TORCH_INDEX_URL empty: torch's CPU build then comes
  from what the pip settings reach, and the runtime image's build stage checks that it is the CPU build;
- runs containers with runc and with ulimits within this machine's hard limits (containers.conf).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import resource
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BAKE = REPO / "images" / "docker-bake.hcl"
STATE = Path(os.environ.get("STAR_IMAGES_STATE", Path.home() / ".cache" / "star" / "images"))

TOOLS = {"podman": "podman", "buildah": "buildah", "runc": "runc", "mmdebstrap": "mmdebstrap"}
# libpython3.11: the official images build Python shared (wheels such as torch_xla link libpython3.11.so)
STAND_IN_PACKAGES = ("python3", "python3-venv", "python-is-python3", "libpython3.11", "ca-certificates")
STAND_IN_SUITE = "bookworm"
# the stand-in's name carries a digest of its recipe: a changed recipe makes a new one
STAND_IN = "localhost/star-stand-in-base:{suite}-{digest}"
# bases a stand-in can replace: the official Python images on Debian bookworm
STANDS_IN_FOR = re.compile(r"^(docker\.io/(library/)?)?python:3\.11[\w.-]*-bookworm(@sha256:[0-9a-f]{64})?$")
TORCH_INDEX = "https://download.pytorch.org/whl/cpu"


class BuildError(Exception):
    """Something the user must fix, in one sentence."""


@dataclass(frozen=True)
class Target:
    name: str
    dockerfile: Path
    stage: str
    tags: list[str]


# ---- the bake file ----------------------------------------------------------------------------------------


def bake_targets(registry: str | None = None, version: str | None = None) -> dict[str, Target]:
    """The bake file's targets (inheritance resolved, variables substituted), in its default group's order."""
    text = BAKE.read_text()
    variables = {name: default for name, default in re.findall(
        r'^variable\s+"(\w+)"\s*\{\s*default\s*=\s*"([^"]*)"', text, re.M)}
    for name in variables:
        variables[name] = os.environ.get(name, variables[name])
    if registry is not None:
        variables["REGISTRY"] = registry
    if version is not None:
        variables["VERSION"] = version

    def sub(value: str) -> str:
        return re.sub(r"\$\{(\w+)\}", lambda m: variables[m.group(1)], value)

    raw: dict[str, dict[str, str | list[str]]] = {}
    for name, body in re.findall(r'^target\s+"([^"]+)"\s*\{(.*?)^\}', text, re.S | re.M):
        attrs: dict[str, str | list[str]] = {}
        for key, value in re.findall(r"^\s*(\w+)\s*=\s*(\[.*?\]|\".*?\")", body, re.M | re.S):
            attrs[key] = [sub(v) for v in re.findall(r'"([^"]*)"', value)] if value.startswith("[") else sub(
                value.strip('"'))
        raw[name] = attrs
    default = re.search(r'^group\s+"default"\s*\{\s*targets\s*=\s*\[(.*?)\]', text, re.S | re.M)
    names = re.findall(r'"([^"]+)"', default.group(1)) if default else [n for n in raw if not n.startswith("_")]
    targets: dict[str, Target] = {}
    for name in names:
        merged: dict[str, str | list[str]] = {}
        for parent in raw[name].get("inherits", []):
            merged.update(raw[parent])
        merged.update(raw[name])
        targets[name] = Target(name, REPO / str(merged["dockerfile"]), str(merged.get("target", "")),
                               list(merged.get("tags", [])))
    return targets


def stage_names(dockerfile: Path) -> list[str]:
    """The named stages (`FROM … AS name`), in order."""
    return re.findall(r"^\s*FROM\s+\S+(?:\s+\S+)*?\s+AS\s+(\S+)\s*$", dockerfile.read_text(), re.I | re.M)


def base_images(dockerfile: Path) -> list[str]:
    """The images the Dockerfile's stages start FROM (not earlier stages), in order, without duplicates."""
    refs: list[str] = []
    aliases: set[str] = set()
    for line in dockerfile.read_text().splitlines():
        m = re.match(r"^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", line, re.I)
        if not m:
            continue
        if m.group(1) not in aliases and m.group(1) not in refs:
            refs.append(m.group(1))
        if m.group(2):
            aliases.add(m.group(2))
    return refs


# ---- tools and settings -----------------------------------------------------------------------------------


def ensure_tools() -> None:
    missing = [pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise BuildError(f"{', '.join(missing)} missing: install Debian's packages ({' '.join(missing)}), or build "
                         "with Docker (docker buildx bake -f images/docker-bake.hcl).")
    print(f"installing {' '.join(missing)} from Debian's packages", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing, "uidmap",
                    "fuse-overlayfs", "slirp4netns", "netavark", "aardvark-dns", "catatonit", "conmon"],
                   check=True, env=env, stdout=subprocess.DEVNULL)


def containers_conf() -> Path:
    """runc (crun fails on cgroups in hybrid mode) and ulimits no higher than this machine's hard limits (podman's
    default nofile of 1048576 is refused where the hard limit is lower)."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    nofile = 1048576 if nofile == resource.RLIM_INFINITY else min(nofile, 1048576)
    nproc = 32768 if nproc == resource.RLIM_INFINITY else min(nproc, 32768)
    return write_state("containers.conf", "# written by images/podman_build.py\n[containers]\n"
                       f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
                       '[engine]\nruntime = "runc"\n')


def write_state(name: str, text: str) -> Path:
    """A settings file under STATE, replaced whole (builds from other checkouts may be reading it)."""
    STATE.mkdir(parents=True, exist_ok=True)
    path = STATE / name
    if not path.exists() or path.read_text() != text:
        tmp = path.with_name(f".{name}.{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path


def engine_env() -> dict[str, str]:
    """The environment podman and buildah run in."""
    return {**os.environ, "CONTAINERS_CONF": str(containers_conf()), "BUILDAH_LAYERS": "true"}


def ulimit_flags() -> list[str]:
    text = containers_conf().read_text()
    return [f"--ulimit={u}" for u in re.findall(r'"(n\w+=\d+:\d+)"', text)]


def pip_settings(python: str) -> dict[str, dict[str, str]]:
    """This machine's pip settings as pip reads them (every file and PIP_* variable), by section; values from
    the environment go to [global]."""
    proc = subprocess.run([python, "-m", "pip", "config", "list"], capture_output=True, text=True)
    sections: dict[str, dict[str, str]] = {}
    env: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        m = re.match(r"^([^.=]*)\.([\w-]+)='(.*)'$", line)
        if not m:
            continue
        section, key, value = m.groups()
        if section == ":env:":
            env[key] = value
        else:
            sections.setdefault(section, {})[key] = value
    if env:
        sections.setdefault("global", {}).update(env)
    return sections


def pip_mounts(settings: dict[str, dict[str, str]]) -> list[Path]:
    """The files and folders the pip settings name that exist here: absolute paths, and for a file:// index the
    folder that holds it (its pages may link to files beside it, `../../files/x.whl`)."""
    found: list[Path] = []
    for values in settings.values():
        for value in values.values():
            for word in value.split():
                path = Path(word[len("file://"):]).parent if word.startswith("file://") else Path(word)
                if path.is_absolute() and path.exists() and path not in found and str(path) != "/":
                    found.append(path)
    return found


def write_pip_conf(settings: dict[str, dict[str, str]]) -> Path:
    lines = ["# this machine's pip settings (pip config list), written by images/podman_build.py"]
    for section, values in settings.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {value}" for key, value in values.items())
    return write_state("pip.conf", "\n".join(lines) + "\n")


def reachable(url: str, timeout: float = 5.0) -> bool:
    host = re.sub(r"^\w+://([^/:]+).*$", r"\1", url)
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


# ---- base images ------------------------------------------------------------------------------------------


def image_exists(ref: str, env: dict[str, str]) -> bool:
    return subprocess.run(["podman", "image", "exists", ref], env=env).returncode == 0


def pulled(ref: str, env: dict[str, str]) -> bool:
    if image_exists(ref, env):
        return True
    proc = subprocess.run(["podman", "pull", "--quiet", ref], env=env, capture_output=True, text=True)
    return proc.returncode == 0


def stand_in(env: dict[str, str]) -> str:
    """The stand-in base, made once: Debian bookworm (minbase) with Python 3.11, venv and CA certificates."""
    recipe = f"{STAND_IN_SUITE} minbase {' '.join(STAND_IN_PACKAGES)}"
    ref = STAND_IN.format(suite=STAND_IN_SUITE, digest=hashlib.sha256(recipe.encode()).hexdigest()[:12])
    if image_exists(ref, env):
        return ref
    print(f"making the stand-in base {ref} (mmdebstrap --variant=minbase {STAND_IN_SUITE})", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        subprocess.run(["mmdebstrap", "--quiet", "--variant=minbase", f"--include={','.join(STAND_IN_PACKAGES)}",
                        STAND_IN_SUITE, str(tarball)], check=True)
        subprocess.run(["podman", "import", "--quiet", "--change", 'CMD ["python3"]', str(tarball), ref],
                       check=True, env=env, stdout=subprocess.DEVNULL)
    return ref


def resolve_bases(target: Target, env: dict[str, str]) -> tuple[dict[str, str], str | None]:
    """Base ref -> replacement for `--build-context` ({} when every base is there); or the reason the image cannot
    be built here."""
    contexts: dict[str, str] = {}
    for ref in base_images(target.dockerfile):
        if pulled(ref, env):
            continue
        if not STANDS_IN_FOR.match(ref):
            return {}, f"its base {ref} cannot be pulled here and has no stand-in"
        contexts[ref] = stand_in(env)
    return contexts, None


# ---- building ---------------------------------------------------------------------------------------------


def build_command(target: Target, stage: str, contexts: dict[str, str], pip_mounts: list[tuple[Path, Path]],
                  torch_index: str) -> list[str]:
    """`buildah bud` for one stage of the target's Dockerfile; `pip_mounts` (source, target) are bound read-only
    into its RUN steps, the image's tags given only to the target's own stage."""
    ignore = target.dockerfile.with_name(target.dockerfile.name + ".dockerignore")
    cmd = ["buildah", "bud", "--layers", "--pull=false", "--network=host", "--runtime=runc", *ulimit_flags(),
           "-f", str(target.dockerfile), "--target", stage]
    if ignore.exists():
        cmd += ["--ignorefile", str(ignore)]
    if stage == target.stage:
        for tag in target.tags:
            cmd += ["-t", tag]
    for ref, replacement in contexts.items():
        cmd += ["--build-context", f"{ref}=container-image://{replacement}"]
    for source, dest in pip_mounts:
        cmd += ["-v", f"{source}:{dest}:ro"]
    cmd += ["--build-arg", f"TORCH_INDEX_URL={torch_index}"]
    for arg in ("VERSION", "REVISION", "CREATED"):
        if arg in os.environ:
            cmd += ["--build-arg", f"{arg}={os.environ[arg]}"]
    return [*cmd, str(REPO)]


def build(names: list[str], python: str) -> int:
    ensure_tools()
    env = engine_env()
    targets = bake_targets()
    unknown = [n for n in names if n not in targets]
    if unknown:
        raise BuildError(f"no image {', '.join(unknown)} in {BAKE.name}; choose from {', '.join(targets)}.")
    settings = pip_settings(python)
    with_pip = [(write_pip_conf(settings), Path("/etc/pip.conf")), *((p, p) for p in pip_mounts(settings))]
    torch_index = TORCH_INDEX if reachable(TORCH_INDEX) else ""
    if not torch_index:
        print(f"{TORCH_INDEX} does not answer: torch's CPU build comes from this machine's pip settings", flush=True)
    built, skipped, failed = [], [], []
    for name in names or list(targets):
        target = targets[name]
        contexts, reason = resolve_bases(target, env)
        if reason:
            print(f"not built: {name}: {reason}", flush=True)
            skipped.append(name)
            continue
        # Stages before the image's own are built first with the pip settings mounted; the image's stage then
        # takes them from the layer cache and runs its own steps without the mounts, whose mount points buildah
        # would otherwise leave (empty) in the image.
        earlier = [s for s in stage_names(target.dockerfile) if s != target.stage]
        steps = [(earlier[-1], with_pip)] if earlier else []
        steps.append((target.stage, [] if earlier else with_pip))
        for stage, stage_mounts in steps:
            cmd = build_command(target, stage, contexts, stage_mounts, torch_index)
            print(f"building {name} ({stage}): {shlex.join(cmd)}", flush=True)
            if subprocess.run(cmd, env=env).returncode != 0:
                print(f"failed: {name}", flush=True)
                failed.append(name)
                break
        else:
            built.append(name)
    print(f"built: {', '.join(built) or 'none'}; failed: {', '.join(failed) or 'none'}; not built here (base "
          f"image unavailable): {', '.join(skipped) or 'none'}", flush=True)
    subprocess.run(["podman", "images", "--filter", "dangling=false"], env=env)
    # all images: what this machine cannot build is reported, not an error; images asked for by name must build
    return 1 if failed or (names and skipped) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("images", nargs="*", help="bake target names (default: all)")
    parser.add_argument("--python", default=sys.executable, help="the Python whose pip settings the builds use")
    args = parser.parse_args(argv)
    try:
        return build(args.images, args.python)
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
