"""STaR beside its baselines (the paper's Figure 4 in miniature): the ablation without rationalization and a
control that trains the base model on its own seed set for as many steps as STaR trains."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components.core.artifact_files import FINETUNE
from components.core.errors import StarError
from components.core.rows import TrainExample, read_rows
from components.demo.seed_pretraining import all_seed_sums
from components.seed_control import seed_set
from components.tasks.arithmetic import ArithmeticTask
from pipelines.config import RunConfig, load_config
from tests.conftest import small_config
from tests.paths import REPO

ROOT = REPO


def test_the_control_replays_the_seed_sums_as_the_base_model_saw_them(tmp_path: Path) -> None:
    config = RunConfig.model_validate({"evaluation": {"baselines": True}})
    stats = seed_set(config.seed_set_settings(), str(tmp_path))
    rows = read_rows(tmp_path / FINETUNE, TrainExample)
    recipe = config.model.builtin
    assert stats.train_examples == len(rows) == sum(stage.seed_examples for stage in recipe.stages)
    # the control's rows are seed sums, not rationales the model generated
    assert {r.source for r in rows} == {"seed"} and stats.kept_generation == stats.kept_rationalization == 0
    task = ArithmeticTask()
    for row in rows[:200]:
        assert row.prompt.startswith("Input:\n")
        a, b = (int(x.replace(" ", "")) for x in row.prompt.split("\n")[1].split(" + "))
        assert task.extract_answer(row.completion, direct=False) == str(a + b)
    assert {len(r.prompt.split("\n")[1].split(" + ")[0].replace(" ", "")) for r in rows} == {1, 2, 3, 4, 5}
    # exactly the sums the base model was pre-trained on (every stage), not fresh ones
    sums = all_seed_sums(recipe)
    assert len(sums) == len(rows)
    for (ex, hint), row in zip(sums, rows, strict=True):
        assert row.prompt == task.question(ex, hint=hint, direct=False)
        assert row.completion == task.target(ex, direct=False)
    hinted = sum("\nHint: " in r.prompt for r in rows)
    assert hinted == sum(hint for _, hint in sums) and 0 < hinted < len(rows)


@pytest.mark.parametrize("setting, message", [
    ("model.base=some/model", "needs model.base 'builtin:tiny-arithmetic'"),
    ("training.schedule.kind=epochs", "needs a step schedule"),
    ("evaluation.patience=2", "set evaluation.patience to null"),
    ("publish=/tmp/star-published", "set start.iteration to 1 and publish to null"),
])
def test_baselines_refuse_what_would_make_the_comparison_unfair(setting: str, message: str) -> None:
    with pytest.raises(StarError, match=message):
        load_config(None, ["evaluation.baselines=true", setting, "task.name=arithmetic"])


def test_a_run_with_baselines_reports_three_curves(tmp_path: Path, star_cache: Path) -> None:
    cfg = small_config(star_cache, iterations=1)
    cfg["evaluation"] = {"baselines": True}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", str(tmp_path / "run.yaml"), "--out",
                             str(out)], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    comparison = json.loads((out / "comparison.json").read_text())
    assert list(comparison) == ["star", "no_rationalization", "seed_control"]
    star, ablation, control = comparison["star"], comparison["no_rationalization"], comparison["seed_control"]
    assert [r["iteration"] for r in star] == [r["iteration"] for r in control] == [0, 1]
    assert star[0] == ablation[0] == control[0]  # one base model evaluation shared by the three arms
    assert ablation[1]["solved_by_rationalization"] == 0
    assert control[1]["train_steps"] == 2  # the schedule's steps for iteration 1, as STaR would train
    assert star[1]["train_steps"] in (0, 2) and control[1]["train_examples"] == 60
    assert json.loads((out / "summary.json").read_text()) == star
    page = (out / "report.html").read_text()
    assert "STaR against its baselines" in page and page.count("<polyline") >= 4
    for label in ("STaR without rationalization", "control: seed set, same steps"):
        assert label in page
    again = subprocess.run([sys.executable, "-m", "pipelines.cli", "report", str(out)], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "STaR against its baselines" in (out / "report.html").read_text()
