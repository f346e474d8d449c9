"""The judge's picture: a metric's canary and baseline samples as two histograms on one axis, as an SVG (shown by
the Prefect UI as an image artifact, from a data: URL) and as text bars (in the markdown report, readable in any
UI, log or terminal). Pure: numbers in, text out.
"""

from __future__ import annotations

import base64
import statistics
from html import escape

BINS = 16
WIDTH, HEIGHT, PAD = 640, 260, 40
COLORS = {"canary": "#e8702a", "baseline": "#2a7be8"}


def histogram(values: list[float], low: float, high: float, bins: int = BINS) -> list[int]:
    """Counts per equal-width bin over [low, high]; the top edge belongs to the last bin."""
    counts = [0] * bins
    width = (high - low) / bins or 1.0
    for v in values:
        counts[min(bins - 1, max(0, int((v - low) / width)))] += 1
    return counts


def _range(sets: dict[str, list[float]]) -> tuple[float, float]:
    values = [v for vs in sets.values() for v in vs]
    if not values:
        return 0.0, 1.0
    low, high = min(values), max(values)
    return (low, high) if high > low else (low - 0.5, high + 0.5)


def svg(metric: str, unit: str, sets: dict[str, list[float]]) -> str:
    """Side-by-side histogram bars per bin (canary orange, baseline blue), each set's median as a dashed line."""
    low, high = _range(sets)
    counts = {name: histogram(vs, low, high) for name, vs in sets.items()}
    top = max([c for cs in counts.values() for c in cs] + [1])
    plot_w, plot_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD
    slot = plot_w / BINS
    bar = slot / max(1, len(sets)) * 0.9
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
             f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
             f'<text x="{PAD}" y="20" font-size="14">{escape(metric)}: canary vs baseline ({len(sets.get("canary", []))}'
             f' / {len(sets.get("baseline", []))} samples)</text>',
             f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="black"/>']
    for k, (name, cs) in enumerate(counts.items()):
        for i, c in enumerate(cs):
            h = plot_h * c / top
            x = PAD + i * slot + k * bar
            parts.append(f'<rect x="{x:.1f}" y="{HEIGHT - PAD - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                         f'fill="{COLORS.get(name, "gray")}" fill-opacity="0.85"/>')
        if sets[name]:
            mx = PAD + plot_w * (statistics.median(sets[name]) - low) / (high - low)
            parts.append(f'<line x1="{mx:.1f}" y1="{PAD}" x2="{mx:.1f}" y2="{HEIGHT - PAD}" '
                         f'stroke="{COLORS.get(name, "gray")}" stroke-dasharray="4 3"/>')
        parts.append(f'<text x="{WIDTH - PAD - 150}" y="{PAD + 16 * k}" fill="{COLORS.get(name, "gray")}">'
                     f'{name}: median {_median(sets[name])}</text>')
    parts += [f'<text x="{PAD}" y="{HEIGHT - PAD + 16}">{low:.4g} {escape(unit)}</text>',
              f'<text x="{WIDTH - PAD}" y="{HEIGHT - PAD + 16}" text-anchor="end">{high:.4g} {escape(unit)}</text>',
              "</svg>"]
    return "".join(parts)


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.4g}" if values else "-"


def data_url(svg_text: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg_text.encode()).decode()


def text_bars(metric: str, unit: str, sets: dict[str, list[float]], width: int = 30) -> str:
    """The same histogram as text: one line per bin, `#` for the canary, `=` for the baseline."""
    low, high = _range(sets)
    canary, baseline = histogram(sets.get("canary", []), low, high), histogram(sets.get("baseline", []), low, high)
    top = max(canary + baseline + [1])
    step = (high - low) / BINS
    lines = [f"{metric} ({unit}): canary # (n={len(sets.get('canary', []))}, median "
             f"{_median(sets.get('canary', []))}), baseline = (n={len(sets.get('baseline', []))}, median "
             f"{_median(sets.get('baseline', []))})"]
    for i in range(BINS):
        c, b = round(width * canary[i] / top), round(width * baseline[i] / top)
        lines.append(f"{low + i * step:>9.4g} |{'#' * c:<{width}}|{'=' * b:<{width}}| {canary[i]:>3} {baseline[i]:>3}")
    return "\n".join(lines)
