"""The `star` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from components.core.errors import StarError
from pipelines.config import RunConfig, continue_from, load_config
from pipelines.container_steps import LocalRunner

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_show_locals=False,
    help="STaR (Self-Taught Reasoner) on Kubeflow.",
)
console = Console(stderr=True)

ConfigArg = Annotated[Path | None, typer.Argument(help="YAML run configuration (default: the arithmetic demo).")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Override a config key: --set iterations=5.")]
FromOpt = Annotated[str | None, typer.Option(
    "--from", help="Continue an earlier run from what it published (its `publish` folder or bucket URL): start after "
    "its last published iteration, or at --start-iteration.",
)]
StartOpt = Annotated[int | None, typer.Option(
    "--start-iteration", help="With --from: the first iteration to run (default: after the last published one).",
)]


def print_summary(rows: list[dict]) -> None:
    table = Table(title="STaR summary")
    for col in ("iteration", "held-out accuracy", "solved (gen + rat)", "kept", "steps", "loss"):
        table.add_column(col, justify="right")
    for r in rows:
        q = r["train_questions"] or 1
        solved = f"{r['solved_by_generation'] / q:.1%} + {r['solved_by_rationalization'] / q:.1%}"
        loss = f"{r['train_loss']:.4f}" if r["train_loss"] is not None else "–"
        table.add_row(str(r["iteration"]), f"{r['eval_accuracy']:.1%}", solved if r["iteration"] else "–",
                      str(r["train_examples"]), str(r["train_steps"]), loss)
    Console().print(table)


@app.command()
def run(
    config: ConfigArg = None,
    out: Annotated[Path | None, typer.Option("--out", help="Run folder (default: runs/<name>).")] = None,
    set_: SetOpt = None,
    resume: Annotated[Path | None, typer.Option(
        "--resume", help="Continue the interrupted run in this folder, with the configuration it started with.",
    )] = None,
    upload: Annotated[str | None, typer.Option(
        "--upload", help="Also copy the run folder (artifacts, models, checkpoints, summary) to this s3:// or gs:// "
        "folder when the run ends, finished or not.",
    )] = None,
    from_url: FromOpt = None,
    start_iteration: StartOpt = None,
    runner: Annotated[LocalRunner, typer.Option(
        "--runner", help="Where each step runs: in this Python environment (subprocess), or in its image "
        "(container: cluster.images, through a Docker engine or podman's socket at DOCKER_HOST).",
    )] = LocalRunner.subprocess,
) -> None:
    """Run a STaR loop on this machine through kfp.local."""
    from pipelines.local_run import resume_config, run_local, upload_run

    if resume is not None:
        if config is not None or set_ or (out is not None and out.resolve() != resume.resolve()):
            raise StarError("--resume DIR continues the run in DIR with its own config.yaml; give no config "
                            "file, --set or other --out with it.")
        cfg, folder = resume_config(resume), resume
    else:
        cfg = _continued(load_config(config, set_), from_url, start_iteration)
        folder = out or Path("runs") / cfg.name
    if upload is not None:
        from components.storage import check_reachable

        check_reachable(upload, "--upload", cfg.storage)
    try:
        run_local(cfg, folder, resume=resume is not None, runner=runner)
    finally:
        if upload is not None:
            upload_run(folder, upload, cfg)
    print_summary(json.loads((folder / "summary.json").read_text()))
    console.print(f"[green]wrote {folder / 'summary.json'} and {folder / 'report.html'}[/green]")


def _continued(cfg: RunConfig, from_url: str | None, start_iteration: int | None) -> RunConfig:
    """`cfg`, set by --from/--start-iteration to continue an earlier run from its published iterations."""
    if from_url is None:
        if start_iteration is not None:
            raise StarError("--start-iteration needs --from: the publish folder of the run to continue.")
        return cfg
    cfg = continue_from(cfg, from_url, start_iteration)
    console.print(f"continuing {from_url} at iteration {cfg.start.iteration}")
    return cfg


@app.command("compile")
def compile_(
    config: ConfigArg = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Pipeline package to write.")] = Path("star.yaml"),
    set_: SetOpt = None,
) -> None:
    """Compile the pipeline to a package for `kfp run submit -f`; refuses a run too long for one Argo Workflow."""
    _compile_to(load_config(config, set_), output)
    console.print(f"[green]wrote {output}[/green]")


def _compile_to(cfg: RunConfig, output: Path) -> None:
    from pipelines.package import compile_checked

    report = compile_checked(cfg, output)
    console.print(report.describe())
    if cfg.training.checkpoint_location() is None:
        console.print("[yellow]training.checkpoints is not set: a train step preempted on the cluster starts over "
                      "when retried; set it to a bucket URL (s3://…, gs://…) to resume from its last checkpoint."
                      "[/yellow]")


HostOpt = Annotated[str, typer.Option("--host", help="Kubeflow Pipelines API endpoint, e.g. http://localhost:8080.")]
NamespaceOpt = Annotated[str | None, typer.Option("--namespace", help="Kubeflow profile namespace (multi-user).")]
CaCertOpt = Annotated[str | None, typer.Option(
    "--ca-cert", help="PEM bundle of the CA that signed a private endpoint's certificate (default: $KFP_CA_CERT).")]


@app.command()
def upload(
    config: ConfigArg = None,
    host: HostOpt = "",
    pipeline_name: Annotated[str, typer.Option("--pipeline-name", help="Pipeline name in Kubeflow.")] = "star",
    version_name: Annotated[str | None, typer.Option("--version-name", help="Default: a unique name.")] = None,
    version_prefix: Annotated[str | None, typer.Option(
        "--version-prefix", help="A unique version name starting with this (what repeated uploads want).")] = None,
    namespace: NamespaceOpt = None,
    ca_cert: CaCertOpt = None,
    set_: SetOpt = None,
) -> None:
    """Compile the pipeline and upload it as a new pipeline version (it appears in the Kubeflow UI)."""
    import tempfile

    from pipelines.submit import SubmitError, upload_pipeline_version

    if not host:
        raise StarError("--host is required: the Kubeflow Pipelines API endpoint.")
    with tempfile.TemporaryDirectory() as tmp:
        package = Path(tmp) / "star.yaml"
        _compile_to(load_config(config, set_), package)
        try:
            result = upload_pipeline_version(str(package), host, pipeline_name, version_name, namespace,
                                             ca_cert=ca_cert, version_prefix=version_prefix)
        except SubmitError as e:
            raise StarError(str(e)) from e
    console.print(f"[green]uploaded {result.pipeline_name} version {result.version_name}[/green]")
    print(result.url)


@app.command()
def submit(
    config: ConfigArg = None,
    host: HostOpt = "",
    experiment: Annotated[str, typer.Option("--experiment", help="Experiment to run in.")] = "star",
    run_name: Annotated[str | None, typer.Option("--run-name", help="Default: a unique name.")] = None,
    pipeline_name: Annotated[str | None, typer.Option("--pipeline-name", help="Default: star-<name>.")] = None,
    namespace: NamespaceOpt = None,
    service_account: Annotated[
        str | None, typer.Option("--service-account", help="Kubernetes service account of the run's pods.")
    ] = None,
    ca_cert: CaCertOpt = None,
    set_: SetOpt = None,
    from_url: FromOpt = None,
    start_iteration: StartOpt = None,
) -> None:
    """Compile, upload a pipeline version and start a run on a Kubeflow cluster; prints the run's UI link."""
    import tempfile

    from pipelines.submit import SubmitError, submit_run

    if not host:
        raise StarError("--host is required: the Kubeflow Pipelines API endpoint.")
    cfg = _continued(load_config(config, set_), from_url, start_iteration)
    with tempfile.TemporaryDirectory() as tmp:
        package = Path(tmp) / "star.yaml"
        _compile_to(cfg, package)
        try:
            result = submit_run(
                str(package), host, experiment=experiment, run_name=run_name,
                pipeline_name=pipeline_name or f"star-{cfg.name}", namespace=namespace,
                service_account=service_account, ca_cert=ca_cert,
            )
        except SubmitError as e:
            raise StarError(str(e)) from e
    console.print(f"[green]started run {result.run_name} in experiment {result.experiment_name}[/green]")
    print(result.url)


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="The folder of a finished `star run`.")]) -> None:
    """Render the accuracy curve and sample rationales of a finished run (RUN/report.html) and print its
    summary."""
    from components.core.artifact_files import COMPARISON, HISTORY, REPORT
    from components.core.rows import IterationRecord, read_rows
    from components.reporting.page import render_html

    history_path = run_dir / HISTORY
    if not history_path.exists():
        raise StarError(f"{run_dir} holds no {HISTORY}; pass the --out folder of a finished `star run`.")
    history = read_rows(history_path, IterationRecord)
    arms = None
    if (run_dir / COMPARISON).exists():
        rows = json.loads((run_dir / COMPARISON).read_text())
        arms = {arm: [IterationRecord.model_validate(r) for r in records] for arm, records in rows.items()}
    name = run_dir.name
    (run_dir / REPORT).write_text(render_html(f"STaR run {name}", history, arms), encoding="utf-8")
    print_summary(json.loads((run_dir / "summary.json").read_text()))
    console.print(f"[green]wrote {run_dir / REPORT}[/green]")


def _register_task_commands() -> None:
    from pipelines.task_cli import data_app, prompt_command, score_command

    app.add_typer(data_app, name="data", help="Check data files before spending GPU hours.")
    app.command("prompt")(prompt_command)
    app.command("score")(score_command)
    from pipelines.storage_cli import storage_app

    app.add_typer(storage_app, name="storage", help="Copy folders to and from object storage, verified.")


_register_task_commands()


def main() -> None:
    try:
        app()
    except StarError as e:
        console.print(f"[red]error:[/red] {e}")
        sys.exit(2)


if __name__ == "__main__":
    main()
