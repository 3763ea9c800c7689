"""Batch sources: where a feature table's raw rows come from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from feast_spark.definitions._fields import check_keys, optional_string, string_map
from feast_spark.errors import DefinitionError

_KIND = "source"

#: How the source spells its event and created timestamps.
TIMESTAMP_FORMATS = ("native", "iso8601", "epoch_seconds", "epoch_millis", "epoch_micros")
FILE_FORMATS = ("parquet", "csv", "json")

_COMMON_REQUIRED = {"type", "path", "event_timestamp_column"}
_COMMON_OPTIONAL = {
    "created_timestamp_column",
    "date_partition_column",
    "field_mapping",
    "timestamp_format",
    "options",
}


@dataclass(frozen=True, kw_only=True)
class BatchSource:
    """Fields every batch source has.

    Attributes:
        path: A path, glob or Hadoop-compatible URI (local, s3a://, hdfs://, abfss://, gs://).
        event_timestamp_column: Source column holding each row's event time.
        created_timestamp_column: Optional source column holding when the row was written;
            it breaks ties between rows with the same event time.
        date_partition_column: Optional source partition column (``yyyy-MM-dd`` or a date)
            used to prune the files read for a time window.
        field_mapping: ``{feast name: source column}`` renames applied when reading.
        timestamp_format: How the timestamp columns are spelled: ``native`` (a timestamp type),
            ``iso8601`` strings, or ``epoch_seconds``/``epoch_millis``/``epoch_micros`` numbers.
        options: Extra Spark reader options (e.g. ``header: "true"`` for csv).

    """

    type_name: ClassVar[str] = ""

    path: str
    event_timestamp_column: str
    created_timestamp_column: str | None = None
    date_partition_column: str | None = None
    field_mapping: Mapping[str, str] = field(default_factory=dict)
    timestamp_format: str = "native"
    options: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        label = self.path if isinstance(self.path, str) else "?"
        if not isinstance(self.path, str) or not self.path:
            raise DefinitionError(_KIND, label, "path must be a non-empty string")
        if not isinstance(self.event_timestamp_column, str) or not self.event_timestamp_column:
            raise DefinitionError(
                _KIND,
                label,
                "event_timestamp_column is required: name the source column "
                "holding each row's event time",
            )
        for name in ("created_timestamp_column", "date_partition_column"):
            optional_string(_KIND, label, name, getattr(self, name))
        if self.timestamp_format not in TIMESTAMP_FORMATS:
            raise DefinitionError(
                _KIND,
                label,
                f"timestamp_format {self.timestamp_format!r} is unknown; use one of "
                f"{', '.join(TIMESTAMP_FORMATS)}",
            )
        object.__setattr__(
            self, "field_mapping", string_map(_KIND, label, "field_mapping", self.field_mapping)
        )
        object.__setattr__(self, "options", string_map(_KIND, label, "options", self.options))

    def source_column(self, feast_name: str) -> str:
        """The source column that feeds the Feast column ``feast_name``."""
        return self.field_mapping.get(feast_name, feast_name)

    def to_dict(self) -> dict[str, Any]:
        """The source as a JSON/YAML document."""
        return {
            "type": self.type_name,
            "path": self.path,
            "event_timestamp_column": self.event_timestamp_column,
            "created_timestamp_column": self.created_timestamp_column,
            "date_partition_column": self.date_partition_column,
            "field_mapping": dict(self.field_mapping),
            "timestamp_format": self.timestamp_format,
            "options": dict(self.options),
        }

    @classmethod
    def _common_kwargs(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "path": data["path"],
            "event_timestamp_column": data["event_timestamp_column"],
            "created_timestamp_column": data.get("created_timestamp_column"),
            "date_partition_column": data.get("date_partition_column"),
            "field_mapping": data.get("field_mapping") or {},
            "timestamp_format": data.get("timestamp_format") or "native",
            "options": data.get("options") or {},
        }


@dataclass(frozen=True, kw_only=True)
class FileSource(BatchSource):
    """Files in parquet, csv or json.

    Attributes:
        file_format: ``parquet``, ``csv`` or ``json``.

    """

    type_name: ClassVar[str] = "file"

    file_format: str = "parquet"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.file_format not in FILE_FORMATS:
            raise DefinitionError(
                _KIND,
                self.path,
                f"file_format {self.file_format!r} is unknown; "
                f"use one of {', '.join(FILE_FORMATS)}",
            )

    def to_dict(self) -> dict[str, Any]:
        """The source as a JSON/YAML document."""
        return {**super().to_dict(), "file_format": self.file_format}


@dataclass(frozen=True, kw_only=True)
class DeltaSource(BatchSource):
    """An existing Delta Lake table, read at its latest version."""

    type_name: ClassVar[str] = "delta"


def source_from_dict(data: Mapping[str, Any]) -> BatchSource:
    """Build a FileSource or DeltaSource from its document; unknown keys are errors."""
    if not isinstance(data, Mapping):
        raise DefinitionError(_KIND, "?", f"a source must be a mapping, got {data!r}")
    label = str(data.get("path", "?"))
    source_type = data.get("type")
    if source_type == "file":
        check_keys(_KIND, label, data, _COMMON_REQUIRED, _COMMON_OPTIONAL | {"file_format"})
        return FileSource(
            **FileSource._common_kwargs(data), file_format=data.get("file_format") or "parquet"
        )
    if source_type == "delta":
        check_keys(_KIND, label, data, _COMMON_REQUIRED, _COMMON_OPTIONAL)
        return DeltaSource(**DeltaSource._common_kwargs(data))
    raise DefinitionError(_KIND, label, f"type {source_type!r} is unknown; use 'file' or 'delta'")
