"""The model an iteration's training starts from: the base model with a fresh LoRA adapter (or all its weights
trainable), or, with `continue_from_previous`, the previous iteration's model."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from components.core.errors import StarError
from components.core.seeds import training_seed

if TYPE_CHECKING:
    from components.training.config import TrainingConfig

StartingPoint = Literal["base", "previous"]


def trained_from(continue_from_previous: bool, base_dir: str, previous_dir: str) -> StartingPoint:
    """"previous" when this iteration starts from the previous iteration's weights, else "base" (the paper's
    choice, and always in iteration 1, whose previous model is the base model itself)."""
    same = Path(previous_dir).resolve() == Path(base_dir).resolve()
    return "previous" if continue_from_previous and not same else "base"


def starting_model(training: TrainingConfig, seed: int, iteration: int, base_dir: str, previous_dir: str
                   ) -> tuple[Any, Any, StartingPoint]:
    """(model, tokenizer, where it started), the model made trainable: base + a fresh LoRA adapter (initialized
    from the run's seed and the iteration) or the previous iteration's weights."""
    from peft import LoraConfig, get_peft_model
    from transformers import set_seed

    from components.models.loading import is_adapter, load_model

    t = training
    start = trained_from(t.continue_from_previous, base_dir, previous_dir)
    if start == "previous":
        if t.method == "lora" and not is_adapter(previous_dir):
            raise StarError(f"training.continue_from_previous with LoRA needs an adapter in {previous_dir}; the "
                            "previous iteration trained a full model (set training.method to full).")
        model, tok = load_model(base_dir, previous_dir, trainable=True)
    else:
        model, tok = load_model(base_dir, base_dir, trainable=True)
        if t.method == "lora":
            set_seed(training_seed(seed, iteration))
            lora = LoraConfig(
                r=t.lora_r, lora_alpha=t.lora_alpha, lora_dropout=t.lora_dropout,
                target_modules=t.lora_target_modules, task_type="CAUSAL_LM",
            )
            model = get_peft_model(model, lora)
    model.train()
    return model, tok, start
