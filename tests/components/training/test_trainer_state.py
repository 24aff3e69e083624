"""A train step told to stop (SIGTERM: a preempted pod, a stopped run) saves a checkpoint and fails; run
again with the same inputs, it continues from that checkpoint and ends with the weights and loss of a run
that was never stopped."""

import os
import signal
from pathlib import Path

import pytest
import torch

from components.core.rows import TrainExample
from components.settings.steps import TrainSettings
from components.storage import MANIFEST
from components.train import checkpoint_plan, train
from components.training.fit import Preempted
from components.training.trainer_state import CheckpointCallback, complete_steps
from pipelines.config import RunConfig
from tests.conftest import write_finetune_dir
from tests.paths import REPO


def _finetune_dir(tmp: Path) -> Path:
    rows = [
        TrainExample(id=str(i), source="generation", prompt=f"Input:\n{i} + 1{'0' * (i % 3)}\nTarget:\n",
                     completion=str(i + 1) * (1 + i % 2))
        for i in range(8)
    ]
    return write_finetune_dir(tmp / "finetune", rows)


def _config(method: str, checkpoints: str | None, every: int = 3) -> TrainSettings:
    return RunConfig.model_validate({
        "task": {"name": "arithmetic"},
        "training": {"method": method, "learning_rate": 1e-2, "batch_size": 4, "checkpoint_every": every,
                     "checkpoints": checkpoints, "schedule": {"kind": "linear", "start_steps": 10, "add_steps": 0}},
    }).train_settings()


def _weights(path: Path, base: Path) -> dict[str, torch.Tensor]:
    from components.models.loading import load_model

    model, _ = load_model(base, path)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _sigterm_at(step: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deliver a real SIGTERM to this process once training reaches `step`."""
    original = CheckpointCallback.on_step_end
    sent = []

    def on_step_end(self, args, state, control, **kw):  # type: ignore[no-untyped-def]
        if state.global_step == step and not sent:
            sent.append(step)
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, args, state, control, **kw)

    monkeypatch.setattr(CheckpointCallback, "on_step_end", on_step_end)


@pytest.mark.parametrize("method", ["lora", "full"])
def test_sigterm_saves_a_checkpoint_and_the_retry_ends_where_an_unstopped_run_ends(
    method: str, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _finetune_dir(tmp_path)
    base = str(tiny_model_dir)
    whole = train(_config(method, str(tmp_path / "ck-whole")), 1, str(data), base, base, str(tmp_path / "whole"))
    assert whole.train_steps == 10

    stopped_config = _config(method, str(tmp_path / "ck"))
    plan = checkpoint_plan(stopped_config, 1, str(data))
    assert plan is not None
    with monkeypatch.context() as m:
        _sigterm_at(5, m)
        with pytest.raises(Preempted, match="stopped at step 5 of 10 on SIGTERM"):
            train(stopped_config, 1, str(data), base, base, str(tmp_path / "out"))
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is put back
    assert complete_steps(plan) == [5]  # the periodic one at step 3 was replaced by the one at the stop
    assert (Path(plan.url) / "checkpoint-5" / MANIFEST).exists()
    assert not (tmp_path / "out" / "adapter_config.json").exists()  # no half-trained model was published

    resumed = train(stopped_config, 1, str(data), base, base, str(tmp_path / "out"))
    assert resumed.train_steps == 10
    assert resumed.train_loss == pytest.approx(whole.train_loss, abs=1e-6)
    a, b = _weights(tmp_path / "whole", tiny_model_dir), _weights(tmp_path / "out", tiny_model_dir)
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-6


def test_checkpoints_are_per_inputs_and_off_without_a_location(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = _finetune_dir(tmp_path)
    assert checkpoint_plan(_config("lora", None), 1, str(data)) is None
    a = checkpoint_plan(_config("lora", str(tmp_path)), 1, str(data))
    b = checkpoint_plan(_config("lora", str(tmp_path)), 2, str(data))
    c = checkpoint_plan(_config("full", str(tmp_path)), 1, str(data))
    assert a is not None and b is not None and c is not None
    assert len({a.url, b.url, c.url}) == 3 and a == checkpoint_plan(_config("lora", str(tmp_path)), 1, str(data))


def test_sigterm_ends_a_training_that_has_nowhere_to_checkpoint(tiny_model_dir: Path, tmp_path: Path) -> None:
    # without a checkpoint plan (benchmarks, `make base-model`), SIGTERM keeps its default meaning: `kill` ends
    # the process instead of being swallowed by the checkpoint-and-stop handler
    script = f"""
import os, signal
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
import components.training.fit as f
from components.core.rows import TrainExample
from components.settings.steps import TrainSettings

class Kill(TrainerCallback):
    def on_step_end(self, args, state, control, **kw):
        if state.global_step == 2:
            os.kill(os.getpid(), signal.SIGTERM)

class T(f._Trainer):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.add_callback(Kill())

f._Trainer = T
tok = AutoTokenizer.from_pretrained({str(tiny_model_dir)!r})
model = AutoModelForCausalLM.from_pretrained({str(tiny_model_dir)!r})
rows = [TrainExample(id=str(i), source="generation", prompt="1 + 1 =", completion=" 2") for i in range(4)]
f.fit(model, tok, rows, max_steps=50, output_dir={str(tmp_path / "out")!r}, learning_rate=1e-3, batch_size=2)
print("finished all steps")
"""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=REPO)
    assert done.returncode == -signal.SIGTERM, done.stderr[-2000:]
    assert "finished all steps" not in done.stdout
