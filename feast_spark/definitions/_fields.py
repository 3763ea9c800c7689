"""Helpers shared by the definitions' ``from_dict`` readers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from feast_spark.errors import DefinitionError


def check_keys(
    kind: str, name: str, data: Mapping[str, Any], required: set[str], optional: set[str]
) -> None:
    """Raise a DefinitionError naming unknown or missing keys of a definition document."""
    unknown = sorted(set(data) - required - optional)
    if unknown:
        known = ", ".join(sorted(required | optional))
        raise DefinitionError(kind, name, f"unknown key(s) {', '.join(unknown)}; known: {known}")
    missing = sorted(required - set(data))
    if missing:
        raise DefinitionError(kind, name, f"missing required key(s) {', '.join(missing)}")


def string_map(kind: str, name: str, field: str, value: object) -> dict[str, str]:
    """Validate a ``{str: str}`` mapping such as labels or field_mapping."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise DefinitionError(kind, name, f"{field} must map strings to strings, got {value!r}")
    return dict(value)


def optional_string(kind: str, name: str, field: str, value: object) -> str | None:
    """Validate an optional string field."""
    if value is None or isinstance(value, str):
        return value or None
    raise DefinitionError(kind, name, f"{field} must be a string, got {value!r}")
