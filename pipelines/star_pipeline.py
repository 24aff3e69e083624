"""The STaR DAG.

Iterations are unrolled at compile time (KFP v2 has no recursion) as a flat chain of ONE iteration sub-pipeline
definition, used once per iteration with the iteration number as an input. Inside it, generation and
rationalization of each shard run in one task, fanned out with `dsl.ParallelFor` and fanned in with
`dsl.Collected`. An early stop is a gate step in front of each iteration: once it answers False, that
iteration's steps and every later one's do nothing (no model is loaded), so there are no nested conditions and
the compiled package grows linearly with the number of iterations.

Each step gets the settings it reads as one small JSON parameter of the root pipeline (see
components/settings/steps.py), so no pod carries the whole configuration and a step's cache key changes only
when something it reads changes."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input, Model

from components.build_finetune_set import build_finetune_set_op
from components.evaluate import evaluate_op
from components.gate import gate_op
from components.generate import generate_op
from components.prepare_data import prepare_data_op
from components.prepare_model import prepare_model_op
from components.publish_iteration import publish_op
from components.report import compare_op, report_op
from components.seed_control import seed_set_op
from components.start_from_run import start_from_op
from components.train import train_op
from pipelines.config import RunConfig
from pipelines.placement import StepKind, check_engines, image_for, place


@dataclass(frozen=True)
class Step:
    """A KFP component and where its pods run."""

    component: Any
    kind: StepKind


@dataclass(frozen=True)
class Ops:
    prepare_data: Step
    prepare_model: Step
    start_from: Step
    gate: Step
    generate: Step
    build_finetune_set: Step
    train: Step
    evaluate: Step
    report: Step
    publish: Step
    seed_set: Step
    compare: Step


def make_ops(config: RunConfig) -> Ops:
    backend = config.generation.backend

    def op(fn: Callable, kind: StepKind) -> Step:
        image = image_for(kind, config.cluster, backend)
        return Step(dsl.component(fn, base_image=image, install_kfp_package=False), kind)

    return Ops(
        prepare_data=op(prepare_data_op, "cpu"), prepare_model=op(prepare_model_op, "cpu"),
        start_from=op(start_from_op, "cpu"), gate=op(gate_op, "cpu"), generate=op(generate_op, "generate"),
        build_finetune_set=op(build_finetune_set_op, "cpu"),
        train=op(train_op, "submit" if config.training.distributed.nodes > 1 else "train"),
        evaluate=op(evaluate_op, "evaluate"), report=op(report_op, "cpu"), publish=op(publish_op, "cpu"),
        seed_set=op(seed_set_op, "cpu"), compare=op(compare_op, "cpu"),
    )


class IterationOutputs(NamedTuple):
    model: Model
    history: Dataset


class ControlOutputs(NamedTuple):
    history: Dataset


class Runner:
    """Adds a step to the DAG with its display name and its placement on the cluster (resources, node pool,
    timeout, retries, credentials). `local`: for `star run` on this machine, where a failed step is not retried
    (no preemption here: a failure is a real one and is reported at once) and every step, sampling included (it
    is seeded), may come from the run folder's cache when resuming."""

    def __init__(self, config: RunConfig, local: bool) -> None:
        self.config, self.local = config, local

    def __call__(self, step: Step, name: str, sampling: bool = False, **kwargs: Any) -> Any:
        task = step.component(**kwargs).set_display_name(name)
        if sampling and not self.local:
            task.set_caching_options(False)
        return place(task, step.kind, self.config.cluster, retries=not self.local)


