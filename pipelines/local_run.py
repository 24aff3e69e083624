"""Running the STaR pipeline on this machine with the KFP SDK's own local runner."""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path

import yaml
from kfp import local

from components.artifacts import HISTORY, REPORT, SUMMARY
from components.errors import StarError
from pipelines.config import RunConfig
from pipelines.run_log import tee_to_log
from pipelines.star_pipeline import build_pipeline


def run_local(config: RunConfig, out: str | Path) -> Path:
    """Run the whole pipeline through `kfp.local.SubprocessRunner`; artifacts go under `out/artifacts`,
    `out/summary.json` and `out/report.html` are written at the end, the full log to `out/run.log`."""
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    local.init(
        runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(out / "artifacts"), raise_on_error=True
    )
    pipeline = build_pipeline(config)
    started = time.monotonic()
    console, log = tee_to_log(out / "run.log")
    try:
        with contextlib.redirect_stdout(console):
            task = pipeline()
    except RuntimeError as e:
        raise StarError(f"The local run stopped ({e}); the full log is {out / 'run.log'}.") from e
    finally:
        log.close()
    for name in (SUMMARY, HISTORY):
        shutil.copy(Path(task.outputs["summary"].path) / name, out / name)
    shutil.copy(task.outputs["report"].path, out / REPORT)
    print(f"finished in {time.monotonic() - started:.0f}s")
    return out
