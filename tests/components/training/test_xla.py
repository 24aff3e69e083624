"""The parts of the XLA training path that need no torch_xla: when it is taken, the fixed shapes it trains on
(padding buckets, full steps) and the compilation cache kept in a bucket between train steps. The training
itself runs in `.venv-xla` (tests/engines/xla)."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.storage import list_objects
from components.training import xla
from components.training.config import TrainingConfig
from components.training.fit import EpochSeededStepSampler


def test_the_xla_path_needs_torch_xla_and_a_pjrt_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PJRT_DEVICE", "TPU")
    assert not xla.on_xla()  # this venv has no torch_xla: the CPU/GPU path trains
    monkeypatch.delenv("PJRT_DEVICE")
    assert not xla.on_xla()


def test_batches_pad_to_a_few_fixed_lengths() -> None:
    assert xla.padding_buckets(1024) == [64, 128, 256, 512, 1024]
    assert xla.padding_buckets(300) == [64, 128, 256, 300]
    assert xla.padding_buckets(40) == [40]
    buckets = xla.padding_buckets(2048)
    widths = {xla.bucket_for(n, buckets) for n in range(1, 2049)}
    assert widths == set(buckets)  # 2048 row lengths, 6 shapes to compile
    assert xla.bucket_for(65, buckets) == 128 and xla.bucket_for(64, buckets) == 64
    with pytest.raises(ValueError, match="longer than the longest"):
        xla.bucket_for(2049, buckets)


def test_every_step_is_full_so_the_batch_shape_never_changes() -> None:
    assert xla.fill_steps([4, 2, 0, 3, 1], 4) == [4, 2, 0, 3, 1, 4, 2, 0]
    assert xla.fill_steps([1, 0], 8) == [1, 0, 1, 0, 1, 0, 1, 0]
    assert xla.fill_steps([0, 1, 2, 3], 2) == [0, 1, 2, 3]

    lengths = [5, 9, 3, 7, 2, 8, 1]
    sampler = EpochSeededStepSampler(3, lengths, seed=0, full_steps=True)
    order = list(sampler)
    assert len(order) == len(sampler) == 9 and set(order) == set(range(7))
    plain = list(EpochSeededStepSampler(3, lengths, seed=0))
    assert order[:6] == plain[:6]  # the same draw: only the short last step is filled up


def test_the_compile_cache_lives_beside_the_checkpoints_unless_set() -> None:
    assert TrainingConfig().compile_cache_location() is None
    assert TrainingConfig(checkpoints="s3://b/ckpt").compile_cache_location() == "s3://b/ckpt/xla-compile-cache"
    assert TrainingConfig(checkpoints="s3://b/ckpt", compile_cache="gs://c/x").compile_cache_location() == "gs://c/x"


def test_compiled_programs_travel_through_a_bucket_between_train_steps(s3_bucket: str) -> None:
    url = f"s3://{s3_bucket}/run/xla-compile-cache"
    with xla.compile_cache(url) as first:
        assert first is not None and list(Path(first).iterdir()) == []
        (Path(first) / "1234").write_bytes(b"program one")
        (Path(first) / "sub").mkdir()
        (Path(first) / "sub" / "5678").write_bytes(b"program two")
    assert list_objects(url) == {"1234": 11, "sub/5678": 11}

    # the next train step (another pod) starts with both, and only what it adds goes back
    with xla.compile_cache(url) as second:
        assert second is not None and second != first
        assert (Path(second) / "sub" / "5678").read_bytes() == b"program two"
        (Path(second) / "9999").write_bytes(b"program three")
    assert set(list_objects(url)) == {"1234", "sub/5678", "9999"}


def test_a_local_compile_cache_is_used_in_place(tmp_path: Path) -> None:
    with xla.compile_cache(str(tmp_path / "cache")) as folder:
        assert folder == str(tmp_path / "cache")
    with xla.compile_cache(None) as folder:
        assert folder is None