def iteration_pipeline(ops: Ops, config: RunConfig, run: Runner) -> Any:
    """One STaR iteration n: generate and rationalize with the model of n-1 (per shard), build the fine-tuning set,
    train (from the base model), evaluate, report, publish (with `publish`). `active=False` (an early stop before
    n, decided by the gate task in front of the iteration): every step does nothing."""
    shards = config.num_shards
    publishing = config.publish is not None

    @dsl.pipeline(name="star-iteration", display_name="STaR iteration")
    def iteration(
        iteration: int,
        active: bool,
        generate_settings: str,
        finetune_set_settings: str,
        train_settings: str,
        evaluate_settings: str,
        report_settings: str,
        publish_settings: str,
        train: Input[Dataset],
        eval_set: Input[Dataset],
        base_model: Input[Model],
        model: Input[Model],
        history_in: Input[Dataset],
    ) -> IterationOutputs:
        # `active` must reach the shards as an input of this DAG: kfp.local 2.17 replaces a task output passed
        # into a ParallelFor with the loop item (kfp/local/orchestrator/task_spec_utils.py)
        with dsl.ParallelFor(items=list(range(shards)), parallelism=shards) as shard:  # no name=: kfp#13239
            gen = run(ops.generate, "generate and rationalize", sampling=True, settings=generate_settings,
                      iteration=iteration, shard=shard, num_shards=shards, active=active, train=train,
                      base_model=base_model, model=model)
        kept = run(ops.build_finetune_set, "build fine-tuning set", settings=finetune_set_settings, train=train,
                   attempts=dsl.Collected(gen.outputs["attempts"]))
        tr = run(ops.train, "train", settings=train_settings, iteration=iteration, active=active,
                 finetune_set=kept.outputs["finetune_set"], base_model=base_model, previous=model)
        ev = run(ops.evaluate, "evaluate", settings=evaluate_settings, iteration=iteration, active=active,
                 eval_set=eval_set, base_model=base_model, model=tr.outputs["model"], history_in=history_in)
        run(ops.report, "report", settings=report_settings, history=ev.outputs["history"])
        if publishing:
            run(ops.publish, "publish", settings=publish_settings, iteration=iteration, active=active,
                model=tr.outputs["model"], history=ev.outputs["history"])
        return IterationOutputs(model=tr.outputs["model"], history=ev.outputs["history"])

    return iteration


def control_pipeline(ops: Ops, run: Runner) -> Any:
    """One iteration of the same-compute control: train the base model on its seed set for as many steps as
    STaR trains in iteration n, and evaluate it."""

    @dsl.pipeline(name="star-control-iteration", display_name="control iteration")
    def control(
        iteration: int,
        train_settings: str,
        evaluate_settings: str,
        seed_set: Input[Dataset],
        eval_set: Input[Dataset],
        base_model: Input[Model],
        history_in: Input[Dataset],
    ) -> ControlOutputs:
        tr = run(ops.train, "train", settings=train_settings, iteration=iteration, active=True,
                 finetune_set=seed_set, base_model=base_model, previous=base_model)
        ev = run(ops.evaluate, "evaluate", settings=evaluate_settings, iteration=iteration, active=True,
                 eval_set=eval_set, base_model=base_model, model=tr.outputs["model"], history_in=history_in)
        return ControlOutputs(history=ev.outputs["history"])

    return control


def root_parameters(config: RunConfig) -> dict[str, str]:
    """The root pipeline's parameters: each step's settings as JSON ('' where the run has no such step)."""
    gate, publish = config.gate_settings(), config.publish_settings()
    return {
        "prepare_data_settings": config.prepare_data_settings().model_dump_json(),
        "prepare_model_settings": config.prepare_model_settings().model_dump_json(),
        "start_settings": config.start_settings().model_dump_json() if config.start.iteration > 1 else "",
        "generate_settings": config.generate_settings().model_dump_json(),
        "ablation_generate_settings":
            config.generate_settings(rationalize=False).model_dump_json() if config.evaluation.baselines else "",
        "finetune_set_settings": config.finetune_set_settings().model_dump_json(),
        "train_settings": config.train_settings().model_dump_json(),
        "evaluate_settings": config.evaluate_settings().model_dump_json(),
        "gate_settings": gate.model_dump_json() if gate else "",
        "report_settings": config.report_settings().model_dump_json(),
        "publish_settings": publish.model_dump_json() if publish else "",
        "seed_set_settings": config.seed_set_settings().model_dump_json() if config.evaluation.baselines else "",
    }


