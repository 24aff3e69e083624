"""Running the STaR pipeline on this machine with the KFP SDK's own local runner."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import yaml
from kfp import local

from components.artifacts import SUMMARY
from components.errors import StarError
from pipelines.config import RunConfig
from pipelines.star_pipeline import build_pipeline


def run_local(config: RunConfig, out: str | Path) -> Path:
    """Run the whole pipeline through `kfp.local.SubprocessRunner`; artifacts go under `out/artifacts`,
    and `out/summary.json` and `out/report.html` are written at the end."""
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    local.init(
        runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(out / "artifacts"), raise_on_error=True
    )
    pipeline = build_pipeline(config)
    started = time.monotonic()
    try:
        task = pipeline()
    except RuntimeError as e:
        raise StarError(f"The local run stopped: {e}. The step's log above says why.") from e
    shutil.copy(Path(task.outputs["summary"].path) / SUMMARY, out / SUMMARY)
    shutil.copy(task.outputs["report"].path, out / "report.html")
    print(f"finished in {time.monotonic() - started:.0f}s")
    return out
