"""Running the STaR pipeline on this machine with the KFP SDK's own local runner."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import time
import warnings
from pathlib import Path

import yaml
from kfp import local

from components.artifacts import HISTORY, REPORT, SUMMARY
from components.errors import StarError
from pipelines.config import RunConfig
from pipelines.run_log import tee_to_log
from pipelines.star_pipeline import build_pipeline


def last_report(artifacts: Path, since: float) -> tuple[Path, Path]:
    """The report of the last iteration that ran (early stop may end a run before the last one): the report
    artifacts written by this run, the one with the longest history."""
    best: tuple[int, Path, Path] | None = None
    for summary in artifacts.glob(f"*/**/{SUMMARY}"):
        if summary.stat().st_mtime < since or summary.parent.name != "summary":
            continue
        page = summary.parent.parent / "report_page"
        rows = len(json.loads(summary.read_text()))
        if page.exists() and (best is None or rows > best[0]):
            best = (rows, summary.parent, page)
    if best is None:
        raise StarError(f"The run wrote no report under {artifacts}; see run.log.")
    return best[1], best[2]


def preflight(config: RunConfig) -> None:
    """What can be known before any step starts: local data files and model folders exist."""
    from components.tasks.loading import DATA_SUFFIXES, is_url

    path = getattr(config.task, "path", None)
    if path and not is_url(path) and path.lower().endswith(DATA_SUFFIXES) and not Path(path).exists():
        raise StarError(f"task.path {path} does not exist; point it at the {config.task.name} data file.")
    base = config.model.base
    if (base.startswith(("/", "./", "../")) or base.endswith(("/",))) and not Path(base).exists():
        raise StarError(f"model.base {base} does not exist; give a save_pretrained folder or a model ID.")


def step_error(log_text: str) -> str | None:
    """The message of the last StarError a step raised (the sentence that names what to fix)."""
    found = re.findall(r"StarError: (.+)", log_text)
    return found[-1].strip() if found else None


def run_local(config: RunConfig, out: str | Path) -> Path:
    """Run the whole pipeline through `kfp.local.SubprocessRunner`; artifacts go under `out/artifacts`,
    `out/summary.json` and `out/report.html` are written at the end, the full log to `out/run.log`."""
    preflight(config)
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    local.init(
        runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(out / "artifacts"), raise_on_error=True
    )
    pipeline = build_pipeline(config)
    started = time.monotonic()
    run_started = time.time()
    console, log = tee_to_log(out / "run.log")
    try:
        with contextlib.redirect_stdout(console), warnings.catch_warnings():
            # the images name the cluster's registry; locally every step runs in this environment
            warnings.filterwarnings("ignore", message=".*non-Python base image.*", category=RuntimeWarning)
            # cluster placement (resources, node pools) is compiled in but has no meaning on this machine
            warnings.filterwarnings("ignore", message=".*no effect in the current local runner.*")
            pipeline()
    except RuntimeError as e:
        log.close()
        logged = (out / "run.log").read_text(encoding="utf-8", errors="replace")
        reason = step_error(logged) or re.sub(r"\x1b\[[0-9;]*m", "", str(e))
        raise StarError(f"The local run stopped: {reason} (full log: {out / 'run.log'}).") from e
    finally:
        log.close()
    summary_dir, report_page = last_report(out / "artifacts", run_started)
    for name in (SUMMARY, HISTORY):
        shutil.copy(summary_dir / name, out / name)
    shutil.copy(report_page, out / REPORT)
    print(f"finished in {time.monotonic() - started:.0f}s")
    return out
