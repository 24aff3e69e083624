"""The package `kfp run submit` uploads: compiling the STaR pipeline into it, measuring it, and reading one.

KFP's compiler copies a sub-pipeline's components and executors once per use (`comp-train-op-2`, ...), so a
pipeline that uses one iteration definition N times still holds N copies of it. `fold_duplicates` merges the
copies back: executors with the same container spec and the same platform (kfp-kubernetes) settings become one,
and then, until nothing changes, components whose specs are the same once their references are merged. Every
task keeps its own name, inputs and dependencies; only the definitions it refers to are shared, as they are when a
pipeline is written with one component used by several tasks."""

from __future__ import annotations

import json
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel

from components.core.errors import StarError
from pipelines.kfp_client import SubmitError

if TYPE_CHECKING:
    from pipelines.config import RunConfig


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _dags(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Every DAG of the pipeline (root and sub-DAGs)."""
    dags = [spec["root"]["dag"]] if "dag" in spec.get("root", {}) else []
    dags += [c["dag"] for c in spec.get("components", {}).values() if "dag" in c]
    return dags


def _fold_executors(spec: dict[str, Any], platform: dict[str, Any] | None) -> int:
    executors: dict[str, Any] = spec.get("deploymentSpec", {}).get("executors", {})
    platform_executors: dict[str, Any] = {}
    if platform is not None:
        platform_executors = platform.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {}).get(
            "executors", {})
    first: dict[str, str] = {}
    rename: dict[str, str] = {}
    for label in sorted(executors, key=lambda k: (len(k), k)):
        key = _canonical([executors[label], platform_executors.get(label)])
        if key in first:
            rename[label] = first[key]
        else:
            first[key] = label
    for component in spec.get("components", {}).values():
        if component.get("executorLabel") in rename:
            component["executorLabel"] = rename[component["executorLabel"]]
    for label in rename:
        del executors[label]
        platform_executors.pop(label, None)
    return len(rename)


def _fold_components(spec: dict[str, Any]) -> int:
    components: dict[str, Any] = spec.get("components", {})
    first: dict[str, str] = {}
    rename: dict[str, str] = {}
    for name in sorted(components, key=lambda k: (len(k), k)):
        key = _canonical(components[name])
        if key in first:
            rename[name] = first[key]
        else:
            first[key] = name
    for dag in _dags(spec):
        for task in dag.get("tasks", {}).values():
            ref = task.get("componentRef", {})
            if ref.get("name") in rename:
                ref["name"] = rename[ref["name"]]
    for name in rename:
        del components[name]
    return len(rename)


def fold_duplicates(spec: dict[str, Any], platform: dict[str, Any] | None = None) -> None:
    """Merge identical executors and components of a compiled pipeline spec (and its platform spec) in place."""
    _fold_executors(spec, platform)
    while _fold_components(spec):
        pass


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml where PyYAML was built with it
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def read_package(path: str | Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The pipeline spec and the platform spec (None without kfp-kubernetes settings) of a package file that
    `star compile` wrote."""
    docs = [d for d in yaml.load_all(Path(path).read_text(encoding="utf-8"), Loader=_Loader) if d]
    return docs[0], (docs[1] if len(docs) > 1 else None)


def write_package(path: str | Path, spec: dict[str, Any], platform: dict[str, Any] | None) -> None:
    docs = [spec] + ([platform] if platform is not None else [])
    text = yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120,
                         allow_unicode=True)
    Path(path).write_text(text, encoding="utf-8")


