"""Small charts as inline SVG drawn on the server: no JavaScript chart library, nothing fetched.

Every label goes through ``escape``; the result is marked safe for templates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

_LINE_COLOURS = ("#1f6feb", "#d1242f", "#1a7f37", "#9a6700")


def confusion_svg(
    matrix: Sequence[Sequence[int]], *, title: str = "Confusion matrix", cell: int = 34
) -> SafeString:
    """Rows are human scores, columns predicted scores; darker cells hold more answers."""
    n = len(matrix)
    if n == 0:
        return mark_safe("")
    peak = max((max(row) for row in matrix if row), default=0) or 1
    left, top = 60, 40
    width, height = left + n * cell + 10, top + n * cell + 40
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="sb-chart sb-confusion" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{left + n * cell / 2}" y="14" text-anchor="middle" font-size="12">'
        "predicted score</text>",
        f'<text x="12" y="{top + n * cell / 2}" font-size="12" text-anchor="middle" '
        f'transform="rotate(-90 12 {top + n * cell / 2})">human score</text>',
    ]
    for j in range(n):
        parts.append(
            f'<text x="{left + j * cell + cell / 2}" y="{top - 6}" text-anchor="middle" '
            f'font-size="11">{j}</text>'
        )
    for i, row in enumerate(matrix):
        y = top + i * cell
        parts.append(
            f'<text x="{left - 8}" y="{y + cell / 2 + 4}" text-anchor="end" font-size="11">{i}</text>'
        )
        for j, count in enumerate(row):
            x = left + j * cell
            shade = count / peak
            fill = f"rgba(31,111,235,{0.08 + 0.85 * shade:.2f})" if count else "#f6f8fa"
            ink = "#fff" if shade > 0.55 else "#222"
            parts.append(
                f'<rect x="{x}" y="{y}" width="{cell - 2}" height="{cell - 2}" fill="{fill}">'
                f"<title>human {i}, predicted {j}: {int(count)}</title></rect>"
                f'<text x="{x + cell / 2 - 1}" y="{y + cell / 2 + 4}" text-anchor="middle" '
                f'font-size="11" fill="{ink}">{int(count)}</text>'
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))


def line_svg(
    series: Mapping[str, Sequence[float]],
    *,
    title: str = "Training curve",
    x_label: str = "epoch",
    width: int = 360,
    height: int = 200,
) -> SafeString:
    """One polyline per named series over x = 1..len; a legend names them."""
    values = [v for points in series.values() for v in points]
    if not values:
        return mark_safe("")
    left, right, top, bottom = 44, 10, 24, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    low, high = min(values), max(values)
    if high == low:
        high = low + 1.0
    longest = max(len(points) for points in series.values())

    def xy(index: int, value: float) -> tuple[float, float]:
        x = left + (plot_w * index / max(1, longest - 1))
        y = top + plot_h * (1 - (value - low) / (high - low))
        return round(x, 1), round(y, 1)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="sb-chart sb-curve" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{escape(title)}</title>",
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="#ccc"/>',
        f'<text x="{left - 4}" y="{top + 4}" text-anchor="end" font-size="10">{high:.3g}</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end" font-size="10">{low:.3g}</text>',
        f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle" '
        f'font-size="11">{escape(x_label)} (1..{longest})</text>',
    ]
    for k, (name, points) in enumerate(series.items()):
        colour = _LINE_COLOURS[k % len(_LINE_COLOURS)]
        coords = " ".join(f"{x},{y}" for x, y in (xy(i, v) for i, v in enumerate(points)))
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{coords}"/>'
        )
        for i, v in enumerate(points):
            x, y = xy(i, v)
            parts.append(
                f'<circle cx="{x}" cy="{y}" r="2.5" fill="{colour}">'
                f"<title>{escape(name)} {x_label} {i + 1}: {v:.4g}</title></circle>"
            )
        parts.append(
            f'<text x="{left + 6 + k * 110}" y="14" font-size="11" fill="{colour}">'
            f"&#9632; {escape(name)}</text>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))


def bar_svg(
    counts: Mapping[str, int], *, title: str = "Score distribution", height: int = 120
) -> SafeString:
    """Vertical bars, one per label, with the count above each."""
    if not counts:
        return mark_safe("")
    bar, gap, top = 26, 8, 16
    peak = max(counts.values()) or 1
    width = len(counts) * (bar + gap) + gap
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="sb-chart sb-bars" role="img" '
        f'width="{width}" height="{height + top + 18}" viewBox="0 0 {width} {height + top + 18}">',
        f"<title>{escape(title)}</title>",
    ]
    for k, (label, count) in enumerate(counts.items()):
        h = round(height * count / peak, 1)
        x = gap + k * (bar + gap)
        parts.append(
            f'<rect x="{x}" y="{top + height - h}" width="{bar}" height="{h}" fill="#1f6feb"/>'
            f'<text x="{x + bar / 2}" y="{top + height - h - 3}" text-anchor="middle" '
            f'font-size="10">{int(count)}</text>'
            f'<text x="{x + bar / 2}" y="{top + height + 13}" text-anchor="middle" '
            f'font-size="11">{escape(label)}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))


def automation_svg(
    curve: Sequence[Mapping[str, float]],
    *,
    chosen: float | None = None,
    title: str = "Answers posted automatically vs their agreement",
    width: int = 360,
    height: int = 220,
) -> SafeString:
    """The agreement-versus-automation curve: x = fraction of answers posted without review
    (confidence at or above a threshold), y = their exact agreement with human scores; the
    point of the ``chosen`` threshold is marked."""
    points = [
        (float(p["auto_fraction"]), float(p["agreement"]), float(p["threshold"]))
        for p in curve
        if all(
            isinstance(p.get(k), (int, float)) and p.get(k) == p.get(k)  # NaN: nothing posted
            for k in ("auto_fraction", "agreement", "threshold")
        )
    ]
    if not points:
        return mark_safe("")
    left, right, top, bottom = 44, 12, 20, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    low = min(0.5, min(a for _, a, _ in points))

    def xy(automated: float, agreement: float) -> tuple[float, float]:
        x = left + plot_w * automated
        y = top + plot_h * (1 - (agreement - low) / max(1e-9, 1.0 - low))
        return round(x, 1), round(y, 1)

    ordered = sorted(points)
    coords = " ".join(f"{x},{y}" for x, y in (xy(a, g) for a, g, _ in ordered))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="sb-chart sb-automation" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{escape(title)}</title>",
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="#ccc"/>',
        f'<text x="{left - 4}" y="{top + 4}" text-anchor="end" font-size="10">1.0</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end" font-size="10">{low:.2f}</text>',
        f'<text x="{left}" y="{top + plot_h + 12}" text-anchor="middle" font-size="10">0%</text>',
        f'<text x="{left + plot_w}" y="{top + plot_h + 12}" text-anchor="middle" '
        'font-size="10">100%</text>',
        f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle" font-size="11">'
        "answers posted without review</text>",
        f'<text x="12" y="{top + plot_h / 2}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 12 {top + plot_h / 2})">exact agreement</text>',
        f'<polyline fill="none" stroke="{_LINE_COLOURS[0]}" stroke-width="2" points="{coords}"/>',
    ]
    for automated, agreement, threshold in ordered:
        x, y = xy(automated, agreement)
        parts.append(
            f'<circle cx="{x}" cy="{y}" r="2" fill="{_LINE_COLOURS[0]}"><title>threshold '
            f"{threshold:.2f}: {automated:.0%} posted, agreement {agreement:.3f}</title></circle>"
        )
    if chosen is not None:
        at = min(points, key=lambda p: abs(p[2] - chosen))
        x, y = xy(at[0], at[1])
        parts.append(
            f'<circle class="sb-chosen" cx="{x}" cy="{y}" r="5" fill="none" '
            f'stroke="{_LINE_COLOURS[1]}" stroke-width="2"><title>review threshold {chosen:.2f}: '
            f"{at[0]:.0%} posted automatically, agreement {at[1]:.3f}</title></circle>"
            f'<text x="{min(x + 8, width - 90)}" y="{max(y - 8, top + 10)}" font-size="10" '
            f'fill="{_LINE_COLOURS[1]}">threshold {chosen:.2f}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))
