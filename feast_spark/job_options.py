"""The options of each job type: one validated, frozen class per type (:data:`OPTIONS_CLASSES`).

Part of the job spec (:mod:`feast_spark.specs`): ``options`` of the JSON document, read with
``OPTIONS_CLASSES[job_type].from_dict``. Unknown keys are refused (a key of another version).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from feast_spark.definitions.sources import BatchSource, source_from_dict
from feast_spark.errors import JobSpecError
from feast_spark.join_tuning import JoinTuning
from feast_spark.online_store_config import OnlineStoreConfig, serialize_online_store
from feast_spark.spec_fields import (
    check_online_store,
    is_number,
    known_keys,
    online_store_option,
    parsed_field,
    required,
    text_field,
)

MAINTENANCE_ACTIONS = ("compact", "vacuum")
OUTPUT_FORMATS = ("parquet", "delta")


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
        if not is_number(fraction) or not 0.0 <= fraction <= 1.0:
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
        data = known_keys(data, "options", cls.KEYS)
        source = data.get("source")
        return cls(
            source=parsed_field("options.source", source_from_dict, source) if source else None,
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
        data = known_keys(data, "options.dataset", cls.KEYS)
        return cls(
            record_path=text_field(required(data, "record_path", "options.dataset"), "record_path"),
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
        text_field(self.output_path, "options.output_path")
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
        data = known_keys(data, "options", cls.KEYS)
        refs = required(data, "feature_refs", "options")
        tuning = data.get("join_tuning")
        if tuning is not None and not isinstance(tuning, Mapping):
            raise JobSpecError("options.join_tuning", f"{tuning!r}; give a JSON object")
        return cls(
            feature_refs=tuple(refs) if isinstance(refs, list) else refs,
            entity_source=parsed_field(
                "options.entity_source",
                source_from_dict,
                required(data, "entity_source", "options"),
            ),
            output_path=required(data, "output_path", "options"),
            output_format=data.get("output_format", "parquet"),
            join_tuning=JoinTuning.from_dict(tuning),
            dataset=parsed_field("options.dataset", DatasetOptions.from_dict, data["dataset"])
            if data.get("dataset") is not None
            else None,
        )


@dataclass(frozen=True)
class MaterializeOptions:
    """Options of a materialize job.

    Attributes:
        online_store: The online store written to, as ``online_store`` of feature_store.yaml.
    """

    online_store: OnlineStoreConfig

    KEYS: ClassVar[frozenset[str]] = frozenset({"online_store"})

    def __post_init__(self) -> None:
        check_online_store(self.online_store)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the online store as in feature_store.yaml)."""
        return {"online_store": serialize_online_store(self.online_store)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MaterializeOptions:
        """Inverse of :meth:`to_dict`; the store is validated as feature_store.yaml's is.

        Raises:
            ConfigError: A bad online store setting (named as in feature_store.yaml).
        """
        return cls(online_store_option(known_keys(data, "options", cls.KEYS)))


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
        data = known_keys(data, "options", cls.KEYS)
        keep = data.get("keep_versions") or {}
        if not isinstance(keep, Mapping) or not all(isinstance(v, Mapping) for v in keep.values()):
            raise JobSpecError(
                "options.keep_versions", f"{keep!r}; give {{table: {{dataset: version}}}}"
            )
        return cls(
            required(data, "action", "options"),
            {str(t): {str(d): int(v) for d, v in versions.items()} for t, versions in keep.items()},
        )


@dataclass(frozen=True)
class AuditOptions:
    """Options of an online/offline consistency audit job.

    Attributes:
        sample: Audit this many random offline keys (None: every key, and the online table is
            enumerated to find keys that have no offline row).
        examples: Examples kept per kind of finding.
        online_store: The online store audited, as ``online_store`` of feature_store.yaml.
    """

    online_store: OnlineStoreConfig
    sample: int | None = None
    examples: int = 5

    KEYS: ClassVar[frozenset[str]] = frozenset({"online_store", "sample", "examples"})

    def __post_init__(self) -> None:
        check_online_store(self.online_store)
        if self.sample is not None and (
            isinstance(self.sample, bool) or not isinstance(self.sample, int) or self.sample < 1
        ):
            raise JobSpecError("options.sample", f"{self.sample!r}; give a whole number >= 1")
        examples = self.examples
        if isinstance(examples, bool) or not isinstance(examples, int) or examples < 0:
            raise JobSpecError("options.examples", f"{self.examples!r}; give a whole number >= 0")

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "online_store": serialize_online_store(self.online_store),
            "sample": self.sample,
            "examples": self.examples,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditOptions:
        """Inverse of :meth:`to_dict`.

        Raises:
            ConfigError: A bad online store setting (named as in feature_store.yaml).
        """
        data = known_keys(data, "options", cls.KEYS)
        store = online_store_option(data)
        return cls(store, sample=data.get("sample"), examples=data.get("examples", 5))


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
        online_store: The online store written to, as ``online_store`` of feature_store.yaml.
    """

    online_store: OnlineStoreConfig
    checkpoint_path: str
    stop_path: str
    to: str = "online"
    trigger_interval_s: float | None = None
    progress_path: str | None = None

    KEYS: ClassVar[frozenset[str]] = frozenset(
        {
            "online_store",
            "checkpoint_path",
            "stop_path",
            "to",
            "trigger_interval_s",
            "progress_path",
        }
    )

    def __post_init__(self) -> None:
        check_online_store(self.online_store)
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
            "online_store": serialize_online_store(self.online_store),
            "checkpoint_path": self.checkpoint_path,
            "stop_path": self.stop_path,
            "to": self.to,
            "trigger_interval_s": self.trigger_interval_s,
            "progress_path": self.progress_path,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StreamOptions:
        """Inverse of :meth:`to_dict`.

        Raises:
            ConfigError: A bad online store setting (named as in feature_store.yaml).
        """
        data = known_keys(data, "options", cls.KEYS)
        store = online_store_option(data)
        return cls(
            store,
            checkpoint_path=required(data, "checkpoint_path", "options"),
            stop_path=required(data, "stop_path", "options"),
            to=data.get("to", "online"),
            trigger_interval_s=data.get("trigger_interval_s"),
            progress_path=data.get("progress_path"),
        )


#: Where a push job writes (as a stream: online only, or both stores).
PUSH_TARGETS = STREAM_TARGETS


@dataclass(frozen=True)
class PushOptions:
    """Options of a push job: a small batch of rows straight to the online store.

    Attributes:
        online_store: The online store written to, as ``online_store`` of feature_store.yaml.
        path: The rows to push (a path or URI; parquet, or csv/json by suffix), shaped like the
            table's batch source rows: its column names and ``field_mapping`` apply.
        to: ``online`` (the online store only) or ``both`` (also appended to the Delta offline
            table, once per job id).
    """

    online_store: OnlineStoreConfig
    path: str
    to: str = "online"

    KEYS: ClassVar[frozenset[str]] = frozenset({"online_store", "path", "to"})

    def __post_init__(self) -> None:
        check_online_store(self.online_store)
        if not isinstance(self.path, str) or not self.path.strip():
            raise JobSpecError("options.path", f"{self.path!r}; give the rows' path or URI")
        if self.to not in PUSH_TARGETS:
            raise JobSpecError("options.to", f"{self.to!r}; use online or both")

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "online_store": serialize_online_store(self.online_store),
            "path": self.path,
            "to": self.to,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PushOptions:
        """Inverse of :meth:`to_dict`.

        Raises:
            ConfigError: A bad online store setting (named as in feature_store.yaml).
        """
        data = known_keys(data, "options", cls.KEYS)
        return cls(
            online_store_option(data),
            path=required(data, "path", "options"),
            to=data.get("to", "online"),
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
OPTIONAL_OPTIONS = frozenset({"ingest"})
