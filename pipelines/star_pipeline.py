"""The STaR DAG. Iterations are unrolled at compile time (KFP v2 has no recursion): one nested sub-pipeline
per iteration, whose outputs (the iteration's model and the run history) feed the next one."""


from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Model

from components.evaluate import evaluate_op
from components.finetune_set import finetune_set_op
from components.generate import generate_op
from components.prepare_data import prepare_data_op
from components.prepare_model import prepare_model_op
from components.rationalize import rationalize_op
from components.report import report_op
from components.train import train_op
from pipelines.config import RunConfig

#: The image every step runs in when a config names none (the CPU runtime image built from images/).
DEFAULT_IMAGE = "python:3.11-slim"


@dataclass(frozen=True)
class Ops:
    prepare_data: Any
    prepare_model: Any
    generate: Any
    rationalize: Any
    finetune_set: Any
    train: Any
    evaluate: Any
    report: Any


def make_ops(image: str = DEFAULT_IMAGE) -> Ops:
    def op(fn: Callable) -> Any:
        return dsl.component(fn, base_image=image, install_kfp_package=False)

    return Ops(
        prepare_data=op(prepare_data_op), prepare_model=op(prepare_model_op), generate=op(generate_op),
        rationalize=op(rationalize_op), finetune_set=op(finetune_set_op), train=op(train_op),
        evaluate=op(evaluate_op), report=op(report_op),
    )


class IterationOutputs(NamedTuple):
    checkpoint: Model
    history: Dataset


def iteration_pipeline(n: int, ops: Ops) -> Any:
    """Iteration n: generate with the model of n-1, rationalize the failures, build the fine-tuning set,
    train (from the base model), evaluate."""

    @dsl.pipeline(name=f"iteration-{n}", display_name=f"iteration {n}")
    def iteration(
        config_json: str,
        train: Input[Dataset],
        eval_set: Input[Dataset],
        base_model: Input[Model],
        policy: Input[Model],
        history_in: Input[Dataset],
    ) -> IterationOutputs:
        gen = ops.generate(config_json=config_json, iteration=n, train=train, base_model=base_model, policy=policy)
        gen.set_display_name(f"iteration {n} · generate").set_caching_options(False)
        rat = ops.rationalize(
            config_json=config_json, iteration=n, train=train, attempts=gen.outputs["attempts"],
            base_model=base_model, policy=policy,
        )
        rat.set_display_name(f"iteration {n} · rationalize").set_caching_options(False)
        kept = ops.finetune_set(
            config_json=config_json, train=train, attempts=gen.outputs["attempts"],
            rationalizations=rat.outputs["rationalizations"],
        )
        kept.set_display_name(f"iteration {n} · build fine-tuning set")
        tr = ops.train(
            config_json=config_json, iteration=n, finetune_set=kept.outputs["finetune_set"],
            base_model=base_model, previous=policy,
        )
        tr.set_display_name(f"iteration {n} · train")
        ev = ops.evaluate(
            config_json=config_json, iteration=n, eval_set=eval_set, base_model=base_model,
            policy=tr.outputs["checkpoint"], history_in=history_in,
        )
        ev.set_display_name(f"iteration {n} · evaluate")
        return IterationOutputs(checkpoint=tr.outputs["checkpoint"], history=ev.outputs["history"])

    return iteration


class RunOutputs(NamedTuple):
    summary: Dataset
    report: HTML


def build_pipeline(config: RunConfig, image: str = DEFAULT_IMAGE) -> Any:
    ops = make_ops(image)
    iterations = [iteration_pipeline(n, ops) for n in range(1, config.iterations + 1)]

    @dsl.pipeline(
        name=f"star-{config.name}",
        display_name=f"STaR · {config.name}",
        description=f"Self-Taught Reasoner on task {config.task.name}, {config.iterations} iterations.",
    )
    def star(config_json: str = config.to_json()) -> RunOutputs:
        data = ops.prepare_data(config_json=config_json).set_display_name("prepare data")
        base = ops.prepare_model(config_json=config_json).set_display_name("prepare base model")
        ev0 = ops.evaluate(
            config_json=config_json, iteration=0, eval_set=data.outputs["eval_set"],
            base_model=base.outputs["base_model"], policy=base.outputs["base_model"],
            history_in=data.outputs["history"],
        ).set_display_name("iteration 0 · evaluate")
        policy, history = base.outputs["base_model"], ev0.outputs["history"]
        for n, iteration in enumerate(iterations, 1):
            step = iteration(
                config_json=config_json, train=data.outputs["train"], eval_set=data.outputs["eval_set"],
                base_model=base.outputs["base_model"], policy=policy, history_in=history,
            ).set_display_name(f"iteration {n}")
            policy, history = step.outputs["checkpoint"], step.outputs["history"]
        rep = ops.report(config_json=config_json, history=history).set_display_name("report")
        return RunOutputs(summary=rep.outputs["summary"], report=rep.outputs["report_page"])

    return star
