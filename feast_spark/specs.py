"""Job specs: the one versioned JSON contract between the launcher and a Spark job.

A spec carries everything a job needs, resolved: the definitions (jobs never read the registry),
the store locations, the window and the job's own options. ``spec_version`` changes whenever a
field changes meaning; a job refuses a version it does not know.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from feast_spark.definitions import Entity, FeatureTable
from feast_spark.definitions.sources import BatchSource, source_from_dict
from feast_spark.errors import ArgumentError, JobSpecError
from feast_spark.join_tuning import JoinTuning

SPEC_VERSION = 1
JOB_TYPES = ("ingest", "historical_retrieval", "materialize", "maintenance", "stream_ingestion")
MAINTENANCE_ACTIONS = ("compact", "vacuum")
#: Default of ``future_event_time_allowance`` (feature_store.yaml), in seconds.
DEFAULT_FUTURE_ALLOWANCE_S = 3600.0


@dataclass(frozen=True)
class Window:
    """A half-open event-time window ``[start, end)``; either bound may be open (None)."""

    start: datetime | None = None
    end: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
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
        data = data or {}
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

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "source": self.source.to_dict() if self.source else None,
            "max_rejected_fraction": self.max_rejected_fraction,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IngestOptions:
        """Inverse of :meth:`to_dict`."""
        source = data.get("source")
        return cls(
            source=source_from_dict(source) if source else None,
            max_rejected_fraction=float(data.get("max_rejected_fraction", 1.0)),
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
    """

    feature_refs: tuple[str, ...]
    entity_source: BatchSource
    output_path: str
    output_format: str = "parquet"
    join_tuning: JoinTuning = field(default_factory=JoinTuning)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "feature_refs": list(self.feature_refs),
            "entity_source": self.entity_source.to_dict(),
            "output_path": self.output_path,
            "output_format": self.output_format,
            "join_tuning": self.join_tuning.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HistoricalRetrievalOptions:
        """Inverse of :meth:`to_dict`."""
        return cls(
            feature_refs=tuple(data["feature_refs"]),
            entity_source=source_from_dict(data["entity_source"]),
            output_path=data["output_path"],
            output_format=data.get("output_format", "parquet"),
            join_tuning=JoinTuning.from_dict(data.get("join_tuning")),
        )


@dataclass(frozen=True)
class MaintenanceOptions:
    """Options of a maintenance job on offline tables.

    Attributes:
        action: ``compact`` (Delta OPTIMIZE; of the window's days on day-partitioned tables)
            or ``vacuum`` (with the table's ``delta.deletedFileRetentionDuration``, 7 days by
            default: Delta 4.4 ignores a retention given to the call).
    """

    action: str

    def __post_init__(self) -> None:
        if self.action not in MAINTENANCE_ACTIONS:
            raise JobSpecError("options.action", f"{self.action!r}; use compact or vacuum")

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"action": self.action}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MaintenanceOptions:
        """Inverse of :meth:`to_dict`."""
        return cls(data["action"])


STREAM_TARGETS = ("online", "both")


