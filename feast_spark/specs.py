"""Job specs: the one versioned JSON contract between the launcher and a Spark job.

A spec carries everything a job needs, resolved: the definitions (jobs never read the registry),
the store locations, the window and the job's own options (one validated class per job type,
:data:`OPTIONS_CLASSES` of :mod:`feast_spark.job_options`; field checks in
:mod:`feast_spark.spec_fields`). ``spec_version`` changes whenever a field changes meaning; a job
refuses any other version (the launcher and the job always come from the same release).

Version 2 moved the online store's settings of a materialize job from the spec's top level into
:class:`MaterializeOptions`, typed.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from feast_spark.definitions import Entity, FeatureTable
from feast_spark.definitions.names import check_name
from feast_spark.errors import ArgumentError, DefinitionError, JobSpecError
from feast_spark.job_options import MAINTENANCE_ACTIONS as MAINTENANCE_ACTIONS
from feast_spark.job_options import OPTIONAL_OPTIONS
from feast_spark.job_options import OPTIONS_CLASSES as OPTIONS_CLASSES
from feast_spark.job_options import OUTPUT_FORMATS as OUTPUT_FORMATS
from feast_spark.job_options import PUSH_TARGETS as PUSH_TARGETS
from feast_spark.job_options import STREAM_TARGETS as STREAM_TARGETS
from feast_spark.job_options import AuditOptions as AuditOptions
from feast_spark.job_options import DatasetOptions as DatasetOptions
from feast_spark.job_options import HistoricalRetrievalOptions as HistoricalRetrievalOptions
from feast_spark.job_options import IngestOptions as IngestOptions
from feast_spark.job_options import JobOptions as JobOptions
from feast_spark.job_options import MaintenanceOptions as MaintenanceOptions
from feast_spark.job_options import MaterializeOptions as MaterializeOptions
from feast_spark.job_options import PushOptions as PushOptions
from feast_spark.job_options import StreamOptions as StreamOptions
from feast_spark.spec_fields import (
    instant_field,
    is_number,
    known_keys,
    list_field,
    parsed_field,
    required,
    text_field,
    tuple_field,
)

SPEC_VERSION = 2
JOB_TYPES = tuple(OPTIONS_CLASSES)
#: Default of ``future_event_time_allowance`` (feature_store.yaml), in seconds.
DEFAULT_FUTURE_ALLOWANCE_S = 3600.0
# Job ids name folders of the job store and Spark applications: no separators, no spaces.
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_TOP_KEYS = frozenset(
    {
        "spec_version", "job_id", "job_type", "project", "entities", "feature_tables",
        "offline_store_path", "window", "result_path", "options", "future_event_time_allowance_s",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Window:
    """A half-open event-time window ``[start, end)``; either bound may be open (None)."""

    start: datetime | None = None
    end: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, datetime):
                raise JobSpecError(f"window.{name}", f"{value!r} is not a datetime")
            if value is not None and value.tzinfo is None:
                raise JobSpecError(f"window.{name}", f"{value} has no time zone; give one (UTC)")
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise JobSpecError("window", f"start {self.start} is not before end {self.end}")

    def to_dict(self) -> dict[str, str | None]:
        """ISO-8601 bounds (None for an open bound)."""
        return {
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Window:
        """Inverse of :meth:`to_dict`."""
        data = known_keys(data or {}, "window", {"start", "end"})
        return cls(
            instant_field(data.get("start"), "window.start"),
            instant_field(data.get("end"), "window.end"),
        )


@dataclass(frozen=True)
class JobSpec:
    """Everything one job run needs.

    Attributes:
        job_id: Unique id, also used in result and rejected-row records.
        job_type: ``ingest``, ``historical_retrieval``, ``materialize`` or ``maintenance``.
        project: The project the tables belong to.
        entities: Entity definitions the tables use.
        feature_tables: The tables the job reads or writes (at least one).
        offline_store_path: Root of the Delta tables.
        window: Event-time window.
        result_path: Where the job writes its result record (JSON).
        options: The job type's options (:data:`OPTIONS_CLASSES`); only ingest may omit them.
        future_event_time_allowance_s: Event times later than the job's start plus this many
            seconds are rejected by ingest and skipped by materialize.
    """

    job_id: str
    job_type: str
    project: str
    entities: tuple[Entity, ...]
    feature_tables: tuple[FeatureTable, ...]
    offline_store_path: str
    window: Window = field(default_factory=Window)
    result_path: str | None = None
    options: JobOptions | None = None
    future_event_time_allowance_s: float = DEFAULT_FUTURE_ALLOWANCE_S

    def __post_init__(self) -> None:
        if not isinstance(self.job_id, str) or not _JOB_ID.match(self.job_id):
            raise JobSpecError(
                "job_id", f"{self.job_id!r}; use letters, digits, '.', '_' and '-' only"
            )
        if self.job_type not in JOB_TYPES:
            raise JobSpecError("job_type", f"{self.job_type!r}; use one of {', '.join(JOB_TYPES)}")
        try:
            check_name("project", self.project)
        except DefinitionError as error:
            raise JobSpecError("project", str(error)) from None
        tuple_field(self.entities, Entity, "entities")
        tuple_field(self.feature_tables, FeatureTable, "feature_tables")
        if not self.feature_tables:
            raise JobSpecError("feature_tables", "empty; a job needs at least one table")
        text_field(self.offline_store_path, "offline_store_path")
        if not isinstance(self.window, Window):
            raise JobSpecError("window", f"{self.window!r} is not a Window")
        if self.result_path is not None:
            text_field(self.result_path, "result_path")
        expected = OPTIONS_CLASSES[self.job_type]
        if self.options is None and self.job_type not in OPTIONAL_OPTIONS:
            raise JobSpecError(
                "options", f"missing; job type '{self.job_type}' needs {expected.__name__}"
            )
        if self.options is not None and not isinstance(self.options, expected):
            raise JobSpecError(
                "options",
                f"{type(self.options).__name__}; job type '{self.job_type}' takes "
                f"{expected.__name__}",
            )
        allowance = self.future_event_time_allowance_s
        if not is_number(allowance) or allowance < 0:
            raise JobSpecError("future_event_time_allowance_s", f"{allowance!r}; give seconds >= 0")

    @property
    def future_allowance(self) -> timedelta:
        """:attr:`future_event_time_allowance_s` as a duration."""
        return timedelta(seconds=self.future_event_time_allowance_s)

    def offline_table_path(self, table: str) -> str:
        """``<offline root>/<project>/<table>``."""
        return f"{self.offline_store_path.rstrip('/')}/{self.project}/{table}"

    def to_json(self) -> str:
        """The spec as JSON text."""
        return json.dumps(
            {
                "spec_version": SPEC_VERSION,
                "job_id": self.job_id,
                "job_type": self.job_type,
                "project": self.project,
                "entities": [e.to_dict() for e in self.entities],
                "feature_tables": [t.to_dict() for t in self.feature_tables],
                "offline_store_path": self.offline_store_path,
                "window": self.window.to_dict(),
                "result_path": self.result_path,
                "options": self.options.to_dict() if self.options else None,
                "future_event_time_allowance_s": self.future_event_time_allowance_s,
            },
            indent=1,
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> JobSpec:
        """Parse and check a spec.

        Raises:
            JobSpecError: Not JSON, another ``spec_version``, or a missing, unknown or bad field.
            ConfigError: A bad online store or join tuning setting.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise JobSpecError("<document>", f"not valid JSON: {error}") from None
        if not isinstance(data, dict):
            raise JobSpecError("<document>", f"not a JSON object but a {type(data).__name__}")
        version = data.get("spec_version")
        if version != SPEC_VERSION:
            raise JobSpecError(
                "spec_version",
                f"{version!r}, but this job reads version {SPEC_VERSION}: the launcher and the "
                "job come from different feast-spark releases; re-submit the job with this release",
            )
        known_keys(data, "<document>", _TOP_KEYS)
        job_type = required(data, "job_type")
        raw_options = data.get("options")
        options: JobOptions | None = None
        if raw_options is not None and job_type in OPTIONS_CLASSES:
            options = OPTIONS_CLASSES[job_type].from_dict(raw_options)
        entities = required(data, "entities")
        tables = required(data, "feature_tables")
        return cls(
            job_id=required(data, "job_id"),
            job_type=job_type,
            project=required(data, "project"),
            entities=tuple(
                parsed_field("entities", Entity.from_dict, e)
                for e in list_field(entities, "entities")
            ),
            feature_tables=tuple(
                parsed_field("feature_tables", FeatureTable.from_dict, t)
                for t in list_field(tables, "feature_tables")
            ),
            offline_store_path=required(data, "offline_store_path"),
            window=Window.from_dict(data.get("window")),
            result_path=data.get("result_path"),
            options=options,
            future_event_time_allowance_s=data.get(
                "future_event_time_allowance_s", DEFAULT_FUTURE_ALLOWANCE_S
            ),
        )


def new_job_id(job_type: str, table: str | None = None) -> str:
    """A sortable, unique job id: ``<type>-<table>-<UTC time>-<random>``."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    parts = [job_type.replace("_", "-"), table, stamp, secrets.token_hex(3)]
    return "-".join(p for p in parts if p)


def parse_instant(value: str | datetime, *, name: str = "time") -> datetime:
    """An ISO-8601 date (midnight UTC) or instant (no offset means UTC) as an aware datetime.

    Raises:
        ArgumentError: ``value`` is neither.
    """
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ArgumentError(
            name, value, "is not an ISO-8601 date or instant (e.g. 2024-01-01 or 2024-01-01T10:00Z)"
        ) from None
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    try:
        parsed.astimezone(UTC)  # an offset can push an instant out of years 1-9999
    except OverflowError:
        raise ArgumentError(name, value, "is outside years 1 to 9999 in UTC") from None
    return parsed
