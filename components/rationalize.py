"""Step: rationalize. Each question no generated rationale solved gets, with probability `p_rationalization`,
a second try with the correct final answer as a hint. A rationale that now reaches the right answer is
saved with the hint-free prompt, as if no hint had been given (unless `p_show_hint_save` says otherwise)."""

import random
from pathlib import Path

from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.artifacts import ATTEMPTS, EXAMPLES
from components.rows import Attempt, Example, read_rows, write_rows


def rationalize(
    config_json: str, iteration: int, train_dir: str, attempts_dir: str, base_dir: str, policy_dir: str,
    out_dir: str, shard: int = 0, num_shards: int = 1,
) -> dict[str, float]:
    from components.backends import load_generator
    from components.generate import generation_seed, score, shard_of, uses_few_shot
    from components.tasks import make_task
    from pipelines.config import RunConfig

    config = RunConfig.from_json(config_json)
    task = make_task(config.task)
    gen, rat = config.generation, config.rationalization
    examples = shard_of(read_rows(Path(train_dir) / EXAMPLES, Example), shard, num_shards)
    solved = {a.id for a in read_rows(Path(attempts_dir) / ATTEMPTS, Attempt) if a.correct}
    rng = random.Random(generation_seed(config.seed, iteration, 2, shard))
    wrong = [e for e in examples if e.id not in solved]
    chosen = [e for e in wrong if rng.random() < rat.p_rationalization]
    attempts: list[Attempt] = []
    if chosen:
        generator = load_generator(gen, base_dir, policy_dir)
        prefix = task.prefix(hint=True, direct=gen.direct, use_few_shot=uses_few_shot(gen.no_prompt, iteration))
        hinted = [task.question(e, hint=True, direct=gen.direct) for e in chosen]
        saved = [
            h if rng.random() < rat.p_show_hint_save else task.question(e, hint=False, direct=gen.direct)
            for e, h in zip(chosen, hinted, strict=True)
        ]
        outputs = generator.generate(
            prefix, hinted, gen.sampling(generation_seed(config.seed, iteration, 1, shard)), task.stop,
            label=f"iteration {iteration} · rationalize",
        )
        attempts = score(task, chosen, outputs, source="rationalization", saved_prompts=saved, direct=gen.direct)
    write_rows(Path(out_dir) / ATTEMPTS, attempts)
    fixed = len({a.id for a in attempts if a.correct})
    print(f"iteration {iteration}: rationalization solved {fixed}/{len(chosen)} of {len(wrong)} failed questions")
    return {"failed": len(wrong), "rationalized": len(chosen), "solved": fixed}


def rationalize_op(
    config_json: str,
    iteration: int,
    shard: int,
    num_shards: int,
    train: Input[Dataset],
    attempts: Input[Dataset],
    base_model: Input[Model],
    policy: Input[Model],
    rationalizations: Output[Dataset],
    metrics: Output[Metrics],
):
    from components.rationalize import rationalize
    from components.step_metrics import log_metrics

    stats = rationalize(
        config_json, iteration, train.path, attempts.path, base_model.path, policy.path, rationalizations.path,
        shard, num_shards,
    )
    log_metrics(metrics, stats)
