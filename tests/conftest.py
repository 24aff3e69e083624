"""Shared fixtures: a tiny model built locally (no downloads) and small run configurations."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from components.tiny_model import TinyModelConfig, save_untrained  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

SMALL_BUILTIN = {
    "stages": [{"seed_examples": 60, "seed": 0, "steps": 20}],
    "tiny": {"hidden_size": 32, "intermediate_size": 64, "num_layers": 1, "num_heads": 2},
}


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny Llama with the character tokenizer, saved with save_pretrained."""
    path = tmp_path_factory.mktemp("tiny") / "model"
    return save_untrained(path, TinyModelConfig(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2))


@pytest.fixture(scope="session")
def star_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("star-cache")


def small_config(cache: Path, **overrides: object) -> dict:
    cfg: dict = {
        "name": "test",
        "iterations": 2,
        "task": {"name": "arithmetic", "min_digits": 1, "max_digits": 2, "train_size": 16, "eval_size": 8},
        "model": {"cache_dir": str(cache), "builtin": SMALL_BUILTIN},
        "generation": {"batch_size": 8, "max_new_tokens": 48},
        "training": {"batch_size": 4, "schedule": {"kind": "linear", "start_steps": 2, "add_steps": 1}},
    }
    for key, value in overrides.items():
        target = cfg
        *head, last = key.split(".")
        for part in head:
            target = target.setdefault(part, {})
        target[last] = value
    return cfg


def write_finetune_dir(folder: Path, rows: list) -> Path:
    """A fine-tuning-set artifact (rows and their counts) as the train step reads it."""
    from components.artifacts import FINETUNE, SET_STATS
    from components.rows import SetStats, write_rows

    write_rows(folder / FINETUNE, rows)
    stats = SetStats(train_questions=len(rows), solved_by_generation=len(rows), solved_by_rationalization=0,
                     train_examples=len(rows), kept_generation=len(rows), kept_rationalization=0)
    (folder / SET_STATS).write_text(stats.model_dump_json())
    return folder


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 protocol server (moto's server mode) on loopback, for the whole session."""
    from tests.fakes.s3_server import moto_server

    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the loopback server; the environment holds dummy credentials (as a pod's would hold
    real ones) and points boto3 at the server."""
    import uuid

    import boto3

    from tests.fakes.s3_server import AWS_ENV_TO_CLEAR, s3_env

    for name in AWS_ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    for name, value in s3_env(s3_endpoint).items():
        monkeypatch.setenv(name, value)
    bucket = f"star-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    return bucket
