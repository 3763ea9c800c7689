"""Rendering for the CLI: aligned human tables or JSON.

JSON has one shape everywhere: a listing prints a list of objects, a describe (or a command that
started a job) prints one object, and every instant is ISO-8601 UTC with microseconds
(``2024-01-01T00:00:00.000000+00:00``), whichever part of the system recorded it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import click

# An instant as Python's isoformat() writes it, with any precision and a UTC or other offset.
_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})$")
# Keys whose values are instants: *_at stamps and window bounds.
_INSTANT_KEYS = re.compile(r"^(.*_at|start|end|materialized_until)$")


def json_document(data: Any, key: str = "") -> Any:
    """``data`` with every instant (a datetime, or an ISO string under an instant key) alike."""
    if isinstance(data, datetime):
        moment = data if data.tzinfo else data.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(data, str) and _INSTANT_KEYS.match(key) and _INSTANT.match(data):
        return json_document(datetime.fromisoformat(data))
    if isinstance(data, dict):
        return {k: json_document(v, str(k)) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [json_document(item, key) for item in data]
    return data


def emit_json(data: Any) -> None:
    """Print ``data`` as indented JSON, instants in one form (see :func:`json_document`)."""
    click.echo(json.dumps(json_document(data), indent=2, sort_keys=True, default=str))


def emit_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print rows as a left-aligned table with a header line."""
    cells = [[str(h).upper() for h in headers]] + [
        ["" if c is None else str(c) for c in r] for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def cell(value: object) -> str:
    """A table cell: ``-`` for a missing value."""
    return "-" if value is None else str(value)
