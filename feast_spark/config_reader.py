"""Typed, located reads of ``feature_store.yaml`` values for :mod:`feast_spark.config`.

Every accessor raises a :class:`~feast_spark.errors.ConfigError` naming the key, the value, the
fix, and where the value came from: the file, or the environment variable that overrode it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, TypeVar

from feast_spark import storage
from feast_spark.definitions.names import check_name
from feast_spark.errors import ArgumentError, ConfigError, DefinitionError

# The registry, the job store and the staging location are read and written through
# feast_spark.storage (pyarrow.fs), not only through Spark: only its schemes are accepted.
ARROW_SCHEMES = storage.SCHEMES
_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")

T = TypeVar("T")


def resolve_location(value: str, base: Path) -> str:
    """Resolve a relative local path against the config folder; leave URIs alone.

    A ``file:`` URI keeps its scheme (on a cluster a bare path may mean HDFS), made absolute if
    it is relative (Hadoop's ``file:data``).
    """
    if storage.is_uri(value):
        return value
    if value.startswith("file:"):
        path = value[len("file:") :]
        return value if path.startswith("/") else "file:" + storage.absolute_path(path, base)
    return storage.absolute_path(value, base)


class ConfigReader:
    """Typed accessors that raise ConfigError naming the key, the value and the file."""

    def __init__(self, source: str, origins: Mapping[str, str]) -> None:
        self.source = source
        self.origins = origins

    def origin(self, key: str) -> str:
        """Where ``key``'s value came from: an environment variable or the file."""
        parts = key.split(".")
        for depth in range(len(parts), 0, -1):  # the key itself, then its sections
            found = self.origins.get(".".join(parts[:depth]))
            if found is not None:
                return found
        return self.source

    def fail(self, key: str, value: Any, reason: str) -> ConfigError:
        """The error for ``key``, blamed on where its value came from."""
        return ConfigError(key, value, self.origin(key), reason)

    def _arrow_location(self, value: Any, key: str, base: Path) -> str:
        text = self.string(value, key)
        match = _URI.match(text)
        if match is not None:
            scheme = match.group(0)[:-3].lower()
            if scheme not in ARROW_SCHEMES:
                raise self.fail(
                    key,
                    text,
                    f"unknown file system '{scheme}://'; use a local path or a URI of "
                    + ", ".join(f"{s}://" for s in ARROW_SCHEMES if s != "file"),
                )
        try:
            storage.local_path(text)  # a file:// URI naming another machine
        except ArgumentError as error:
            raise self.fail(key, text, error.reason) from None
        return resolve_location(text, base)

    def file_location(self, value: Any, key: str, base: Path) -> str:
        """A file's path or URI, refused when it is a local folder."""
        location = self._arrow_location(value, key, base)
        local = storage.local_path(location)
        if local is not None and Path(local).is_dir():
            raise self.fail(
                key,
                value,
                f"is a folder; name a file in it, e.g. {local.rstrip('/')}/registry.json",
            )
        return location

    def folder_location(self, value: Any, key: str, base: Path) -> str:
        """A folder's path or URI, refused when it is a local file."""
        location = self._arrow_location(value, key, base)
        local = storage.local_path(location)
        if local is not None and Path(local).is_file():
            raise self.fail(key, value, "is a file; name a folder (it is created if missing)")
        return location

    def section(
        self,
        data: Any,
        key: str,
        *,
        required: Collection[str] = (),
        optional: Collection[str] = (),
        allow_extra: bool = False,
    ) -> dict[str, Any]:
        """A mapping; unknown keys (unless ``allow_extra``) and missing required ones refused."""
        if not isinstance(data, Mapping):
            raise self.fail(key or "<file>", data, "must be a mapping of keys to values")
        prefix = f"{key}." if key else ""
        if not allow_extra:
            for name in data:
                if name not in required and name not in optional:
                    known = ", ".join(sorted({*required, *optional}))
                    raise self.fail(f"{prefix}{name}", data[name], f"unknown key; known: {known}")
        for name in sorted(required):
            if name not in data or data[name] is None:
                raise self.fail(f"{prefix}{name}", None, "required key is missing")
        return dict(data)

    def _typed(self, value: Any, key: str, kind: type[T], what: str) -> T:
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise self.fail(key, value, f"must be {what}")
        return value

    def string(self, value: Any, key: str) -> str:
        """A non-empty string."""
        text = self._typed(value, key, str, "a string")
        if not text:
            raise self.fail(key, value, "must not be empty")
        return text

    def optional_string(self, value: Any, key: str) -> str | None:
        """A non-empty string, or None."""
        return None if value is None else self.string(value, key)

    def boolean(self, value: Any, key: str) -> bool:
        """``true`` or ``false``."""
        return self._typed(value, key, bool, "true or false")

    def integer(self, value: Any, key: str, low: int, high: int) -> int:
        """A whole number in ``[low, high]``."""
        number = self._typed(value, key, int, "a whole number")
        if not low <= number <= high:
            raise self.fail(key, value, f"must be between {low} and {high}")
        return number

    def number(self, value: Any, key: str) -> float:
        """A finite positive number."""
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value <= 0
        ):
            raise self.fail(key, value, "must be a positive number")
        return float(value)

    def choice(self, value: Any, key: str, choices: tuple[str, ...]) -> str:
        """One of ``choices``."""
        if not (isinstance(value, str) and value in choices):
            raise self.fail(key, value, f"must be one of {', '.join(choices)}")
        return str(value)


def identifier(value: Any, key: str, reader: ConfigReader) -> str:
    """A project or keyspace name (``[a-z_][a-z0-9_]*``, at most 48 characters)."""
    try:
        return check_name(key, value)
    except DefinitionError as error:
        raise reader.fail(key, value, error.reason) from None
