"""Options of the jobs that write or read the online store: materialize, audit, stream, push.

Part of the job spec (:mod:`feast_spark.specs`, which registers each class for its job type and
re-exports it); each carries the online store's settings as ``online_store`` of
feature_store.yaml, typed and validated as there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from feast_spark.errors import JobSpecError
from feast_spark.online_store_config import (
    CassandraOnlineStoreConfig,
    OnlineStoreConfig,
    SqliteOnlineStoreConfig,
    parse_online_store_mapping,
    serialize_online_store,
)
from feast_spark.spec_fields import _mapping, _required


@dataclass(frozen=True)
class MaterializeOptions:
    """Options of a materialize job.

    Attributes:
        online_store: The online store written to, as ``online_store`` of feature_store.yaml.
    """

    online_store: OnlineStoreConfig

    KEYS: ClassVar[frozenset[str]] = frozenset({"online_store"})

    def __post_init__(self) -> None:
        if not isinstance(self.online_store, SqliteOnlineStoreConfig | CassandraOnlineStoreConfig):
            raise JobSpecError(
                "options.online_store", f"{self.online_store!r} is not an online store config"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the online store as in feature_store.yaml)."""
        return {"online_store": serialize_online_store(self.online_store)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MaterializeOptions:
        """Inverse of :meth:`to_dict`; the store is validated as feature_store.yaml's is.

        Raises:
            ConfigError: A bad online store setting (named as in feature_store.yaml).
        """
        data = _mapping(data, "options", cls.KEYS)
        store = _required(data, "online_store", "options")
        if not isinstance(store, Mapping):
            raise JobSpecError("options.online_store", f"{store!r}; give the store's settings")
        return cls(parse_online_store_mapping(store, source="the job spec"))


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
        MaterializeOptions(self.online_store)  # the same check of the store
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
        data = _mapping(data, "options", cls.KEYS)
        store = MaterializeOptions.from_dict(
            {"online_store": _required(data, "online_store", "options")}
        )
        return cls(store.online_store, sample=data.get("sample"), examples=data.get("examples", 5))


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
        MaterializeOptions(self.online_store)  # the same check of the store
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
        data = _mapping(data, "options", cls.KEYS)
        store = MaterializeOptions.from_dict(
            {"online_store": _required(data, "online_store", "options")}
        )
        return cls(
            store.online_store,
            checkpoint_path=_required(data, "checkpoint_path", "options"),
            stop_path=_required(data, "stop_path", "options"),
            to=data.get("to", "online"),
            trigger_interval_s=data.get("trigger_interval_s"),
            progress_path=data.get("progress_path"),
        )


PUSH_TARGETS = ("online", "both")


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
        MaterializeOptions(self.online_store)  # the same check of the store
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
        data = _mapping(data, "options", cls.KEYS)
        store = MaterializeOptions.from_dict(
            {"online_store": _required(data, "online_store", "options")}
        )
        return cls(
            store.online_store,
            path=_required(data, "path", "options"),
            to=data.get("to", "online"),
        )