def build_pipeline(config: RunConfig, local: bool = False) -> Any:
    """The STaR pipeline: prepare data and base model, evaluate the base model (iteration 0) or start from an
    earlier run's iteration k-1, then iterations k..N; with `evaluation.baselines` also the ablation without
    rationalization and the same-compute control, and the report that compares them."""
    if not local:
        check_engines(config.cluster, config.generation.backend, config.generation.vllm.tensor_parallel_size,
                      config.training.distributed.launcher)
    ops = make_ops(config)
    run = Runner(config, local)
    star_iteration = iteration_pipeline(ops, config, run)
    control_iteration = control_pipeline(ops, run) if config.evaluation.baselines else None
    first, last = config.start.iteration, config.iterations
    gated = config.evaluation.patience is not None
    defaults = root_parameters(config)

    @dsl.pipeline(
        name=f"star-{config.name}",
        display_name=f"STaR · {config.name}",
        description=f"Self-Taught Reasoner on task {config.task.name}, iterations {first} to {last}.",
        pipeline_root=None if local else config.cluster.pipeline_root,
    )
    def star(
        prepare_data_settings: str = defaults["prepare_data_settings"],
        prepare_model_settings: str = defaults["prepare_model_settings"],
        start_settings: str = defaults["start_settings"],
        generate_settings: str = defaults["generate_settings"],
        ablation_generate_settings: str = defaults["ablation_generate_settings"],
        finetune_set_settings: str = defaults["finetune_set_settings"],
        train_settings: str = defaults["train_settings"],
        evaluate_settings: str = defaults["evaluate_settings"],
        gate_settings: str = defaults["gate_settings"],
        report_settings: str = defaults["report_settings"],
        publish_settings: str = defaults["publish_settings"],
        seed_set_settings: str = defaults["seed_set_settings"],
    ) -> None:
        data = run(ops.prepare_data, "prepare data", settings=prepare_data_settings)
        base_model = run(ops.prepare_model, "prepare base model", settings=prepare_model_settings).outputs["base_model"]
        common = {"train": data.outputs["train"], "eval_set": data.outputs["eval_set"], "base_model": base_model}
        if first == 1:
            ev0 = run(ops.evaluate, "iteration 0 · evaluate", settings=evaluate_settings, iteration=0, active=True,
                      eval_set=data.outputs["eval_set"], base_model=base_model, model=base_model,
                      history_in=data.outputs["history"])
            run(ops.report, "iteration 0 · report", settings=report_settings, history=ev0.outputs["history"])
            start_model, start_history = base_model, ev0.outputs["history"]
        else:
            st = run(ops.start_from, f"start from iteration {first - 1}", settings=start_settings)
            start_model, start_history = st.outputs["model"], st.outputs["history"]

        def chain(label: str, generate: Any) -> Any:
            """Iterations first..last, each fed the model and history of the one before; the last history."""
            model, history = start_model, start_history
            for n in range(first, last + 1):
                active: Any = True
                if gated:
                    active = run(ops.gate, f"{label}iteration {n} · early-stop gate", settings=gate_settings,
                                 iteration=n, history=history).output
                step = star_iteration(
                    iteration=n, active=active, generate_settings=generate,
                    finetune_set_settings=finetune_set_settings, train_settings=train_settings,
                    evaluate_settings=evaluate_settings, report_settings=report_settings,
                    publish_settings=publish_settings, model=model, history_in=history, **common,
                ).set_display_name(f"{label}iteration {n}")
                model, history = step.outputs["model"], step.outputs["history"]
            return history

        star_history = chain("", generate_settings)
        if control_iteration is None:
            return
        ablation_history = chain("no rationalization · ", ablation_generate_settings)
        seed = run(ops.seed_set, "seed control · seed set", settings=seed_set_settings)
        control_history = start_history
        for n in range(first, last + 1):
            control_history = control_iteration(
                iteration=n, train_settings=train_settings, evaluate_settings=evaluate_settings,
                seed_set=seed.outputs["finetune_set"], eval_set=data.outputs["eval_set"], base_model=base_model,
                history_in=control_history,
            ).set_display_name(f"seed control · iteration {n}").outputs["history"]
        run(ops.compare, "report with baselines", settings=report_settings, star=star_history,
            no_rationalization=ablation_history, seed_control=control_history)

    return star
