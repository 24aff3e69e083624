import subprocess
import sys
from pathlib import Path

import pytest

from components.core.errors import StarError
from components.training.config import ScheduleConfig
from pipelines.config import load_config
from tests.paths import REPO


def test_schedules_follow_the_paper_formulas() -> None:
    exp = ScheduleConfig(kind="exponential", start_steps=40, grow=1.2)
    assert [exp.steps(n, 0, 8) for n in (1, 2, 3, 4)] == [40, 48, 57, 69]  # 40 * 1.2^(n-1), +20% per iteration
    lin = ScheduleConfig(kind="linear", start_steps=40, add_steps=20)
    assert [lin.steps(n, 0, 8) for n in (1, 2, 3)] == [40, 60, 80]
    ep = ScheduleConfig(kind="epochs", base_epochs=1.0, add_epochs=0.5)
    # ceil(kept * (base_epochs + add_epochs * (n-1)) / examples_per_step)
    assert [ep.steps(n, 100, 8) for n in (1, 2, 3)] == [13, 19, 25]
    with pytest.raises(ValueError):
        exp.steps(0, 0, 8)


def test_overrides_and_defaults() -> None:
    cfg = load_config(None, ["iterations=5", "training.schedule.kind=linear", "rationalization.p_rationalization=0"])
    assert cfg.iterations == 5
    assert cfg.training.schedule.kind == "linear"
    assert cfg.rationalization.p_rationalization == 0
    assert cfg.training.continue_from_previous is False  # the paper: every iteration restarts from the base


@pytest.mark.parametrize(
    "yaml_text, needle",
    [
        ("iterations: 0\n", "iterations"),
        ("training: {learning_rat: 0.1}\n", "training.learning_rat: is not a known setting"),
        ("rationalization: {p_rationalization: 1.5}\n", "rationalization.p_rationalization"),
        ("training: {schedule: {kind: cosine}}\n", "training.schedule.kind"),
        ("- a list\n", "mapping"),
        ("seed: 4294967296\n", "seed"),  # numpy, which training seeds, takes seeds below 2**32 only
        ("seed: -1\n", "seed"),
    ],
)
def test_bad_config_values_name_the_key(tmp_path: Path, yaml_text: str, needle: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(StarError, match=needle):
        load_config(path)


def _star(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], capture_output=True, text=True, timeout=120)


def test_cli_bad_config_is_one_clear_sentence_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("generation: {temperature: -1}\n")
    result = _star("run", str(path), "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    assert "generation.temperature" in result.stderr
    assert not (tmp_path / "run").exists()  # nothing started


def test_cli_missing_config_file(tmp_path: Path) -> None:
    result = _star("run", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "nope.yaml does not exist" in " ".join(result.stderr.split())


def test_missing_data_file_is_named_before_anything_runs(tmp_path: Path) -> None:
    cfg = tmp_path / "gsm8k.yaml"
    cfg.write_text(f"task: {{name: gsm8k, path: {tmp_path / 'nope.jsonl'}}}\nmodel: {{base: builtin:tiny-untrained}}\n")
    result = _star("run", str(cfg), "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "task.path" in result.stderr and "nope.jsonl does not exist" in " ".join(result.stderr.split())
    assert not (tmp_path / "run").exists()


def test_a_step_error_reaches_the_user_as_its_own_sentence() -> None:
    from pipelines.local_run import step_error

    log = ("    raise StarError(...)\n"
           "    components.core.errors.StarError: data.jsonl, line 3: field 'answer' missing.\n")
    assert step_error(log) == "data.jsonl, line 3: field 'answer' missing."
    assert step_error("all fine") is None


def test_steps_that_load_no_model_do_not_import_torch(tmp_path: Path) -> None:
    # every step reads its settings in a fresh process; the steps that load no model (the data, the fine-tuning
    # set, the control's seed set, the early-stop gate, the report, publishing and starting from a published
    # run) must not pay for importing torch and transformers, which cost several seconds a step in a local run
    from pipelines.config import RunConfig

    settings = RunConfig().seed_set_settings().model_dump_json()
    code = f"""
import sys
import components.prepare_data, components.build_finetune_set, components.gate, components.report
import components.publish_iteration, components.start_from_run
from components.seed_control import seed_set
from components.settings.steps import SeedSetSettings
seed_set(SeedSetSettings.load({settings!r}), {str(tmp_path)!r})
print(sorted(m for m in ("torch", "transformers") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=REPO)
    assert out.stdout.strip().splitlines()[-1] == "[]"
