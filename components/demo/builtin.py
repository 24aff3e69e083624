"""The built-in base models a run configuration can name instead of a model ID or folder."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from components.demo.seed_pretraining import RECIPE, SeedPretraining, build_base_model
from components.models.loading import models_cache

BUILTIN_TINY = "builtin:tiny-arithmetic"  # the demo's base model: tiny, pre-trained on scratchpad sums
BUILTIN_UNTRAINED = "builtin:tiny-untrained"  # a random tiny model: CPU smoke runs of any task
ASSETS = Path(__file__).parent / "assets" / "tiny-arithmetic"  # the shipped build of the default recipe


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
