"""The compiled package: one iteration definition however many iterations, linear growth, a size that fits a
real cluster, settings that reach each step alone, and a refusal of runs too long for one Argo Workflow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.core.errors import StarError
from pipelines.config import load_config
from pipelines.package import compile_package, fold_duplicates, read_package
from pipelines.star_pipeline import build_pipeline

ROOT = Path(__file__).resolve().parents[2]
GPU_EXAMPLE = ROOT / "examples" / "gsm8k-gpu.yaml"


def compiled(tmp_path: Path, *overrides: str, example: Path = GPU_EXAMPLE) -> tuple[Path, dict, dict | None]:
    config = load_config(example, list(overrides))
    path = tmp_path / f"p{abs(hash(overrides))}.yaml"
    compile_package(build_pipeline(config), path)
    spec, platform = read_package(path)
    return path, spec, platform


def test_64_iterations_fit_in_600_kb_and_grow_linearly(tmp_path):
    p16, spec16, _ = compiled(tmp_path, "iterations=16", "evaluation.patience=3")
    p64, spec64, _ = compiled(tmp_path, "iterations=64", "evaluation.patience=3")
    size16, size64 = p16.stat().st_size, p64.stat().st_size
    assert size64 < 600_000, size64
    assert size64 / size16 <= 4.5, (size16, size64)
    # one iteration definition: the same components whatever the number of iterations
    assert set(spec16["components"]) == set(spec64["components"])
    iterations = [t for t in spec64["root"]["dag"]["tasks"].values()
                  if t["componentRef"]["name"] == "comp-star-iteration"]
    assert len(iterations) == 64


def test_no_condition_nests_and_no_task_carries_the_whole_configuration(tmp_path):
    path, spec, _ = compiled(tmp_path, "iterations=12", "evaluation.patience=2")
    text = path.read_text()
    assert "condition" not in json.dumps(spec["root"]), "early stop must not nest iterations in dsl.If"
    gates = [t for t in spec["root"]["dag"]["tasks"].values() if t["componentRef"]["name"] == "comp-gate-op"]
    assert len(gates) == 12  # a gate in front of every iteration
    # the settings travel as root parameters: each task refers to one, no task holds a copy
    params = spec["root"]["inputDefinitions"]["parameters"]
    generate = params["generate_settings"]["defaultValue"]
    assert text.count(json.dumps(generate)[1:40]) <= 1


def test_folding_keeps_every_reference_resolvable(tmp_path):
    _, spec, platform = compiled(tmp_path, "iterations=5")
    components, executors = spec["components"], spec["deploymentSpec"]["executors"]
    dags = [spec["root"]["dag"]] + [c["dag"] for c in components.values() if "dag" in c]
    for dag in dags:
        for task in dag["tasks"].values():
            assert task["componentRef"]["name"] in components
    for c in components.values():
        if "executorLabel" in c:
            assert c["executorLabel"] in executors
    assert platform is not None
    assert set(platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]) <= set(executors)
    # folding is idempotent
    before = json.dumps(spec, sort_keys=True)
    fold_duplicates(spec, platform)
    assert json.dumps(spec, sort_keys=True) == before


def _defaults(spec: dict) -> dict[str, str]:
    return {k: v.get("defaultValue", "") for k, v in spec["root"]["inputDefinitions"]["parameters"].items()}


def test_a_step_settings_change_only_when_what_it_reads_changes(tmp_path):
    _, base, _ = compiled(tmp_path, "iterations=2")
    _, samples, _ = compiled(tmp_path, "iterations=2", "evaluation.report_samples=7")
    _, image, _ = compiled(tmp_path, "iterations=2", "cluster.images.tag=9.9.9")
    a, b, c = _defaults(base), _defaults(samples), _defaults(image)
    changed = {k for k in a if a[k] != b[k]}
    assert changed == {"evaluate_settings", "report_settings"}  # the report names the whole configuration
    assert a["generate_settings"] == c["generate_settings"] and a["train_settings"] == c["train_settings"]


def test_generation_and_rationalization_of_a_shard_are_one_task(tmp_path):
    _, spec, _ = compiled(tmp_path, "iterations=2")
    loop = next(c for name, c in spec["components"].items() if name.startswith("comp-for-loop"))
    assert [t["taskInfo"]["name"] for t in loop["dag"]["tasks"].values()] == ["generate and rationalize"]


def test_compile_refuses_a_run_too_long_for_one_workflow_and_names_the_largest_that_fits(tmp_path, monkeypatch):
    from pipelines import workflow_size
    from pipelines.package import compile_checked, measure

    config = load_config(GPU_EXAMPLE, ["iterations=3"])
    sizes = [measure(config.model_copy(update={"iterations": n}), tmp_path / f"m{n}.yaml").workflow_bytes
             for n in (1, 2, 3)]
    assert sizes[0] < sizes[1] < sizes[2]
    monkeypatch.setattr(workflow_size, "ARGO_OBJECT_LIMIT", (sizes[1] + sizes[2]) // 2)
    out = tmp_path / "star.yaml"
    with pytest.raises(StarError) as e:
        compile_checked(config, out)
    assert "at most 2 iterations fit" in str(e.value) and "set iterations to 2" in str(e.value)
    assert "--from" in str(e.value)
    assert not out.exists()
    report = compile_checked(config.model_copy(update={"iterations": 2}), out)
    assert out.exists() and report.workflow_bytes <= report.limit_bytes and report.tasks > 0
    assert "2 iterations: package" in report.describe()


def test_compile_says_so_when_not_even_one_iteration_fits(tmp_path, monkeypatch):
    from pipelines import workflow_size
    from pipelines.package import compile_checked

    monkeypatch.setattr(workflow_size, "ARGO_OBJECT_LIMIT", 1024)
    with pytest.raises(StarError, match="Even one iteration.*lower num_shards"):
        compile_checked(load_config(GPU_EXAMPLE, ["iterations=2"]), tmp_path / "star.yaml")
