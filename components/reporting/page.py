"""The run report as a static HTML page (inline SVG, no scripts, nothing fetched), so it renders inside the
Kubeflow UI's sandboxed frame: the accuracy curve (overall and per class), the iteration table and sample
rationales, and with baselines the curves of STaR against them."""

import html

from components.core.rows import IterationRecord

SUMMARY_FIELDS = (
    "iteration", "eval_accuracy", "eval_accuracy_by_group", "eval_questions", "eval_metrics", "train_questions",
    "solved_by_generation", "solved_by_rationalization", "train_examples", "train_steps", "train_loss",
)
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"]


def summary_rows(history: list[IterationRecord]) -> list[dict]:
    return [r.model_dump(include=set(SUMMARY_FIELDS)) for r in history]


DASHES = ["", "6 3", "2 3", "8 3 2 3", "4 4", "1 2", "10 4", "3 2 1 2", "6 2 2 2"]
LEGEND_ROW = 18


def _marker(shape: int, x: float, y: float, color: str) -> str:
    """One of four marker shapes, so series are told apart without colour too."""
    r = 4.5
    if shape == 0:
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{color}"/>'
    if shape == 1:
        return f'<rect x="{x - 3.5:.1f}" y="{y - 3.5:.1f}" width="7" height="7" fill="{color}"/>'
    corners = ([(0, -r), (r, 3.5), (-r, 3.5)] if shape == 2  # triangle
               else [(0, -r), (r, 0), (0, r), (-r, 0)])  # diamond
    points = " ".join(f"{x + dx:.1f},{y + dy:.1f}" for dx, dy in corners)
    return f'<polygon points="{points}" fill="{color}"/>'


