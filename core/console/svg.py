"""The overview's chart, drawn on the server as SVG (no script, nothing fetched):
records accepted and rejected per hour, as bars side by side."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup, escape

WIDTH, HEIGHT, PAD = 720, 180, 28


def timeline_chart(points: list[dict[str, Any]]) -> Markup:
    """An <svg> of `points` ({hour, accepted, rejected}), with a title per bar."""
    top = max([1] + [max(p["accepted"], p["rejected"]) for p in points])
    slot = (WIDTH - 2 * PAD) / max(1, len(points))
    bar = max(1.0, slot / 2 - 1)
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             f'aria-label="records accepted and rejected per hour, last {len(points)} hours">',
             f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" class="axis"/>',
             f'<text x="{PAD}" y="14" class="label">{top}</text>']
    for i, p in enumerate(points):
        x = PAD + i * slot
        hour = datetime.fromtimestamp(p["hour"], UTC).strftime("%H:00")
        for j, kind in enumerate(("accepted", "rejected")):
            h = (HEIGHT - 2 * PAD) * p[kind] / top
            parts.append(f'<rect class="{kind}" x="{x + j * bar:.1f}" y="{HEIGHT - PAD - h:.1f}" '
                         f'width="{bar:.1f}" height="{h:.1f}"><title>{escape(hour)} UTC: {p[kind]} {kind}'
                         f'</title></rect>')
        if i % 4 == 0:
            parts.append(f'<text x="{x:.1f}" y="{HEIGHT - 8}" class="label">{escape(hour)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
