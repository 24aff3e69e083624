"""Step: the fine-tuning set of the same-compute control. It trains the base model on its seed set, every sum it
was pre-trained on exactly as it saw it (no rationales of its own), for as many steps as STaR trains in the same
iteration, so a gain of STaR over the control is not just more training."""

from pathlib import Path

from kfp.dsl import Dataset, Output

from components.core.artifact_files import FINETUNE, SET_STATS
from components.core.rows import SetStats, write_rows
from components.settings.steps import SeedSetSettings


def seed_set(settings: SeedSetSettings, out_dir: str) -> SetStats:
    """The sums of the built-in base model's seed set (all its pre-training stages) as (question, scratchpad and
    answer) pairs: the same shape, and the same loss on rationale and answer tokens only, as the examples STaR
    keeps. A question shows the hint line where pre-training showed it: the control replays the data the base
    model already had, it does not turn the answers it was shown into new worked examples."""
    from components.demo.seed_pretraining import all_seed_sums, seed_pair

    rows = [seed_pair(ex, hint, ex.id) for ex, hint in all_seed_sums(settings.recipe)]
    out = Path(out_dir)
    write_rows(out / FINETUNE, rows)
    stats = SetStats(train_questions=0, solved_by_generation=0, solved_by_rationalization=0,
                     train_examples=len(rows), kept_generation=0, kept_rationalization=0)
    (out / SET_STATS).write_text(stats.model_dump_json(indent=2))
    return stats


def seed_set_op(settings: str, finetune_set: Output[Dataset]):
    from components.seed_control import seed_set
    from components.settings.steps import SeedSetSettings

    stats = seed_set(SeedSetSettings.load(settings), finetune_set.path)
    finetune_set.metadata["examples"] = stats.train_examples
