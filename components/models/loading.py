"""Loading the model of an iteration: the base model, a LoRA adapter on it, or a full checkpoint."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from components.core.errors import StarError
from components.storage import cached_download, is_url

if TYPE_CHECKING:  # transformers is imported where a model is loaded: steps that only read the config stay light
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

MODEL_REFERENCE = "star_model.json"  # in a base-model artifact that points at weights elsewhere


def models_cache() -> Path:
    """Where models built or downloaded on this machine are kept (`STAR_CACHE` overrides ~/.cache/star)."""
    return Path(os.environ.get("STAR_CACHE", Path.home() / ".cache" / "star")) / "models"


def model_source(model_dir: str | Path) -> str:
    """A base-model artifact holds the weights, or a `star_model.json` naming a model ID, a path, or a folder in
    object storage (s3://, gs://: downloaded once, verified against its manifest, into the models cache)."""
    ref = Path(model_dir) / MODEL_REFERENCE
    if not ref.exists():
        return str(model_dir)
    source = str(json.loads(ref.read_text())["source"])
    if is_url(source):
        return str(cached_download(source, models_cache() / "remote"))
    return source


def is_adapter(model_dir: str | Path) -> bool:
    return (Path(model_dir) / "adapter_config.json").exists()


def load_pretrained(source: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source)
    except (OSError, ValueError) as e:
        raise StarError(f"Cannot load a model from {source!r} ({e}); check model.base in the config.") from e
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def load_model(
    base_dir: str | Path, model_dir: str | Path, *, trainable: bool = False
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """An iteration's model. `model_dir` is the base-model artifact itself (iteration 0), a LoRA adapter trained
    on the base, or a full fine-tuned model."""
    if is_adapter(model_dir):
        from peft import PeftModel

        model, tok = load_pretrained(model_source(base_dir))
        model = PeftModel.from_pretrained(model, str(model_dir), is_trainable=trainable)
    else:
        model, tok = load_pretrained(model_source(model_dir))
    if not trainable:
        model.eval()
    return model, tok
