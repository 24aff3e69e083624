"""Distributed fine-tuning: the DeepSpeed config generated from the run config, the launcher's commands, the
worker's staging, and (with DeepSpeed installed) real training with 2 CPU ranks through the same launcher the GPU
path uses, whose result loads and generates."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import fsspec
import pytest
import torch
from pydantic import ValidationError

from components.core.rows import TrainExample, write_rows
from components.generation.hf import HFGenerator
from components.generation.sampling import SamplingConfig
from components.models.loading import load_model
from components.training.deepspeed_config import DistributedConfig, deepspeed_config
from components.training.job_manifests import job_worker_command
from components.training.launcher import (
    launch,
    resolve_nproc,
    worker_command,
    worker_env,
)
from components.training.worker import WorkerSpec, stage_in, upload
from pipelines.config import RunConfig

HAS_DEEPSPEED = importlib.util.find_spec("deepspeed") is not None
NEEDS_DEEPSPEED = pytest.mark.skipif(
    not HAS_DEEPSPEED,
    reason="DeepSpeed is not installed: pip install deepspeed==0.19.8 (with torch==2.13.0) to run CPU ZeRO training",
)


def test_zero2_config_leaves_to_the_trainer_what_it_knows_better() -> None:
    cfg = DistributedConfig(launcher="torchrun", zero_stage=2, bf16=True)
    ds = deepspeed_config(cfg, batch_size=4, grad_accum=8, learning_rate=2e-5, weight_decay=0.01)
    assert ds["train_micro_batch_size_per_gpu"] == 4 and ds["gradient_accumulation_steps"] == 8
    # depends on the world size / the model: filled in by transformers' Trainer
    assert ds["train_batch_size"] == "auto" and ds["gradient_clipping"] == "auto"
    assert ds["zero_optimization"] == {"stage": 2, "overlap_comm": True, "contiguous_gradients": True,
                                       "reduce_bucket_size": "auto"}
    assert ds["bf16"] == {"enabled": True} and ds["fp16"] == {"enabled": False}
    assert "optimizer" not in ds and "scheduler" not in ds  # the Trainer's AdamW and LR schedule
    json.dumps(ds)  # plain JSON: it travels in the worker spec


def test_zero3_with_offload() -> None:
    cfg = DistributedConfig(launcher="deepspeed", zero_stage=3, bf16=False, offload_optimizer=True, offload_param=True)
    ds = deepspeed_config(cfg, batch_size=1, grad_accum=16, learning_rate=1e-4, weight_decay=0.0)
    zero = ds["zero_optimization"]
    assert zero["stage"] == 3 and zero["stage3_gather_16bit_weights_on_model_save"] is True
    assert zero["stage3_prefetch_bucket_size"] == "auto" and zero["stage3_param_persistence_threshold"] == "auto"
    assert zero["offload_optimizer"] == {"device": "cpu", "pin_memory": True}
    assert zero["offload_param"] == {"device": "cpu", "pin_memory": True}
    # offloaded optimizer states want DeepSpeed's CPU Adam; its hyper-parameters agree with the Trainer's
    assert ds["optimizer"] == {"type": "AdamW", "params": {"lr": 1e-4, "betas": "auto", "eps": "auto",
                                                             "weight_decay": 0.0}}
    assert ds["bf16"] == {"enabled": False}


def test_distributed_config_rejects_impossible_combinations() -> None:
    with pytest.raises(ValidationError, match="offload_param needs zero_stage 3"):
        DistributedConfig(launcher="torchrun", zero_stage=2, offload_param=True)
    with pytest.raises(ValidationError, match="needs a launcher"):
        DistributedConfig(nodes=2, staging_uri="s3://b/p")
    with pytest.raises(ValidationError, match="staging_uri"):
        DistributedConfig(launcher="torchrun", nodes=2)
    with pytest.raises(ValidationError):
        DistributedConfig(zero_stage=1)  # type: ignore[arg-type]
    assert not DistributedConfig().uses_deepspeed and DistributedConfig(launcher="torchrun").uses_deepspeed


def test_a_multi_node_job_checkpoints_where_its_pods_reach() -> None:
    from components.training.config import TrainingConfig

    nodes = {"launcher": "torchrun", "nodes": 4, "staging_uri": "s3://bucket/jobs"}
    assert TrainingConfig(distributed=nodes).checkpoint_location() == "s3://bucket/jobs/checkpoints"
    assert TrainingConfig(distributed=nodes, checkpoints="gs://ck").checkpoint_location() == "gs://ck"
    assert TrainingConfig().checkpoint_location() is None  # one pod, nowhere configured: none
    with pytest.raises(ValidationError, match="the 4 nodes of the training job cannot reach it"):
        TrainingConfig(distributed=nodes, checkpoints="/mnt/checkpoints")


def test_launcher_commands() -> None:
    cmd = worker_command(DistributedConfig(launcher="torchrun"), "/w/spec.json", 8)
    assert Path(cmd[0]).name in ("torchrun", sys.executable.split("/")[-1])
    assert cmd[-8:] == ["--nnodes", "1", "--nproc_per_node", "8", "-m", "components.training.worker",
                        "--spec", "/w/spec.json"] and "--standalone" in cmd
    cmd = worker_command(DistributedConfig(launcher="deepspeed"), "/w/spec.json", 4, master_port=29511)
    assert cmd[-9:] == ["--num_gpus", "4", "--master_port", "29511", "--no_local_rank", "--module",
                        "components.training.worker", "--spec", "/w/spec.json"]
    with pytest.raises(ValueError):
        worker_command(DistributedConfig(), "/w/spec.json", 1)
    assert job_worker_command(4, 8, "s3://b/spec.json") == [
        "torchrun", "--nnodes", "4", "--nproc_per_node", "8", "-m", "components.training.worker",
        "--spec", "s3://b/spec.json"]


def test_processes_per_node(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_nproc(DistributedConfig(launcher="torchrun"), gpus=8) == 8
    assert resolve_nproc(DistributedConfig(launcher="torchrun"), gpus=0) == 1  # CPU: one rank
    assert resolve_nproc(DistributedConfig(launcher="torchrun", nproc_per_node=2), gpus=8) == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")
    assert resolve_nproc(DistributedConfig(launcher="torchrun")) == 3
    assert "DS_ACCELERATOR" not in worker_env({})
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    env = worker_env({"PYTHONPATH": "/x"})
    assert env["DS_ACCELERATOR"] == "cpu" and env["PYTHONPATH"].endswith("/x")


def test_staging_downloads_once_per_node(tmp_path: Path) -> None:
    fs = fsspec.filesystem("memory")
    model = tmp_path / "adapter"
    model.mkdir()
    (model / "adapter_config.json").write_text('{"r": 8}')
    (model / "sub").mkdir()
    (model / "sub" / "w.bin").write_bytes(b"\x00\x01")
    upload(model, "memory://stage-test/prev")
    data = tmp_path / "rows.jsonl"
    data.write_text('{"a": 1}\n')
    upload(data, "memory://stage-test/rows.jsonl")

    root = tmp_path / "stage"
    local = Path(stage_in("memory://stage-test/prev", root))
    assert (local / "adapter_config.json").read_text() == '{"r": 8}' and (local / "sub" / "w.bin").read_bytes()
    fs.rm("/stage-test/prev", recursive=True)  # a second rank on the node finds the copy, downloads nothing
    assert Path(stage_in("memory://stage-test/prev", root)) == local
    rows = Path(stage_in("memory://stage-test/rows.jsonl", root))
    assert rows.is_file() and rows.read_text() == '{"a": 1}\n'
    assert stage_in(str(data), root) == str(data)  # local paths stay as they are


def _examples() -> list[TrainExample]:
    return [TrainExample(id=str(i), source="generation", prompt=f"Input:\n{i} + 1\nTarget:\n",
                         completion=f"<scratch>\n</scratch>\n{i + 1}") for i in range(12)]


@NEEDS_DEEPSPEED
@pytest.mark.parametrize(("launcher", "method", "stage"), [("torchrun", "lora", 2), ("deepspeed", "full", 3)])
def test_deepspeed_trains_on_two_cpu_ranks(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, launcher: str, method: str, stage: int
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # CPU ranks, DS_ACCELERATOR=cpu, gloo
    config = RunConfig.model_validate({
        "task": {"name": "arithmetic"},
        "training": {"method": method, "batch_size": 2, "learning_rate": 5e-3, "lora_r": 8},
    })
    t = config.training
    dist = DistributedConfig(launcher=launcher, nproc_per_node=2, zero_stage=stage, bf16=False)
    ds = deepspeed_config(dist, batch_size=t.batch_size, grad_accum=t.gradient_accumulation_steps,
                          learning_rate=t.learning_rate, weight_decay=t.weight_decay)
    write_rows(tmp_path / "finetune.jsonl", _examples())
    out = tmp_path / "model"
    spec = WorkerSpec(training=t, seed=config.seed, storage=config.storage, iteration=1,
                      examples=str(tmp_path / "finetune.jsonl"),
                      base_dir=str(tiny_model_dir), previous_dir=str(tiny_model_dir), out_dir=str(out),
                      result=str(tmp_path / "result.json"), max_steps=3, deepspeed=ds, label="ds-test")

    result = launch(dist, spec, tmp_path / "work")

    assert result.steps == 3 and result.mean_loss is not None and result.mean_loss == result.mean_loss
    assert result.world_size == 2 and result.backend == "gloo" and result.deepspeed is True

    # the result loads as the train step's output does, and generates
    model, tok = load_model(tiny_model_dir, out)
    base, _ = load_model(tiny_model_dir, tiny_model_dir)
    if method == "lora":
        assert (out / "adapter_config.json").exists()
        lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
        assert lora_b and any(float(p.abs().sum()) > 0 for p in lora_b)  # lora_B starts at zero: it trained
    else:
        assert (out / "tokenizer.json").exists()
        moved = sum(float((a - b).abs().sum()) for a, b in zip(model.state_dict().values(),
                                                                base.state_dict().values(), strict=True))
        assert moved > 0
    assert all(torch.isfinite(p).all() for p in model.parameters())
    generated = HFGenerator(model, tok, batch_size=4).generate(
        "", ["Input:\n3 + 1\nTarget:\n", "Input:\n5 + 1\nTarget:\n"], SamplingConfig(max_new_tokens=12), stop=["\n\n"]
    )
    assert len(generated) == 2 and all(len(g) == 1 and isinstance(g[0], str) for g in generated)


def _worker_pid(spec_path: Path, rank: int) -> int | None:
    """The process of the training worker of `rank` started for `spec_path` (torchrun's child), if it runs."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"components.training.worker" in cmdline and str(spec_path).encode() in b" ".join(cmdline) \
                and f"RANK={rank}".encode() in environ:
            return int(proc.name)
    return None


@NEEDS_DEEPSPEED
def test_a_sigterm_on_one_rank_checkpoints_every_rank_and_the_rerun_ends_where_an_unstopped_run_ends(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A preempted node of a multi-node job: SIGTERM reaches the processes of one node only. Every rank must save
    the same step (each its own ZeRO shard, into a folder of its own, as on separate nodes), the checkpoint must
    hold all their files, and the job run again must continue from it to the result of a run never stopped."""
    import signal
    import threading
    import time

    from components.core.errors import StarError
    from components.storage import MANIFEST, read_manifest
    from components.training.checkpoints import CheckpointPlan

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    config = RunConfig.model_validate({
        "task": {"name": "arithmetic"},
        "training": {"method": "lora", "batch_size": 2, "learning_rate": 5e-3, "lora_r": 8},
    })
    t = config.training
    dist = DistributedConfig(launcher="torchrun", nproc_per_node=2, zero_stage=2, bf16=False)
    ds = deepspeed_config(dist, batch_size=t.batch_size, grad_accum=t.gradient_accumulation_steps,
                          learning_rate=t.learning_rate, weight_decay=t.weight_decay)
    write_rows(tmp_path / "finetune.jsonl", _examples())

    def spec(name: str, plan: CheckpointPlan | None) -> WorkerSpec:
        return WorkerSpec(training=t, seed=config.seed, storage=config.storage, iteration=1,
                          examples=str(tmp_path / "finetune.jsonl"), base_dir=str(tiny_model_dir),
                          previous_dir=str(tiny_model_dir), out_dir=str(tmp_path / name),
                          result=str(tmp_path / f"{name}.json"), max_steps=40, deepspeed=ds, checkpoints=plan)

    whole = launch(dist, spec("whole", None), tmp_path / "work-whole")
    assert whole.steps == 40

    plan = CheckpointPlan(url=str(tmp_path / "checkpoints"), every=2)
    stopped = spec("stopped", plan)
    outcome: dict[str, object] = {}

    def first_run() -> None:
        try:
            outcome["result"] = launch(dist, stopped, tmp_path / "work-1")
        except StarError as e:
            outcome["error"] = e

    runner = threading.Thread(target=first_run)
    runner.start()
    spec_file = tmp_path / "work-1" / "worker_spec.json"
    deadline = time.monotonic() + 300
    while not (tmp_path / "checkpoints" / "checkpoint-2" / MANIFEST).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = _worker_pid(spec_file, 1)
    assert pid is not None, "rank 1 is not running"
    os.kill(pid, signal.SIGTERM)  # only rank 1's "node" is told to stop
    runner.join(timeout=300)
    assert "error" in outcome, "the job was not stopped"
    steps = sorted(int(p.name.split("-")[1]) for p in (tmp_path / "checkpoints").glob("checkpoint-*")
                   if (p / MANIFEST).exists())
    assert len(steps) == 1 and 2 <= steps[0] < 40, steps  # one complete checkpoint: the step both ranks stopped at
    manifest = read_manifest(str(tmp_path / "checkpoints" / f"checkpoint-{steps[0]}"))
    assert manifest is not None
    shards = {f for f in manifest.files if "optim_states" in f}
    assert len(shards) == 2 and any("rank_0" in f for f in shards) and any("rank_1" in f for f in shards)
    assert {"rng_state_0.pth", "rng_state_1.pth"} <= set(manifest.files)
    assert not (tmp_path / "stopped" / "adapter_config.json").exists()

    resumed = launch(dist, stopped, tmp_path / "work-2")
    assert resumed.steps == 40
    a, _ = load_model(tiny_model_dir, tmp_path / "whole")
    b, _ = load_model(tiny_model_dir, tmp_path / "stopped")
    sa, sb = a.state_dict(), b.state_dict()
    assert max(float((sa[k] - sb[k]).abs().max()) for k in sa) < 1e-6  # mid-epoch too: the same batches replayed
    assert resumed.mean_loss == pytest.approx(whole.mean_loss, rel=1e-6)
