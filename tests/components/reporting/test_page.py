"""The run report page as the Kubeflow UI shows it: laid out by a real browser (headless Chromium) inside the
UI's sandboxed frame, with nothing cut off, nothing hidden, no script and nothing fetched from elsewhere."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from components.core.rows import Attempt, IterationRecord
from components.reporting.page import group_label, line_chart, render_html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("STAR_REQUIRE_TOOLS"),
    reason="Chromium is not installed (Debian: apt-get install chromium; `make test` installs it when run as root)",
)


def _history() -> list[IterationRecord]:
    """Four iterations where every digit group but one is at 100%, as the demo's are."""
    groups = [{"1": 1.0, "2": 1.0, "3": 0.95, "4": 0.0, "5": 0.0}, {"1": 1.0, "2": 1.0, "3": 1.0, "4": 0.6, "5": 0.4},
              {"1": 1.0, "2": 1.0, "3": 1.0, "4": 0.9, "5": 0.5}, {"1": 1.0, "2": 1.0, "3": 1.0, "4": 1.0, "5": 0.6}]
    sample = Attempt(id="q1", source="generation", prompt="Q: 12 + 34\nA:", completion=" <script>alert(1)</script> 46",
                     prediction="46", correct=True, group="2")
    return [IterationRecord(iteration=n, eval_accuracy=sum(g.values()) / 5, eval_accuracy_by_group=g,
                            eval_questions=200, train_questions=1000, solved_by_generation=600 + 50 * n,
                            solved_by_rationalization=200, train_examples=800, train_steps=100 * n,
                            train_loss=0.03 if n else None, samples=[sample] if n else [])
            for n, g in enumerate(groups)]


def _arms() -> dict[str, list[IterationRecord]]:
    h = _history()
    return {"star": h, "no_rationalization": h, "seed_control": h}  # every curve on top of the others


def test_digit_groups_read_as_english() -> None:
    assert [group_label(g) for g in ("1", "2", "10", "easy")] == ["1 digit", "2 digits", "10 digits", "easy"]


def test_series_on_the_same_point_stay_visible_side_by_side() -> None:
    same = [(0, 1.0), (1, 1.0), (2, 1.0)]
    svg = line_chart({f"series {k}": same for k in range(6)})
    groups = re.findall(r'<g class="series".*?</g>', svg)
    assert len(groups) == 6
    styles, centres = set(), []
    for g in groups:
        line = re.search(r"<polyline ([^>]*)/>", g).group(1)
        styles.add((re.search(r'stroke="([^"]+)"', line).group(1), re.search(r'stroke-dasharray="([^"]*)"', line)
                    and re.search(r'stroke-dasharray="([^"]*)"', line).group(1)))
        first = re.search(r'<(?:circle cx="([\d.]+)"|rect x="([\d.]+)"|polygon points="([\d.]+))', g)
        centres.append(next(v for v in first.groups() if v))
    assert len(styles) == 6  # colour and dash pattern differ
    assert len(set(centres)) == 6  # no marker sits exactly on another


def test_the_page_is_static_html() -> None:
    page = render_html("run <1>", _history(), _arms(), note="Stopped early after iteration 3 of 5")
    assert "<script" not in page.lower() and "alert(1)</script>" not in page  # the completion is escaped
    assert not re.search(r"\son\w+\s*=", page)  # no event handlers
    assert not re.search(r"(?:src|href)\s*=|url\(|@import", page)  # nothing to fetch


@needs_chromium
def test_chromium_lays_out_the_report_with_nothing_cut_off_and_nothing_fetched(tmp_path: Path) -> None:
    """Under a Content-Security-Policy that allows only inline styles and the measuring script, Chromium reports a
    violation for any script or fetch the page would make; the script then checks that every label of every
    chart lies inside its chart."""
    assert CHROMIUM is not None, "STAR_REQUIRE_TOOLS is set but Chromium is not installed"
    page = render_html("STaR run · tiny", _history(), _arms())
    measure = """
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-measure'">
<script nonce="measure">
const violations = [];
document.addEventListener('securitypolicyviolation', e => violations.push(e.violatedDirective + ' ' + e.blockedURI));
window.addEventListener('load', () => {
  const cut = [];
  let texts = 0;
  for (const svg of document.querySelectorAll('svg')) {
    const box = svg.getBoundingClientRect();
    for (const t of svg.querySelectorAll('text')) {
      texts++;
      const r = t.getBoundingClientRect();
      if (r.left < box.left - 0.5 || r.right > box.right + 0.5 || r.top < box.top - 0.5 || r.bottom > box.bottom + 0.5)
        cut.push(t.textContent);
    }
  }
  const out = document.createElement('pre');
  out.id = 'measure';
  out.textContent = JSON.stringify({violations, cut, texts, svgs: document.querySelectorAll('svg').length});
  document.body.appendChild(out);
});
</script>"""
    harness = tmp_path / "report.html"
    harness.write_text(page.replace("<head>", "<head>" + measure, 1))
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1000,1400", "--virtual-time-budget=5000",
         "--dump-dom", harness.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    found = re.search(r'<pre id="measure">(.*?)</pre>', proc.stdout, re.S)
    assert found, proc.stderr[-2000:]
    result = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert result["svgs"] == 2 and result["texts"] > 20
    assert result["cut"] == []
    assert result["violations"] == []
