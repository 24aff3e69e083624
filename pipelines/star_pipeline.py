"""The STaR DAG. Iterations are unrolled at compile time (KFP v2 has no recursion): one nested sub-pipeline
per iteration. Inside it, generation and rationalization fan out over shards (`dsl.ParallelFor`) and fan back
in (`dsl.Collected`); the next iteration is nested in `dsl.If` on an early-stop check."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input, Model

from components.early_stop import continue_op
from components.evaluate import evaluate_op
from components.finetune_set import finetune_set_op
from components.generate import generate_op
from components.prepare_data import prepare_data_op
from components.prepare_model import prepare_model_op
from components.rationalize import rationalize_op
from components.report import compare_op, report_op
from components.seed_control import seed_set_op
from components.train import train_op
from pipelines.config import RunConfig
from pipelines.placement import StepKind, image_for, place


@dataclass(frozen=True)
class Step:
    """A KFP component and where its pods run."""

    component: Any
    kind: StepKind


@dataclass(frozen=True)
class Ops:
    prepare_data: Step
    prepare_model: Step
    generate: Step
    rationalize: Step
    finetune_set: Step
    train: Step
    evaluate: Step
    report: Step
    keep_going: Step
    seed_set: Step
    compare: Step


def make_ops(config: RunConfig) -> Ops:
    backend = config.generation.backend

    def op(fn: Callable, kind: StepKind) -> Step:
        image = image_for(kind, config.cluster, backend)
        return Step(dsl.component(fn, base_image=image, install_kfp_package=False), kind)

    return Ops(
        prepare_data=op(prepare_data_op, "cpu"), prepare_model=op(prepare_model_op, "cpu"),
        generate=op(generate_op, "generate"), rationalize=op(rationalize_op, "generate"),
        finetune_set=op(finetune_set_op, "cpu"), train=op(train_op, "train"),
        evaluate=op(evaluate_op, "evaluate"), report=op(report_op, "cpu"), keep_going=op(continue_op, "cpu"),
        seed_set=op(seed_set_op, "cpu"), compare=op(compare_op, "cpu"),
    )


class IterationOutputs(NamedTuple):
    checkpoint: Model
    history: Dataset


def iteration_pipeline(n: int, ops: Ops, config: RunConfig, local: bool = False) -> Any:
    """Iteration n: generate with the model of n-1 and rationalize the failures (per shard), build the
    fine-tuning set, train (from the base model), evaluate, report."""

    def run(step: Step, name: str, sampling: bool = False, **kwargs: Any) -> Any:
        task = step.component(**kwargs).set_display_name(f"iteration {n} · {name}")
        if sampling and not local:
            task.set_caching_options(False)
        return place(task, step.kind, config.cluster, retries=not local)

    @dsl.pipeline(name=f"iteration-{n}", display_name=f"iteration {n}")
    def iteration(
        config_json: str,
        train: Input[Dataset],
        eval_set: Input[Dataset],
        base_model: Input[Model],
        policy: Input[Model],
        history_in: Input[Dataset],
    ) -> IterationOutputs:
        shards = config.num_shards
        with dsl.ParallelFor(items=list(range(shards)), parallelism=shards) as shard:  # no name=: kfp#13239
            gen = run(ops.generate, "generate", sampling=True, config_json=config_json, iteration=n, shard=shard,
                      num_shards=shards, train=train, base_model=base_model, policy=policy)
            rat = run(ops.rationalize, "rationalize", sampling=True, config_json=config_json, iteration=n,
                      shard=shard, num_shards=shards, train=train, attempts=gen.outputs["attempts"],
                      base_model=base_model, policy=policy)
        kept = run(ops.finetune_set, "build fine-tuning set", config_json=config_json, train=train,
                   attempts=dsl.Collected(gen.outputs["attempts"]),
                   rationalizations=dsl.Collected(rat.outputs["rationalizations"]))
        tr = run(ops.train, "train", config_json=config_json, iteration=n,
                 finetune_set=kept.outputs["finetune_set"], base_model=base_model, previous=policy)
        ev = run(ops.evaluate, "evaluate", config_json=config_json, iteration=n, eval_set=eval_set,
                 base_model=base_model, policy=tr.outputs["checkpoint"], history_in=history_in)
        run(ops.report, "report", config_json=config_json, history=ev.outputs["history"])
        return IterationOutputs(checkpoint=tr.outputs["checkpoint"], history=ev.outputs["history"])

    return iteration


def build_pipeline(config: RunConfig, local: bool = False) -> Any:
    """The STaR pipeline. `local`: for `star run` on this machine, where every step (sampling included: it is
    seeded) may be taken from the run folder's cache when resuming, and a failed step is not retried (no
    preemption here; a failure is a real one and is reported at once)."""
    ops = make_ops(config)
    iterations = [iteration_pipeline(n, ops, config, local) for n in range(1, config.iterations + 1)]

    def run(step: Step, name: str, **kwargs: Any) -> Any:
        return place(step.component(**kwargs).set_display_name(name), step.kind, config.cluster, retries=not local)

    @dsl.pipeline(
        name=f"star-{config.name}",
        display_name=f"STaR · {config.name}",
        description=f"Self-Taught Reasoner on task {config.task.name}, up to {config.iterations} iterations.",
    )
    def star(config_json: str = config.to_json()) -> None:
        data = run(ops.prepare_data, "prepare data", config_json=config_json)
        base = run(ops.prepare_model, "prepare base model", config_json=config_json)
        base_model = base.outputs["base_model"]
        ev0 = run(ops.evaluate, "iteration 0 · evaluate", config_json=config_json, iteration=0,
                  eval_set=data.outputs["eval_set"], base_model=base_model, policy=base_model,
                  history_in=data.outputs["history"])
        run(ops.report, "iteration 0 · report", config_json=config_json, history=ev0.outputs["history"])

        def chain(n: int, policy: Any, history: Any) -> None:
            step = iterations[n - 1](
                config_json=config_json, train=data.outputs["train"], eval_set=data.outputs["eval_set"],
                base_model=base_model, policy=policy, history_in=history,
            ).set_display_name(f"iteration {n}")
            if n == config.iterations:
                return
            if config.evaluation.patience is None:
                chain(n + 1, step.outputs["checkpoint"], step.outputs["history"])
                return
            check = run(ops.keep_going, f"iteration {n} · early-stop check", config_json=config_json,
                        history=step.outputs["history"])
            with dsl.If(check.output == True, name=f"continue after iteration {n}"):  # noqa: E712
                chain(n + 1, step.outputs["checkpoint"], step.outputs["history"])

        if not config.evaluation.baselines:
            chain(1, base_model, ev0.outputs["history"])
            return
        # STaR, the ablation without rationalization, and the same-compute control, side by side
        ablation_json = config.ablation().to_json()
        seed = run(ops.seed_set, "seed control · seed set", config_json=config_json)
        arms = {}
        for arm, arm_json in (("star", config_json), ("no_rationalization", ablation_json)):
            policy, history = base_model, ev0.outputs["history"]
            for n in range(1, config.iterations + 1):
                label = f"iteration {n}" if arm == "star" else f"no rationalization · iteration {n}"
                step = iterations[n - 1](
                    config_json=arm_json, train=data.outputs["train"], eval_set=data.outputs["eval_set"],
                    base_model=base_model, policy=policy, history_in=history,
                ).set_display_name(label)
                policy, history = step.outputs["checkpoint"], step.outputs["history"]
            arms[arm] = history
        history = ev0.outputs["history"]
        for n in range(1, config.iterations + 1):
            tr = run(ops.train, f"seed control · iteration {n} · train", config_json=config_json, iteration=n,
                     finetune_set=seed.outputs["finetune_set"], base_model=base_model, previous=base_model)
            ev = run(ops.evaluate, f"seed control · iteration {n} · evaluate", config_json=config_json,
                     iteration=n, eval_set=data.outputs["eval_set"], base_model=base_model,
                     policy=tr.outputs["checkpoint"], history_in=history)
            history = ev.outputs["history"]
        run(ops.compare, "report with baselines", config_json=config_json, star=arms["star"],
            no_rationalization=arms["no_rationalization"], seed_control=history)

    return star
