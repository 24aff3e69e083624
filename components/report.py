"""Step: the run report. `summary.json` (one entry per iteration, 0 = the base model) and the HTML page
(components/reporting/page.py); with baselines also `comparison.json` and the curves of every arm."""

import json
from pathlib import Path

from kfp.dsl import HTML, Dataset, Input, Output

from components.core.artifact_files import COMPARISON, CONFIG_DIGEST, HISTORY, SUMMARY
from components.core.rows import IterationRecord, read_rows, write_rows
from components.reporting.page import render_html, summary_rows
from components.settings.steps import ReportSettings


def stop_note(settings: ReportSettings, history: list[IterationRecord]) -> str:
    """Where an early stop ended the run ('' when it did not stop)."""
    from components.gate import stopped_after

    last = stopped_after(history, settings.patience)
    if last is None or last >= settings.iterations:
        return ""
    return (f"Stopped early after iteration {last} of {settings.iterations}: held-out accuracy had not improved "
            f"for {settings.patience} iterations.")


def report(settings: ReportSettings, history_dir: str, summary_dir: str, html_path: str,
           arms: dict[str, list[IterationRecord]] | None = None) -> list[dict]:
    history = read_rows(Path(history_dir) / HISTORY, IterationRecord)
    rows = summary_rows(history)
    out = Path(summary_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / SUMMARY).write_text(json.dumps(rows, indent=2))
    (out / CONFIG_DIGEST).write_text(settings.config_digest)
    write_rows(out / HISTORY, history)  # with the sample rationales, for `star report`
    Path(html_path).parent.mkdir(parents=True, exist_ok=True)
    title = f"STaR run {settings.run_name} · task {settings.task_name}"
    Path(html_path).write_text(render_html(title, history, arms, stop_note(settings, history)), encoding="utf-8")
    return rows


def compare(settings: ReportSettings, star_dir: str, ablation_dir: str, control_dir: str, summary_dir: str,
            html_path: str) -> dict[str, list[dict]]:
    """The run's report with the baselines: `summary.json` as for STaR alone, `comparison.json` with every
    arm's summary rows, and the page with the three curves."""

    dirs = {"star": star_dir, "no_rationalization": ablation_dir, "seed_control": control_dir}
    arms = {k: read_rows(Path(d) / HISTORY, IterationRecord) for k, d in dirs.items()}
    report(settings, star_dir, summary_dir, html_path, arms)
    comparison = {k: summary_rows(h) for k, h in arms.items()}
    (Path(summary_dir) / COMPARISON).write_text(json.dumps(comparison, indent=2))
    return comparison


def compare_op(settings: str, star: Input[Dataset], no_rationalization: Input[Dataset],
               seed_control: Input[Dataset], summary: Output[Dataset], report_page: Output[HTML]):
    from components.report import compare
    from components.settings.steps import ReportSettings

    compare(ReportSettings.load(settings), star.path, no_rationalization.path, seed_control.path, summary.path,
            report_page.path)


def report_op(settings: str, history: Input[Dataset], summary: Output[Dataset], report_page: Output[HTML]):
    from components.report import report
    from components.settings.steps import ReportSettings

    report(ReportSettings.load(settings), history.path, summary.path, report_page.path)
