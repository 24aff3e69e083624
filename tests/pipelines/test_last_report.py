"""Which report a local run copies to DIR/summary.json: its own, even when an earlier run with the same
configuration left reports in the same folder; a resumed run may take one from the cache."""

import json
import os
from pathlib import Path

from components.core.artifact_files import COMPARISON, CONFIG_DIGEST, SUMMARY
from pipelines.config import RunConfig, config_digest
from pipelines.local_run import last_report


def _report(artifacts: Path, run: str, config: RunConfig, accuracy: float, written: float) -> Path:
    summary = artifacts / run / "compare-op" / "summary"
    summary.mkdir(parents=True)
    (summary / SUMMARY).write_text(json.dumps([{"iteration": 0}, {"iteration": 1, "eval_accuracy": accuracy}]))
    (summary / COMPARISON).write_text("{}")
    (summary / CONFIG_DIGEST).write_text(config_digest(config.to_json()))
    (summary.parent / "report_page").write_text("<html></html>")
    for p in summary.iterdir():
        os.utime(p, (written, written))
    return summary


def test_a_new_run_reports_what_it_wrote_and_a_resumed_one_may_use_the_cache(tmp_path: Path) -> None:
    config = RunConfig.model_validate({"name": "demo"})
    new = _report(tmp_path, "star-demo-2", config, 0.40, written=2_000)
    old = _report(tmp_path, "star-demo-1", config, 0.425, written=1_000)  # an earlier run, same configuration
    assert last_report(tmp_path, config, since=1_500)[0] == new
    assert last_report(tmp_path, config)[0] == new  # newest first among equals
    os.utime(new / SUMMARY, (500, 500))
    assert last_report(tmp_path, config)[0] == old
    other = RunConfig.model_validate({"name": "demo", "seed": 1})
    _report(tmp_path, "star-demo-3", other, 0.9, written=3_000)  # another configuration is never taken
    assert last_report(tmp_path, config, since=None)[0] == old