def line_chart(series: dict[str, list[tuple[int, float]]], width: int = 640, height: int = 300) -> str:
    """An inline SVG chart of accuracy (0..1) against iteration, one line per series. Each series has its own
    colour, dash pattern and marker shape, and series that share a point are drawn side by side there (a few
    pixels apart), so a curve never hides under another (e.g. every group at 100%). The legend runs below the
    plot, one row per series, so long labels are never cut off."""
    pad_l, pad_r, pad_t, pad_b = 48, 24, 16, 36
    xs = [x for pts in series.values() for x, _ in pts] or [0]
    x_max = max(max(xs), 1)
    n = len(series)
    spread = min(4.0, (width - pad_l - pad_r) / x_max / (4 * max(n, 1)))  # offset between series sharing a point

    def sx(x: float, k: int) -> float:
        return pad_l + (width - pad_l - pad_r) * x / x_max + (k - (n - 1) / 2) * spread

    def sy(y: float) -> float:
        return pad_t + (height - pad_t - pad_b) * (1 - y)

    total = height + LEGEND_ROW * n + 8
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{total}" '
             f'viewBox="0 0 {width} {total}" role="img" aria-label="held-out accuracy by iteration" '
             'font-family="system-ui,sans-serif">']
    for i in range(0, 11, 2):
        y = sy(i / 10)
        parts.append(f'<line x1="{pad_l}" y1="{y:.1f}" x2="{width - pad_r}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{pad_l - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{i * 10}%</text>')
    for x in range(0, x_max + 1):
        parts.append(f'<text x="{sx(x, (n - 1) / 2):.1f}" y="{height - pad_b + 16}" font-size="11" '
                     f'text-anchor="middle">{x}</text>')
    parts.append(f'<text x="{(pad_l + width - pad_r) / 2:.0f}" y="{height - 4}" font-size="12" '
                 f'text-anchor="middle">iteration</text>')
    for k, (name, pts) in enumerate(series.items()):
        color, dash = PALETTE[k % len(PALETTE)], DASHES[k % len(DASHES)]
        stroke = 2.5 if k == 0 else 1.5
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        path = " ".join(f"{sx(x, k):.1f},{sy(y):.1f}" for x, y in pts)
        parts.append(f'<g class="series" data-series="{html.escape(name)}">'
                     f'<polyline fill="none" stroke="{color}" stroke-width="{stroke}"{dash_attr} points="{path}"/>')
        parts.extend(_marker(k % 4, sx(x, k), sy(y), color) for x, y in pts)
        parts.append("</g>")
        ly = height + 6 + LEGEND_ROW * k
        parts.append(f'<g class="legend"><line x1="{pad_l}" y1="{ly:.1f}" x2="{pad_l + 28}" y2="{ly:.1f}" '
                     f'stroke="{color}" stroke-width="{stroke}"{dash_attr}/>{_marker(k % 4, pad_l + 14, ly, color)}'
                     f'<text x="{pad_l + 36}" y="{ly + 4:.1f}" font-size="12">{html.escape(name)}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def group_label(group: str) -> str:
    """A class of questions as the chart names it: digit-count groups read "1 digit", "2 digits"."""
    if group.isdigit():
        return f"{group} digit" if group == "1" else f"{group} digits"
    return group


ARM_LABELS = {"star": "STaR", "no_rationalization": "STaR without rationalization",
              "seed_control": "control: seed set, same steps"}


def comparison_html(arms: dict[str, list[IterationRecord]]) -> str:
    """The paper's Figure 4 in miniature: held-out accuracy of STaR and its baselines by iteration."""
    series = {ARM_LABELS.get(k, k): [(r.iteration, r.eval_accuracy) for r in h] for k, h in arms.items()}
    iterations = sorted({r.iteration for h in arms.values() for r in h})
    head = "".join(f"<th>{html.escape(ARM_LABELS.get(k, k))}</th>" for k in arms)
    rows = []
    for n in iterations:
        cells = []
        for h in arms.values():
            acc = next((r.eval_accuracy for r in h if r.iteration == n), None)
            cells.append(f"<td>{acc:.1%}</td>" if acc is not None else "<td>–</td>")
        steps = next((r.train_steps for r in arms.get("star", []) if r.iteration == n), 0)
        rows.append(f"<tr><td>{n}</td>{''.join(cells)}<td>{steps}</td></tr>")
    return (
        "<h2>STaR against its baselines</h2>"
        f"{line_chart(series)}"
        f"<table><tr><th>iteration</th>{head}<th>train steps (each arm)</th></tr>{''.join(rows)}</table>"
    )


def render_html(title: str, history: list[IterationRecord], arms: dict[str, list[IterationRecord]] | None = None,
                note: str = "") -> str:
    series: dict[str, list[tuple[int, float]]] = {"overall": [(r.iteration, r.eval_accuracy) for r in history]}
    groups = sorted({g for r in history for g in r.eval_accuracy_by_group}, key=lambda g: (len(g), g))
    if len(groups) > 1:
        for g in groups:
            series[group_label(g)] = [(r.iteration, r.eval_accuracy_by_group[g]) for r in history
                             if g in r.eval_accuracy_by_group]
    rows = []
    for r in history:
        share_g = r.solved_by_generation / r.train_questions if r.train_questions else 0.0
        share_r = r.solved_by_rationalization / r.train_questions if r.train_questions else 0.0
        loss = f"{r.train_loss:.4f}" if r.train_loss is not None else "–"
        trained = (f"{share_g:.1%} + {share_r:.1%}" if r.iteration else "–")
        rows.append(
            f"<tr><td>{r.iteration}</td><td><b>{r.eval_accuracy:.1%}</b></td><td>{trained}</td>"
            f"<td>{r.train_examples}</td><td>{r.train_steps}</td><td>{loss}</td></tr>"
        )
    samples = []
    for r in history:
        for s in r.samples:
            mark = "✓" if s.correct else "✗"
            samples.append(
                f"<details><summary>iteration {r.iteration} · {html.escape(s.group)} · {mark} "
                f"prediction {html.escape(str(s.prediction))}</summary><pre>{html.escape(s.prompt)}"
                f"<b>{html.escape(s.completion)}</b></pre></details>"
            )
    style = ("body{font-family:system-ui,sans-serif;max-width:920px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}"
             "pre{background:#f6f6f6;padding:8px;overflow:auto}")
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>"
        f"{f'<p><b>{html.escape(note)}</b></p>' if note else ''}"
        f"{comparison_html(arms) if arms else ''}"
        "<h2>Held-out accuracy by iteration</h2>"
        f"{line_chart(series)}"
        "<h2>Iterations</h2><table><tr><th>iteration</th><th>held-out accuracy</th>"
        "<th>train questions solved (generation + rationalization)</th><th>kept rationales</th>"
        f"<th>train steps</th><th>train loss</th></tr>{''.join(rows)}</table>"
        f"<h2>Sample rationales (held-out)</h2>{''.join(samples) or '<p>none</p>'}</body></html>"
    )
