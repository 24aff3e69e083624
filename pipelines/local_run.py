"""Running the STaR pipeline on this machine with the KFP SDK's own local runner."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import yaml
from kfp import local

from components.core.artifact_files import COMPARISON, CONFIG_DIGEST, HISTORY, REPORT, SUMMARY
from components.core.errors import StarError
from pipelines.config import RunConfig, config_digest
from pipelines.container_steps import LocalRunner, docker_runner, with_absolute_paths
from pipelines.run_log import tee_to_log
from pipelines.star_pipeline import build_pipeline
from pipelines.warm_steps import warm_subprocess_steps


def last_report(artifacts: Path, config: RunConfig, since: float | None = None) -> tuple[Path, Path]:
    """The report of the last iteration that ran for this configuration (early stop may end a run before the
    last one): among the report artifacts under `artifacts` made from `config` (and written at or after
    `since`, when given: a new run must not report an earlier run's results from the same folder), the one with
    the longest history, with the baselines if any, written last."""
    digest = config_digest(config.to_json())
    best: tuple[tuple[int, bool, float], Path, Path] | None = None
    for summary in artifacts.glob(f"*/**/{SUMMARY}"):
        marker = summary.parent / CONFIG_DIGEST
        if summary.parent.name != "summary" or not marker.exists() or marker.read_text().strip() != digest:
            continue
        written = summary.stat().st_mtime
        if since is not None and written < since:
            continue
        page = summary.parent.parent / "report_page"
        rank = (len(json.loads(summary.read_text())), (summary.parent / COMPARISON).exists(), written)
        if page.exists() and (best is None or rank > best[0]):
            best = (rank, summary.parent, page)
    if best is None:
        raise StarError(f"The run wrote no report under {artifacts}; see run.log.")
    return best[1], best[2]


def preflight(config: RunConfig) -> None:
    """What can be known before any step starts: local data files and model folders exist, and the buckets the
    run reads or writes answer."""
    from components.storage import MANIFEST, check_reachable, configure, is_remote, is_url, read_manifest
    from components.tasks.records import DATA_SUFFIXES

    configure(config.storage)
    path = getattr(config.task, "path", None)
    if path and not is_url(path) and path.lower().endswith(DATA_SUFFIXES) and not Path(path).exists():
        raise StarError(f"task.path {path} does not exist; point it at the {config.task.name} data file.")
    if path and is_remote(path) and path.lower().endswith(DATA_SUFFIXES):
        check_reachable(path.rsplit("/", 1)[0], "task.path")
    base = config.model.base
    if (base.startswith(("/", "./", "../")) or base.endswith(("/",))) and not Path(base).exists():
        raise StarError(f"model.base {base} does not exist; give a save_pretrained folder or a model ID.")
    if is_remote(base):
        check_reachable(base, "model.base")
        if read_manifest(base) is None:
            raise StarError(f"model.base {base} is not a complete model folder (no {MANIFEST}); upload it with "
                            "`star storage put DIR URL`.")
    if config.training.checkpoints and is_remote(config.training.checkpoints):
        check_reachable(config.training.checkpoints, "training.checkpoints")
    if config.start.iteration > 1 and config.start.from_url:
        from components.published import require_iteration

        require_iteration(config.start.from_url, config.start.iteration - 1, config.storage)


def step_error(log_text: str) -> str | None:
    """The message of the last StarError a step raised (the sentence that names what to fix)."""
    found = re.findall(r"StarError: (.+)", log_text)
    return found[-1].strip() if found else None


@contextlib.contextmanager
def show_cache_hits() -> Iterator[None]:
    """kfp.local reports a step taken from the cache on the root logger at INFO, which prints nothing by
    default; on a resumed run that line is how a user sees which steps were not redone."""

    class Hits(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            if "cache hit" in message:
                print(f"{time.strftime('%H:%M:%S')} - INFO - {message.split(' (key=')[0]}")

    root = logging.getLogger()
    handler, level = Hits(logging.INFO), root.level
    root.addHandler(handler)
    root.setLevel(min(level, logging.INFO) if level else logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def run_local(config: RunConfig, out: str | Path, resume: bool = False,
              runner: LocalRunner = LocalRunner.subprocess) -> Path:
    """Run the whole pipeline through kfp.local, each step in this Python environment (`SubprocessRunner`) or
    in its image (`runner=container`: `DockerRunner`, see pipelines/container_steps.py); artifacts go under
    `out/artifacts`, `out/summary.json` and `out/report.html` are written at the end, the full log to
    `out/run.log`.

    Every finished step is recorded in the run folder's cache. `resume` continues an interrupted run: finished
    steps are taken from the cache (the seeds make them what a new run would compute), the step that was cut
    off runs again (training from its last checkpoint), and the run ends where an uninterrupted one ends.
    Without `resume` every step runs afresh (earlier results stay on disk)."""
    preflight(config)
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if config.training.checkpoints is None:
        training = config.training.model_copy(update={"checkpoints": str(out / "checkpoints")})
        config = config.model_copy(update={"training": training})
    cache = out / "artifacts" / ".kfp_cache"
    if not resume:  # a new run: nothing is taken from an earlier one (its artifacts stay on disk)
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
    (out / "config.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    step_runner: local.SubprocessRunner | local.DockerRunner = local.SubprocessRunner(use_venv=False)
    # steps in this environment start from a process that has imported torch and transformers once
    steps: contextlib.AbstractContextManager = warm_subprocess_steps()
    if runner is LocalRunner.container:
        config, mounts = with_absolute_paths(config, out)
        step_runner, steps = docker_runner(config, mounts), contextlib.nullcontext()
    local.init(
        runner=step_runner, pipeline_root=str(out / "artifacts"), raise_on_error=True, enable_caching=True,
        cache_root=str(cache),
    )
    pipeline = build_pipeline(config, local=True)
    started, run_started = time.monotonic(), time.time()
    console, log = tee_to_log(out / "run.log", append=resume)
    try:
        with steps, contextlib.redirect_stdout(console), warnings.catch_warnings(), show_cache_hits():
            # the images name the cluster's registry; with the subprocess runner every step runs here
            warnings.filterwarnings("ignore", message=".*non-Python base image.*", category=RuntimeWarning)
            # cluster placement (resources, node pools) is compiled in but has no meaning on this machine
            warnings.filterwarnings("ignore", message=".*no effect in the current local runner.*")
            pipeline()
    except RuntimeError as e:
        log.close()
        logged = (out / "run.log").read_text(encoding="utf-8", errors="replace")
        reason = step_error(logged) or re.sub(r"\x1b\[[0-9;]*m", "", str(e))
        raise StarError(f"The local run stopped: {reason} (full log: {out / 'run.log'}; finished steps are kept: "
                        f"`star run --resume {out}` continues).") from e
    finally:
        log.close()
    # a resumed run may take its last report from the cache; a new one only reports what it wrote
    summary_dir, report_page = last_report(out / "artifacts", config, None if resume else run_started)
    for name in (SUMMARY, HISTORY, COMPARISON):
        if (summary_dir / name).exists():
            shutil.copy(summary_dir / name, out / name)
    shutil.copy(report_page, out / REPORT)
    print(f"finished in {time.monotonic() - started:.0f}s")
    return out


def upload_run(out: str | Path, url: str, config: RunConfig) -> None:
    """Copy the run folder to object storage (files first, manifest last), so the models, checkpoints and
    artifacts of a local run end up in a bucket; the folder of a run that stopped is copied too."""
    from components.storage import describe_manifest, upload_dir

    manifest = upload_dir(out, url, config.storage)
    print(f"copied {out} to {url} ({describe_manifest(manifest)})")


def resume_config(out: str | Path) -> RunConfig:
    """The configuration of the run in folder `out`, as it was started."""
    from pipelines.config import load_config

    path = Path(out) / "config.yaml"
    if not path.exists():
        raise StarError(f"{out} holds no run to resume (no config.yaml); give the --out folder of an earlier "
                        "`star run`.")
    return load_config(path)
