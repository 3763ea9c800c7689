"""Feature statistics side by side: as table rows (the CLI) and as a self-contained HTML page.

The page has, per feature, its figures per ingest and a small inline SVG drawn here (no plotting
library, no script, no external file): for a numeric feature one box per ingest (q25 to q75, the
median across it, whiskers from q01 to q99); for any other feature one bar per ingest, its null
fraction. Ingests whose feature was flagged (:func:`~feast_spark.statistics.drift_flags`) are
drawn in red.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from feast_spark.statistics import DriftFlag, FeatureStatistics, IngestStatistics

_WIDTH_PER_INGEST = 56
_HEIGHT = 150
_MARGIN = 24
_FLAGGED = "#c0392b"
_NORMAL = "#2c6fbb"


def feature_names(history: Sequence[IngestStatistics]) -> list[str]:
    """Every feature of ``history``, latest ingest's order first, then older ones' leftovers."""
    names: list[str] = []
    for ingest in reversed(history):
        names += [f.name for f in ingest.features if f.name not in names]
    return names


def header_rows(history: Sequence[IngestStatistics]) -> list[list[str]]:
    """Rows describing the ingests themselves (job, start, mode, rows)."""
    return [
        ["", "job", *[s.job_id for s in history]],
        ["", "ingested_at", *[s.ingested_at.isoformat(timespec="seconds") for s in history]],
        ["", "mode", *[s.mode for s in history]],
        ["", "rows", *[str(s.rows) for s in history]],
    ]


def figure_rows(history: Sequence[IngestStatistics], name: str) -> list[list[str]]:
    """Rows of one feature's figures, one column per ingest (``-`` where it had none).

    Example::

        trips  nulls      0 (0.0%)    12 (1.2%)
        trips  min..max   0 .. 99     0 .. 120
        trips  mean       49.5        61.2
        trips  q25/50/75  24/49/74    30/60/90
    """
    cells: dict[str, list[str]] = {}
    for ingest in history:
        feature = ingest.feature(name)
        for label, value in _figures(ingest, feature):
            cells.setdefault(label, []).append(value)
    return [[name, label, *values] for label, values in cells.items()]


def _figures(ingest: IngestStatistics, feature: FeatureStatistics | None) -> list[tuple[str, str]]:
    if feature is None:
        return [(label, "-") for label in ("nulls", "min..max", "mean", "q25/50/75")]
    fraction = feature.null_fraction
    nulls = f"{feature.nulls}" + ("" if fraction is None else f" ({fraction:.1%})")
    if feature.non_finite:
        nulls += f" +{feature.non_finite} NaN/inf"
    unit = "" if feature.measure == "value" else f" ({feature.measure})"
    quartiles = [ingest.quantile(feature, p) for p in (0.25, 0.5, 0.75)]
    return [
        ("nulls", nulls),
        (f"min..max{unit}", f"{_text(feature.min)} .. {_text(feature.max)}"),
        (f"mean{unit}", _text(feature.mean)),
        ("q25/50/75", "/".join(_text(q) for q in quartiles) if quartiles[1] is not None else "-"),
    ]


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def render_html(table: str, history: Sequence[IngestStatistics], flags: Sequence[DriftFlag]) -> str:
    """A self-contained HTML page: per feature, its figures per ingest and a plot."""
    title = f"Feature statistics: {table}"
    parts = [
        "<!DOCTYPE html>",
        f'<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>',
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}"
        ".flag{color:#c0392b}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if not history:
        parts.append("<p>No ingest recorded statistics yet.</p>")
    versions = [f"v{s.version}" for s in history]
    parts.append(_html_table(["", "", *versions], header_rows(history)))
    if flags:
        parts.append("<h2>Flags</h2><ul>")
        parts += [
            f'<li class="flag">{html.escape(f.feature)} v{f.version} (against '
            f"v{f.previous_version}): {html.escape(f.detail)}</li>"
            for f in flags
        ]
        parts.append("</ul>")
    for name in feature_names(history):
        flagged = {f.version for f in flags if f.feature == name}
        parts.append(f"<h2>{html.escape(name)}</h2>")
        parts.append(_svg(history, name, flagged))
        parts.append(_html_table(["", "", *versions], figure_rows(history, name)))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _html_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _svg(history: Sequence[IngestStatistics], name: str, flagged: set[int]) -> str:
    """Boxes of the quantiles per ingest (numeric), else bars of the null fraction."""
    width = _MARGIN * 2 + _WIDTH_PER_INGEST * max(len(history), 1)
    shapes: list[str] = []
    boxes = [(s, s.feature(name)) for s in history]
    spans: list[tuple[float, float]] = []
    for ingest, feature in boxes:
        low, high = _quantiles(ingest, feature, (0.01, 0.99))
        if low is not None and high is not None:
            spans.append((low, high))
    if spans:
        bottom = min(low for low, _ in spans)
        top = max(high for _, high in spans)
        label = (f"{bottom:.4g}", f"{top:.4g}")
    else:
        bottom, top, label = 0.0, 1.0, ("0%", "100% null")
    scale = (_HEIGHT - 2 * _MARGIN) / ((top - bottom) or 1.0)

    def y(value: float) -> float:
        return round(_HEIGHT - _MARGIN - (value - bottom) * scale, 1)

    for i, (ingest, feature) in enumerate(boxes):
        x = _MARGIN + i * _WIDTH_PER_INGEST + _WIDTH_PER_INGEST / 2
        color = _FLAGGED if ingest.version in flagged else _NORMAL
        shapes.append(
            f'<text x="{x}" y="{_HEIGHT - 6}" font-size="10" text-anchor="middle">'
            f"v{ingest.version}</text>"
        )
        if feature is None:
            continue
        if spans and feature.quantiles:
            q = [ingest.quantile(feature, p) or 0.0 for p in (0.01, 0.25, 0.5, 0.75, 0.99)]
            shapes += [
                f'<line x1="{x}" x2="{x}" y1="{y(q[0])}" y2="{y(q[4])}" stroke="{color}"/>',
                f'<rect x="{x - 12}" y="{y(q[3])}" width="24" height="{y(q[1]) - y(q[3])}" '
                f'fill="white" stroke="{color}"/>',
                f'<line x1="{x - 12}" x2="{x + 12}" y1="{y(q[2])}" y2="{y(q[2])}" '
                f'stroke="{color}" stroke-width="2"/>',
            ]
        elif not spans and feature.null_fraction is not None:
            top_y = y(feature.null_fraction)
            shapes.append(
                f'<rect x="{x - 12}" y="{top_y}" width="24" '
                f'height="{round(_HEIGHT - _MARGIN - top_y, 1)}" fill="{color}"/>'
            )
    shapes += [
        f'<text x="2" y="{_HEIGHT - _MARGIN}" font-size="10">{html.escape(label[0])}</text>',
        f'<text x="2" y="{_MARGIN - 4}" font-size="10">{html.escape(label[1])}</text>',
    ]
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{_HEIGHT}" '
        f'role="img" aria-label="{html.escape(name)}">' + "".join(shapes) + "</svg>"
    )


def _quantiles(
    ingest: IngestStatistics, feature: FeatureStatistics | None, probabilities: Sequence[float]
) -> list[float | None]:
    if feature is None:
        return [None for _ in probabilities]
    return [ingest.quantile(feature, p) for p in probabilities]
