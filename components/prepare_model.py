"""Step: prepare the base model artifact.

A model ID or path becomes a small reference (`star_model.json`): big weights stay where they are. The demo's
built-in tiny model is built once (pre-trained on a seed set), cached, and copied into the artifact.
"""

import json
import shutil
from pathlib import Path

from kfp.dsl import Model, Output

from components.demo.builtin import BUILTIN_TINY, BUILTIN_UNTRAINED, builtin_base_model
from components.demo.tiny_model import save_untrained
from components.models.loading import MODEL_REFERENCE
from components.settings.steps import PrepareModelSettings


def prepare_model(settings: PrepareModelSettings, out_dir: str) -> str:
    model = settings.model
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if model.base == BUILTIN_TINY:
        src = builtin_base_model(model.builtin, model.cache_dir)
        shutil.copytree(src, out, dirs_exist_ok=True)
        return f"{BUILTIN_TINY} ({src})"
    if model.base == BUILTIN_UNTRAINED:
        save_untrained(out, model.builtin.tiny)
        return BUILTIN_UNTRAINED
    (out / MODEL_REFERENCE).write_text(json.dumps({"source": model.base}))
    return model.base


def prepare_model_op(settings: str, base_model: Output[Model]):
    from components.prepare_model import prepare_model
    from components.settings.steps import PrepareModelSettings

    base_model.metadata["source"] = prepare_model(PrepareModelSettings.load(settings), base_model.path)
