"""Charts drawn on the server as SVG: small, with no script and no library, and
readable at any width (a viewBox scaled to its box)."""

from __future__ import annotations

from markupsafe import Markup, escape

WIDTH, HEIGHT = 600, 120
# Colour-blind-safe categorical palette (Okabe and Ito).
PALETTE = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000"]


def colors(names: list[str]) -> dict[str, str]:
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def stacked_bars(
    series: dict[str, list[float]], *, colors: dict[str, str], minutes_per_bar: int
) -> Markup:
    """A bar per bucket, one colour per series stacked, with its largest total
    on the axis and each piece's value in its tooltip. Empty: a flat line."""
    if not series:
        return Markup(
            f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="nothing">'
            f'<line x1="0" y1="{HEIGHT - 1}" x2="{WIDTH}" y2="{HEIGHT - 1}" stroke="#d0d5dd"/>'
            f'<text x="4" y="{HEIGHT / 2}">nothing in this window</text></svg>'
        )
    buckets = len(next(iter(series.values())))
    totals = [sum(values[i] for values in series.values()) for i in range(buckets)]
    top = max(totals) or 1
    width = WIDTH / buckets
    bars = []
    for i in range(buckets):
        y = float(HEIGHT)
        for name, values in series.items():
            if not values[i]:
                continue
            height = values[i] / top * (HEIGHT - 14)
            y -= height
            ago = (buckets - i) * minutes_per_bar
            bars.append(
                f'<rect x="{i * width:.2f}" y="{y:.2f}" width="{max(width - 0.5, 0.5):.2f}"'
                f' height="{height:.2f}" fill="{colors[name]}">'
                f"<title>{escape(name)}: {_number(values[i])}/min, {ago} min ago</title></rect>"
            )
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img"'
        f' aria-label="largest {_number(top)} per minute">'
        f'<line x1="0" y1="{HEIGHT - 0.5}" x2="{WIDTH}" y2="{HEIGHT - 0.5}" stroke="#d0d5dd"/>'
        f'<text x="2" y="10">{_number(top)}/min</text>{"".join(bars)}</svg>'
    )
