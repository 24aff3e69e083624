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


def line_chart(series: dict[str, list[tuple[int, float]]], width: int = 640, height: int = 320) -> str:
    """An inline SVG chart of accuracy (0..1) against iteration, one line per series."""
    pad_l, pad_r, pad_t, pad_b = 48, 130, 16, 36
    xs = [x for pts in series.values() for x, _ in pts] or [0]
    x_max = max(max(xs), 1)

    def sx(x: float) -> float:
        return pad_l + (width - pad_l - pad_r) * x / x_max

    def sy(y: float) -> float:
        return pad_t + (height - pad_t - pad_b) * (1 - y)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="held-out accuracy by iteration">']
    for i in range(0, 11, 2):
        y = sy(i / 10)
        parts.append(f'<line x1="{pad_l}" y1="{y:.1f}" x2="{width - pad_r}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{pad_l - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{i * 10}%</text>')
    for x in range(0, x_max + 1):
        parts.append(f'<text x="{sx(x):.1f}" y="{height - pad_b + 16}" font-size="11" text-anchor="middle">{x}</text>')
    parts.append(f'<text x="{(pad_l + width - pad_r) / 2:.0f}" y="{height - 4}" font-size="12" '
                 f'text-anchor="middle">iteration</text>')
    for k, (name, pts) in enumerate(series.items()):
        color = PALETTE[k % len(PALETTE)]
        stroke = 3 if k == 0 else 1.5
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="{stroke}" points="{path}"/>')
        for x, y in pts:
            parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{color}"/>')
        ly = pad_t + 14 + 16 * k
        parts.append(f'<rect x="{width - pad_r + 10}" y="{ly - 9}" width="10" height="10" fill="{color}"/>')
        parts.append(f'<text x="{width - pad_r + 26}" y="{ly}" font-size="12">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


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
            label = f"{g} digits" if g.isdigit() else g
            series[label] = [(r.iteration, r.eval_accuracy_by_group[g]) for r in history
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
