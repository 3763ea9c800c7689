"""Reading job spec fields: the checks every options class of :mod:`feast_spark.specs` shares.

Each helper raises :class:`~feast_spark.errors.JobSpecError` naming the spec field and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from feast_spark.errors import FeastSparkError, JobSpecError


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise JobSpecError(name, f"{value!r}; give a non-empty string")
    return value


def _items(values: object, kind: type, name: str) -> None:
    if not isinstance(values, tuple) or not all(isinstance(v, kind) for v in values):
        raise JobSpecError(name, f"{values!r}; give a tuple of {kind.__name__}")


def _list(value: object, name: str) -> list[Any]:
    if not isinstance(value, list):
        raise JobSpecError(name, f"{value!r}; give a list")
    return value


def _mapping(data: object, name: str, keys: frozenset[str] | set[str]) -> Mapping[str, Any]:
    """``data`` as a mapping of known keys only (an unknown key is a field of another version)."""
    if not isinstance(data, Mapping):
        raise JobSpecError(name, f"{data!r}; give a JSON object")
    unknown = sorted(set(data) - set(keys))
    if unknown:
        where = "" if name == "<document>" else f"{name}."
        raise JobSpecError(f"{where}{unknown[0]}", f"unknown; known: {', '.join(sorted(keys))}")
    return data


def _required(data: Mapping[str, Any], key: str, section: str = "") -> Any:
    if key not in data:
        raise JobSpecError(f"{section}.{key}" if section else key, "missing")
    return data[key]


def _field(name: str, parse: Any, value: Any) -> Any:
    """``parse(value)``, a definition error reported against the spec field ``name``."""
    if not isinstance(value, Mapping):
        raise JobSpecError(name, f"{value!r}; give a JSON object")
    try:
        return parse(value)
    except JobSpecError:
        raise
    except (FeastSparkError, TypeError, ValueError) as error:
        raise JobSpecError(name, str(error)) from None


def _instant(value: Any, field_name: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise JobSpecError(field_name, f"{value!r} is not an ISO-8601 instant") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
