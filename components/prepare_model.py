"""Step: prepare the base model artifact.

A model ID or path becomes a small reference (`star_model.json`): big weights stay where they are. The demo's
built-in tiny model is built once (pre-trained on a seed set), cached, and copied into the artifact.
"""

import hashlib
import json
import shutil
from pathlib import Path

from kfp.dsl import Model, Output

from components.base_model import RECIPE, SeedPretraining, build_base_model
from components.policy import MODEL_REFERENCE, models_cache
from components.tiny_model import save_untrained

BUILTIN_TINY = "builtin:tiny-arithmetic"  # the demo's base model: tiny, pre-trained on scratchpad sums
BUILTIN_UNTRAINED = "builtin:tiny-untrained"  # a random tiny model: CPU smoke runs of any task
ASSETS = Path(__file__).parent / "assets" / "tiny-arithmetic"


def recipe_key(recipe: SeedPretraining) -> str:
    return hashlib.sha256(recipe.model_dump_json().encode()).hexdigest()[:16]


def builtin_base_model(recipe: SeedPretraining, cache_dir: str | Path | None = None) -> Path:
    """The tiny base model for `recipe`: the checkpoint shipped with the package when it was built from the
    same recipe, else a cached build, else built now (and cached)."""
    if (ASSETS / RECIPE).exists() and json.loads((ASSETS / RECIPE).read_text()) == recipe.model_dump(mode="json"):
        return ASSETS
    cache = Path(cache_dir) if cache_dir else models_cache()
    target = cache / f"tiny-arithmetic-{recipe_key(recipe)}"
    if not (target / RECIPE).exists():
        print(f"building the tiny base model (cached at {target})")
        build_base_model(target, recipe)
    return target


def prepare_model(config_json: str, out_dir: str) -> str:
    from pipelines.config import RunConfig

    config = RunConfig.from_json(config_json)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if config.model.base == BUILTIN_TINY:
        src = builtin_base_model(config.model.builtin, config.model.cache_dir)
        shutil.copytree(src, out, dirs_exist_ok=True)
        return f"{BUILTIN_TINY} ({src})"
    if config.model.base == BUILTIN_UNTRAINED:
        save_untrained(out, config.model.builtin.tiny)
        return BUILTIN_UNTRAINED
    (out / MODEL_REFERENCE).write_text(json.dumps({"source": config.model.base}))
    return config.model.base


def prepare_model_op(config_json: str, base_model: Output[Model]):
    from components.prepare_model import prepare_model

    base_model.metadata["source"] = prepare_model(config_json, base_model.path)
