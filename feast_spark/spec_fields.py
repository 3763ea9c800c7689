"""Checks of a job spec's JSON fields: each bad value refused in one line naming its field.

Shared by :mod:`feast_spark.specs` (the document) and :mod:`feast_spark.job_options` (each job
type's options); every error is a :class:`~feast_spark.errors.JobSpecError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from feast_spark.errors import FeastSparkError, JobSpecError
from feast_spark.online_store_config import (
    CassandraOnlineStoreConfig,
    OnlineStoreConfig,
    SqliteOnlineStoreConfig,
    parse_online_store_mapping,
)


def is_number(value: object) -> bool:
    """Whether ``value`` is an int or float (a bool is not a number here)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def text_field(value: object, name: str) -> str:
    """``value`` if it is a non-empty string; else a JobSpecError naming ``name``."""
    if not isinstance(value, str) or not value.strip():
        raise JobSpecError(name, f"{value!r}; give a non-empty string")
    return value


def tuple_field(values: object, kind: type, name: str) -> None:
    """Refuse ``values`` unless it is a tuple of ``kind`` (JobSpecError naming ``name``)."""
    if not isinstance(values, tuple) or not all(isinstance(v, kind) for v in values):
        raise JobSpecError(name, f"{values!r}; give a tuple of {kind.__name__}")


def list_field(value: object, name: str) -> list[Any]:
    """``value`` if it is a list; else a JobSpecError naming ``name``."""
    if not isinstance(value, list):
        raise JobSpecError(name, f"{value!r}; give a list")
    return value


def known_keys(data: object, name: str, keys: frozenset[str] | set[str]) -> Mapping[str, Any]:
    """``data`` as a mapping of known keys only (an unknown key is a field of another version)."""
    if not isinstance(data, Mapping):
        raise JobSpecError(name, f"{data!r}; give a JSON object")
    unknown = sorted(set(data) - set(keys))
    if unknown:
        where = "" if name == "<document>" else f"{name}."
        raise JobSpecError(f"{where}{unknown[0]}", f"unknown; known: {', '.join(sorted(keys))}")
    return data


def check_online_store(value: object) -> None:
    """Refuse anything but an online store config (an options class's ``online_store``)."""
    if not isinstance(value, SqliteOnlineStoreConfig | CassandraOnlineStoreConfig):
        raise JobSpecError("options.online_store", f"{value!r} is not an online store config")


def online_store_option(options: Mapping[str, Any]) -> OnlineStoreConfig:
    """The ``online_store`` of a job's options, validated as feature_store.yaml's is."""
    store = required(options, "online_store", "options")
    if not isinstance(store, Mapping):
        raise JobSpecError("options.online_store", f"{store!r}; give the store's settings")
    return parse_online_store_mapping(store, source="the job spec")


def required(data: Mapping[str, Any], key: str, section: str = "") -> Any:
    """``data[key]``; a JobSpecError naming ``section.key`` when it is missing."""
    if key not in data:
        raise JobSpecError(f"{section}.{key}" if section else key, "missing")
    return data[key]


def parsed_field(name: str, parse: Any, value: Any) -> Any:
    """``parse(value)``, a definition error reported against the spec field ``name``."""
    if not isinstance(value, Mapping):
        raise JobSpecError(name, f"{value!r}; give a JSON object")
    try:
        return parse(value)
    except JobSpecError:
        raise
    except (FeastSparkError, TypeError, ValueError) as error:
        raise JobSpecError(name, str(error)) from None


def instant_field(value: Any, field_name: str) -> datetime | None:
    """An ISO-8601 instant (no offset means UTC), or None; else a JobSpecError."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise JobSpecError(field_name, f"{value!r} is not an ISO-8601 instant") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