@dataclass(frozen=True)
class StreamOptions:
    """Options of a stream ingestion job (a long-running Structured Streaming query).

    Attributes:
        checkpoint_path: The query's checkpoint folder, one per table: a new start resumes
            from the offsets it holds.
        stop_path: A file whose appearance asks the job to stop once the current micro-batch
            is done (``feast-spark stream stop``).
        to: ``online`` (the online store only) or ``both`` (also appended to the Delta
            offline table, once per micro-batch).
        trigger_interval_s: Seconds between micro-batches (None: the next one starts as soon
            as the previous ends).
        progress_path: Where the job writes its progress record (rates, last batch) as it runs.
    """

    checkpoint_path: str
    stop_path: str
    to: str = "online"
    trigger_interval_s: float | None = None
    progress_path: str | None = None

    def __post_init__(self) -> None:
        if self.to not in STREAM_TARGETS:
            raise JobSpecError("options.to", f"{self.to!r}; use online or both")
        for name in ("checkpoint_path", "stop_path"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise JobSpecError(f"options.{name}", "missing; give a path or URI")
        interval = self.trigger_interval_s
        if interval is not None and (isinstance(interval, bool) or not interval > 0):
            raise JobSpecError("options.trigger_interval_s", f"{interval!r}; give seconds > 0")

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "checkpoint_path": self.checkpoint_path,
            "stop_path": self.stop_path,
            "to": self.to,
            "trigger_interval_s": self.trigger_interval_s,
            "progress_path": self.progress_path,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StreamOptions:
        """Inverse of :meth:`to_dict`."""
        return cls(
            checkpoint_path=data["checkpoint_path"],
            stop_path=data["stop_path"],
            to=data.get("to", "online"),
            trigger_interval_s=data.get("trigger_interval_s"),
            progress_path=data.get("progress_path"),
        )


JobOptions = IngestOptions | HistoricalRetrievalOptions | MaintenanceOptions | StreamOptions


@dataclass(frozen=True)
class JobSpec:
    """Everything one job run needs.

    Attributes:
        job_id: Unique id, also used in result and rejected-row records.
        job_type: ``ingest``, ``historical_retrieval`` or ``materialize``.
        project: The project the tables belong to.
        entities: Entity definitions the tables use.
        feature_tables: The tables the job reads or writes.
        offline_store_path: Root of the Delta tables.
        window: Event-time window.
        result_path: Where the job writes its result record (JSON).
        online_store: The online store's settings (materialize only), as in feature_store.yaml.
        options: Type-specific options (ingest or historical retrieval).
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
    online_store: Mapping[str, Any] | None = None
    options: JobOptions | None = None
    future_event_time_allowance_s: float = DEFAULT_FUTURE_ALLOWANCE_S

    def __post_init__(self) -> None:
        if self.job_type not in JOB_TYPES:
            raise JobSpecError("job_type", f"{self.job_type!r}; use one of {', '.join(JOB_TYPES)}")
        allowance = self.future_event_time_allowance_s
        if isinstance(allowance, bool) or not isinstance(allowance, int | float) or allowance < 0:
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
                "online_store": dict(self.online_store) if self.online_store else None,
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
            JobSpecError: Not JSON, an unknown ``spec_version``, or a missing or bad field.
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
                f"{version!r} is not supported; this job reads version {SPEC_VERSION} "
                "(launcher and job come from different feast-spark releases)",
            )
        try:
            job_type = data["job_type"]
            raw_options = data.get("options")
            readers: dict[str, Callable[[Mapping[str, Any]], JobOptions]] = {
                "ingest": IngestOptions.from_dict,
                "historical_retrieval": HistoricalRetrievalOptions.from_dict,
                "maintenance": MaintenanceOptions.from_dict,
                "stream_ingestion": StreamOptions.from_dict,
            }
            options: JobOptions | None = None
            if raw_options is not None and job_type in readers:
                options = readers[job_type](raw_options)
            return cls(
                job_id=data["job_id"],
                job_type=job_type,
                project=data["project"],
                entities=tuple(Entity.from_dict(e) for e in data["entities"]),
                feature_tables=tuple(FeatureTable.from_dict(t) for t in data["feature_tables"]),
                offline_store_path=data["offline_store_path"],
                window=Window.from_dict(data.get("window")),
                result_path=data.get("result_path"),
                online_store=data.get("online_store"),
                options=options,
                future_event_time_allowance_s=data.get(
                    "future_event_time_allowance_s", DEFAULT_FUTURE_ALLOWANCE_S
                ),
            )
        except KeyError as error:
            raise JobSpecError(str(error.args[0]), "missing") from None


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


def _instant(value: Any, field_name: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise JobSpecError(field_name, f"{value!r} is not an ISO-8601 instant") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