def compile_package(pipeline: Any, path: str | Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Compile `pipeline` to `path` with KFP's compiler, then fold the copies of reused definitions; the
    pipeline spec and platform spec written."""
    from kfp import compiler

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipeline, str(path))
    spec, platform = read_package(path)
    fold_duplicates(spec, platform)
    write_package(path, spec, platform)
    return spec, platform


class PackageReport(BaseModel):
    """What `star compile` says of a package: its size, the tasks a run of it executes, and the estimated size of
    the Argo Workflow object at the end of the run (see pipelines/workflow_size/ for the method)."""

    iterations: int
    package_bytes: int
    tasks: int
    #: The Workflow as Argo keeps it at the end of the run: its spec, and its node status gzipped (Argo compresses
    #: `status.nodes` once the object passes its limit, and fails the run only if it is still over).
    workflow_bytes: int
    #: The same with the node status uncompressed (what Argo keeps while the object is under the limit).
    uncompressed_bytes: int
    limit_bytes: int

    def describe(self) -> str:
        return (f"{self.iterations} iteration{'s' if self.iterations != 1 else ''}: package "
                f"{self.package_bytes / 1024:,.0f} KiB, {self.tasks:,} tasks; the Argo Workflow reaches about "
                f"{self.workflow_bytes / 1024:,.0f} KiB by the end of the run "
                f"({self.uncompressed_bytes / 1024:,.0f} KiB before Argo compresses its node status), "
                f"limit {self.limit_bytes / 1024:,.0f} KiB")


def measure(config: RunConfig, path: str | Path) -> PackageReport:
    """Compile `config` to `path` and measure it."""
    from pipelines.star_pipeline import build_pipeline
    from pipelines.workflow_size import ARGO_OBJECT_LIMIT, estimate_workflow

    spec, platform = compile_package(build_pipeline(config), path)
    estimate = estimate_workflow([spec] + ([platform] if platform is not None else []))
    return PackageReport(iterations=config.iterations - config.start.iteration + 1,
                         package_bytes=Path(path).stat().st_size, tasks=estimate.tasks,
                         workflow_bytes=estimate.compressed_total_bytes, uncompressed_bytes=estimate.total_bytes,
                         limit_bytes=ARGO_OBJECT_LIMIT)


def largest_fitting(config: RunConfig, limit: int) -> int:
    """The most iterations this configuration can run in one Workflow of at most `limit` bytes (0: not even one).
    The estimate grows linearly with the iterations: two small compiles give the slope, one more confirms."""
    first = config.start.iteration

    def size(iterations: int) -> int:
        with tempfile.TemporaryDirectory() as tmp:
            last = first + iterations - 1
            return measure(config.model_copy(update={"iterations": last}), Path(tmp) / "p.yaml").workflow_bytes

    one, two = size(1), size(2)
    if one > limit:
        return 0
    slope = max(two - one, 1)
    guess = 1 + (limit - one) // slope
    while guess > 1 and size(guess) > limit:
        guess -= 1
    return guess


def compile_checked(config: RunConfig, path: str | Path) -> PackageReport:
    """Compile `config` to `path`; refuse (StarError, the file removed) a run whose Workflow would not fit."""
    report = measure(config, path)
    if report.workflow_bytes <= report.limit_bytes:
        return report
    Path(path).unlink(missing_ok=True)
    fits = largest_fitting(config, report.limit_bytes)
    first = config.start.iteration
    if fits == 0:
        raise StarError(
            f"Even one iteration's Argo Workflow would grow to more than the {report.limit_bytes / 1024:,.0f} KiB "
            "Kubernetes lets Argo keep in one object; lower num_shards."
        )
    raise StarError(
        f"This run's Argo Workflow would grow to about {report.workflow_bytes / 1024:,.0f} KiB by its end, over the "
        f"{report.limit_bytes / 1024:,.0f} KiB Kubernetes lets Argo keep in one object; at most {fits} iterations "
        f"fit in one run: set iterations to {first + fits - 1} and `publish` to a bucket folder, then continue with "
        f"`star submit CONFIG --from <publish URL>`."
    )


# Reading a package someone gives `star upload`/`star submit` (also from a .zip or .tar.gz archive).

PACKAGE_SUFFIXES = (".yaml", ".yml", ".json", ".zip", ".tar.gz", ".tgz")


def check_package(package_path: str) -> Path:
    path = Path(package_path)
    if not path.is_file():
        raise SubmitError(
            f"Pipeline package {package_path} does not exist; compile it first with `star compile`."
        )
    if not path.name.lower().endswith(PACKAGE_SUFFIXES):
        raise SubmitError(
            f"Pipeline package {package_path} must end with one of {', '.join(PACKAGE_SUFFIXES)}; "
            "compile it with `star compile CONFIG -o pipeline.yaml`."
        )
    spec = read_pipeline_spec(path)
    if not isinstance(spec, dict) or "pipelineInfo" not in spec or "root" not in spec:
        raise SubmitError(
            f"Pipeline package {package_path} is not a compiled KFP pipeline (no pipelineInfo/root); "
            "compile it with `star compile`."
        )
    return path


def read_pipeline_spec(path: Path) -> Any:
    """The first YAML/JSON document of a package (the PipelineSpec), unpacking .zip/.tar.gz archives."""
    name = path.name.lower()
    try:
        if name.endswith((".zip", ".tar.gz", ".tgz")):
            text = _read_from_archive(path)
        else:
            text = path.read_text(encoding="utf-8")
        return next(iter(yaml.load_all(text, Loader=_Loader)), None)
    except (
        OSError,
        UnicodeDecodeError,
        yaml.YAMLError,
        tarfile.TarError,
        zipfile.BadZipFile,
        KeyError,
    ) as exc:
        raise SubmitError(
            f"Pipeline package {path} cannot be read ({type(exc).__name__}); recompile it."
        ) from exc


def _read_from_archive(path: Path) -> str:
    def choose(names: list[str]) -> str:
        yamls = [n for n in names if n.endswith((".yaml", ".yml", ".json"))]
        if "pipeline.yaml" in yamls:
            return "pipeline.yaml"
        if len(yamls) == 1:
            return yamls[0]
        raise KeyError("pipeline.yaml")

    if path.name.lower().endswith(".zip"):
        with zipfile.ZipFile(path) as zf:
            return zf.read(choose(zf.namelist())).decode("utf-8")
    with tarfile.open(path, "r:gz") as tf:
        member = tf.getmember(choose([m.name for m in tf.getmembers() if m.isfile()]))
        handle = tf.extractfile(member)
        if handle is None:
            raise KeyError(member.name)
        return handle.read().decode("utf-8")


def pipeline_name_from_package(package: Path) -> str:
    spec = read_pipeline_spec(package)
    name = (spec.get("pipelineInfo") or {}).get("name") if isinstance(spec, dict) else None
    if not isinstance(name, str) or not name.strip():
        raise SubmitError(f"Pipeline package {package} has no pipelineInfo.name; pass --pipeline-name.")
    return name.strip()
