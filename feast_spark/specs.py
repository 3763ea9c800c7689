"""Job specs: the one versioned JSON contract between the launcher and a Spark job.

A spec carries everything a job needs, resolved: the definitions (jobs never read the registry),
the store locations, the window and the job's own options (one validated class per job type,
:data:`OPTIONS_CLASSES`). ``spec_version`` changes whenever a field changes meaning; a job
refuses any other version (the launcher and the job always come from the same release).

Version 2 moved the online store's settings of a materialize job from the spec's top level into
:class:`MaterializeOptions`, typed. The options of the jobs that use the online store live in
:mod:`feast_spark.online_options` (re-exported here); the field checks in
:mod:`feast_spark.spec_fields`.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from feast_spark.definitions import Entity, FeatureTable
from feast_spark.definitions.names import check_name
from feast_spark.definitions.sources import BatchSource, source_from_dict
from feast_spark.errors import ArgumentError, DefinitionError, JobSpecError
from feast_spark.join_tuning import JoinTuning
from feast_spark.online_options import (
    PUSH_TARGETS,
    STREAM_TARGETS,
    AuditOptions,
    MaterializeOptions,
    PushOptions,
    StreamOptions,
)
from feast_spark.spec_fields import (
    _field,
    _instant,
    _is_number,
    _items,
    _list,
    _mapping,
    _required,
    _text,
)

__all__ = [
    "JOB_TYPES",
    "OPTIONS_CLASSES",
    "PUSH_TARGETS",
    "SPEC_VERSION",
    "STREAM_TARGETS",
    "AuditOptions",
    "DatasetOptions",
    "HistoricalRetrievalOptions",
    "IngestOptions",
    "JobOptions",
    "JobSpec",
    "MaintenanceOptions",
    "MaterializeOptions",
    "PushOptions",
    "StreamOptions",
    "Window",
    "new_job_id",
    "parse_instant",
]

SPEC_VERSION = 2
JOB_TYPES = (
    "ingest",
    "historical_retrieval",
    "materialize",
    "maintenance",
    "audit",
    "stream_ingestion",
    "push",
)
MAINTENANCE_ACTIONS = ("compact", "vacuum")
OUTPUT_FORMATS = ("parquet", "delta")
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
        data = _mapping(data or {}, "window", {"start", "end"})
        return cls(
            _instant(data.get("start"), "window.start"), _instant(data.get("end"), "window.end")
        )


@dataclass(frozen=True)
class IngestOptions:
    """Options of an ingest job.

    Attributes:
        source: A source that replaces the table's batch source for this run.
        max_rejected_fraction: Fail (and commit nothing) above this fraction of rejected rows.
    """

    source: BatchSource | None = None
    max_rejected_fraction: float = 1.0

    KEYS: ClassVar[frozenset[str]] = frozenset({"source", "max_rejected_fraction"})

    def __post_init__(self) -> None:
        if self.source is not None and not isinstance(self.source, BatchSource):
            raise JobSpecError("options.source", f"{self.source!r} is not a batch source")
        fraction = self.max_rejected_fraction
        if not _is_number(fraction) or not 0.0 <= fraction <= 1.0:
            raise JobSpecError(
                "options.max_rejected_fraction", f"{fraction!r}; give a number from 0 to 1"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "source": self.source.to_dict() if self.source else None,
            "max_rejected_fraction": self.max_rejected_fraction,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IngestOptions:
        """Inverse of :meth:`to_dict`."""
        data = _mapping(data, "options", cls.KEYS)
        source = data.get("source")
        return cls(
            source=_field("options.source", source_from_dict, source) if source else None,
            max_rejected_fraction=data.get("max_rejected_fraction", 1.0),
        )


@dataclass(frozen=True)
class DatasetOptions:
    """What a historical retrieval records about its dataset, and what a rebuild pins.

    Attributes:
        record_path: Where the job writes the dataset record (:mod:`feast_spark.datasets`).
        registry_revision: The registry revision the definitions were read at (None: unknown).
        table_versions: Delta version to read per offline table (a rebuild); tables not named
            are read at their latest version, resolved once when the job starts.
        entity_files: Expected entity files (a rebuild): ``{"path", "size", "sha256", ...}``
            each; the job refuses to run when the files it would read differ.
        rebuild_of: The dataset this run rebuilds, if any.
    """

    record_path: str
    registry_revision: int | None = None
    table_versions: Mapping[str, int] = field(default_factory=dict)
    entity_files: tuple[Mapping[str, Any], ...] = ()
    rebuild_of: str | None = None

    KEYS: ClassVar[frozenset[str]] = frozenset(
        {"record_path", "registry_revision", "table_versions", "entity_files", "rebuild_of"}
    )

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "record_path": self.record_path,
            "registry_revision": self.registry_revision,
            "table_versions": dict(self.table_versions),
            "entity_files": [dict(f) for f in self.entity_files],
            "rebuild_of": self.rebuild_of,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatasetOptions:
        """Inverse of :meth:`to_dict`."""
        data = _mapping(data, "options.dataset", cls.KEYS)
        return cls(
            record_path=_text(_required(data, "record_path", "options.dataset"), "record_path"),
            registry_revision=data.get("registry_revision"),
            table_versions={str(k): int(v) for k, v in (data.get("table_versions") or {}).items()},
            entity_files=tuple(dict(f) for f in data.get("entity_files") or ()),
            rebuild_of=data.get("rebuild_of"),
        )


@dataclass(frozen=True)
class HistoricalRetrievalOptions:
    """Options of a historical retrieval job.

    Attributes:
        feature_refs: ``table:feature`` references, ``table:*`` expanded already.
        entity_source: Where the entity rows are (a source document: path, format, timestamp).
        output_path: Where the dataset is written.
        output_format: ``parquet`` or ``delta``.
        join_tuning: The point-in-time join's tuning (defaults suit most).
        dataset: Record the dataset (and, for a rebuild, pin what it reads); None: no record.
    """

    feature_refs: tuple[str, ...]
    entity_source: BatchSource
    output_path: str
    output_format: str = "parquet"
    join_tuning: JoinTuning = field(default_factory=JoinTuning)
    dataset: DatasetOptions | None = None

    KEYS: ClassVar[frozenset[str]] = frozenset(
        {"feature_refs", "entity_source", "output_path", "output_format", "join_tuning", "dataset"}
    )

    def __post_init__(self) -> None:
        refs = self.feature_refs
        if (
            not isinstance(refs, tuple)
            or not refs
            or not all(isinstance(r, str) and ":" in r for r in refs)
        ):
            raise JobSpecError(
                "options.feature_refs", f"{refs!r}; give a non-empty list of 'table:feature'"
            )
        if not isinstance(self.entity_source, BatchSource):
            raise JobSpecError(
                "options.entity_source", f"{self.entity_source!r} is not a batch source"
            )
        _text(self.output_path, "options.output_path")
        self.check_output_format(self.output_format)
        if not isinstance(self.join_tuning, JoinTuning):
            raise JobSpecError("options.join_tuning", f"{self.join_tuning!r} is not a JoinTuning")

    @staticmethod
    def check_output_format(value: object) -> str:
        """``value`` if it is a dataset format jobs write (the one check of it).

        Raises:
            JobSpecError: Neither ``parquet`` nor ``delta``.
        """
        if value not in OUTPUT_FORMATS:
            raise JobSpecError("options.output_format", f"{value!r}; use parquet or delta")
        return str(value)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "feature_refs": list(self.feature_refs),
            "entity_source": self.entity_source.to_dict(),
            "output_path": self.output_path,
            "output_format": self.output_format,
            "join_tuning": self.join_tuning.to_dict(),
            **({"dataset": self.dataset.to_dict()} if self.dataset else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HistoricalRetrievalOptions:
        """Inverse of :meth:`to_dict`."""
        data = _mapping(data, "options", cls.KEYS)
        refs = _required(data, "feature_refs", "options")
        tuning = data.get("join_tuning")
        if tuning is not None and not isinstance(tuning, Mapping):
            raise JobSpecError("options.join_tuning", f"{tuning!r}; give a JSON object")
        return cls(
            feature_refs=tuple(refs) if isinstance(refs, list) else refs,
            entity_source=_field(
                "options.entity_source",
                source_from_dict,
                _required(data, "entity_source", "options"),
            ),
            output_path=_required(data, "output_path", "options"),
            output_format=data.get("output_format", "parquet"),
            join_tuning=JoinTuning.from_dict(tuning),
            dataset=_field("options.dataset", DatasetOptions.from_dict, data["dataset"])
            if data.get("dataset") is not None
            else None,
        )


@dataclass(frozen=True)
class MaintenanceOptions:
    """Options of a maintenance job on offline tables.

    Attributes:
        action: ``compact`` (Delta OPTIMIZE ZORDER BY event_timestamp of the whole table)
            or ``vacuum`` (with the table's ``delta.deletedFileRetentionDuration``, 7 days by
            default: Delta 4.4 ignores a retention given to the call).
        keep_versions: Vacuum only: per table, ``{dataset id: Delta version}`` of the kept
            datasets that read it; the vacuum is refused if it would delete a file of one.
    """

    action: str
    keep_versions: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    KEYS: ClassVar[frozenset[str]] = frozenset({"action", "keep_versions"})

    def __post_init__(self) -> None:
        if self.action not in MAINTENANCE_ACTIONS:
            raise JobSpecError("options.action", f"{self.action!r}; use compact or vacuum")

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        keep = {table: dict(versions) for table, versions in self.keep_versions.items()}
        return {"action": self.action, **({"keep_versions": keep} if keep else {})}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MaintenanceOptions:
        """Inverse of :meth:`to_dict`."""
        data = _mapping(data, "options", cls.KEYS)
        keep = data.get("keep_versions") or {}
        if not isinstance(keep, Mapping) or not all(isinstance(v, Mapping) for v in keep.values()):
            raise JobSpecError(
                "options.keep_versions", f"{keep!r}; give {{table: {{dataset: version}}}}"
            )
        return cls(
            _required(data, "action", "options"),
            {str(t): {str(d): int(v) for d, v in versions.items()} for t, versions in keep.items()},
        )


JobOptions = (
    IngestOptions
    | HistoricalRetrievalOptions
    | MaterializeOptions
    | MaintenanceOptions
    | AuditOptions
    | StreamOptions
    | PushOptions
)
#: The options class of each job type.
OPTIONS_CLASSES: Mapping[str, type[JobOptions]] = {
    "ingest": IngestOptions,
    "historical_retrieval": HistoricalRetrievalOptions,
    "materialize": MaterializeOptions,
    "maintenance": MaintenanceOptions,
    "audit": AuditOptions,
    "stream_ingestion": StreamOptions,
    "push": PushOptions,
}
#: Job types that run with default options when a spec gives none.
_OPTIONAL_OPTIONS = frozenset({"ingest"})


@dataclass(frozen=True)
class JobSpec:
    """Everything one job run needs.

    Attributes:
        job_id: Unique id, also used in result and rejected-row records.
        job_type: One of :data:`JOB_TYPES`.
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
        _items(self.entities, Entity, "entities")
        _items(self.feature_tables, FeatureTable, "feature_tables")
        if not self.feature_tables:
            raise JobSpecError("feature_tables", "empty; a job needs at least one table")
        _text(self.offline_store_path, "offline_store_path")
        if not isinstance(self.window, Window):
            raise JobSpecError("window", f"{self.window!r} is not a Window")
        if self.result_path is not None:
            _text(self.result_path, "result_path")
        expected = OPTIONS_CLASSES[self.job_type]
        if self.options is None and self.job_type not in _OPTIONAL_OPTIONS:
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
        if not _is_number(allowance) or allowance < 0:
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
        _mapping(data, "<document>", _TOP_KEYS)
        job_type = _required(data, "job_type")
        raw_options = data.get("options")
        options: JobOptions | None = None
        if raw_options is not None and job_type in OPTIONS_CLASSES:
            options = OPTIONS_CLASSES[job_type].from_dict(raw_options)
        entities = _required(data, "entities")
        tables = _required(data, "feature_tables")
        return cls(
            job_id=_required(data, "job_id"),
            job_type=job_type,
            project=_required(data, "project"),
            entities=tuple(
                _field("entities", Entity.from_dict, e) for e in _list(entities, "entities")
            ),
            feature_tables=tuple(
                _field("feature_tables", FeatureTable.from_dict, t)
                for t in _list(tables, "feature_tables")
            ),
            offline_store_path=_required(data, "offline_store_path"),
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
