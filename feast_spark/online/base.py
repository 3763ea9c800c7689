"""What every online store does, and the types they share.

An online store keeps, per feature table and entity key, the latest feature values materialized so
far, with their event time. Its rules, the same for SQLite and Cassandra:

1. **Newest row wins, whole, whatever the write order.** A row replaces the stored one only when
   it wins the point-in-time rule: later event time, then later created time, then greater values
   (:mod:`feast_spark.online.ordering`); the stored row is then replaced whole, never mixed.
   Reruns, retries and older windows materialized afterwards never roll a value back. (SQLite:
   one conditional upsert; Cassandra: write timestamps from event times plus a read of the stored
   row's times, see :mod:`feast_spark.online.cassandra_writes`.)
2. **Retention.** For a table with ``max_age``, a value is served while
   ``event_timestamp >= now - max_age``; after that its values are withheld and reported as
   ``OUTSIDE_MAX_AGE`` for one more ``max_age``; then it is gone (``NOT_FOUND``). Cassandra
   enforces the end with a TTL of ``event_timestamp + 2 * max_age - now`` (rounded up to whole
   seconds, and checked again at read time); SQLite checks it at read time. A row whose
   retention has already ended when it is written is not written at all (a TTL of 0 would mean
   *forever* to Cassandra) and is counted as ``expired``. Keeping stale values for a while lets a
   reader tell "too old" from "never seen", at the cost of at most one extra ``max_age`` of keys
   that stopped updating.
3. **Nulls.** A null feature value is stored as a null (it replaces an older non-null value);
   an empty list is stored as null, because Cassandra cannot tell an empty collection from null.
   A feature added to a table later is a new nullable column: older rows read it as null.

Stored values use one Python form in every store: ``int``, ``float``, ``str``, ``bytes``,
``bool``, lists of those, and ``UNIX_TIMESTAMP`` values as ``int`` microseconds since the epoch.
"""

from __future__ import annotations

import enum
import functools
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, Self

from feast_spark.columns import CREATED_TIMESTAMP, EVENT_TIMESTAMP
from feast_spark.definitions import Entity, FeatureTable
from feast_spark.errors import DefinitionError, NotFoundError, OnlineStoreError
from feast_spark.online.naming import online_table_name
from feast_spark.online_store_config import parse_online_store_mapping, serialize_online_store
from feast_spark.types import ValueType

if TYPE_CHECKING:
    import pyarrow as pa

#: Values are kept this many ``max_age`` after their event time (see the module docstring).
RETENTION_FACTOR = 2
#: Cassandra's largest TTL (20 years), in seconds.
MAX_TTL_SECONDS = 20 * 365 * 24 * 3600

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROS = timedelta(microseconds=1)


class FeatureStatus(enum.Enum):
    """What an online read found for one feature of one entity row."""

    #: The value is present and within ``max_age``.
    PRESENT = "PRESENT"
    #: The key was materialized and the value is null.
    NULL_VALUE = "NULL_VALUE"
    #: The key (or the feature's column) was never materialized, or its retention has ended.
    NOT_FOUND = "NOT_FOUND"
    #: The value is older than ``now - max_age``; it is withheld (None).
    OUTSIDE_MAX_AGE = "OUTSIDE_MAX_AGE"


@dataclass(frozen=True)
class OnlineTableSchema:
    """The online shape of one project feature table.

    Attributes:
        project: The project.
        table: The feature table's name.
        name: The online table's name (:func:`~feast_spark.online.naming.online_table_name`).
        entities: Key columns and their types, in key order.
        features: Feature columns and their types, in declaration order.
        max_age: The table's ``max_age`` (None: values never age out).
    """

    project: str
    table: str
    name: str
    entities: tuple[tuple[str, ValueType], ...]
    features: tuple[tuple[str, ValueType], ...]
    max_age: timedelta | None = None

    @classmethod
    def of(cls, project: str, table: FeatureTable, entities: Iterable[Entity]) -> OnlineTableSchema:
        """The schema of ``table`` in ``project``, with key types from ``entities``.

        Raises:
            NotFoundError: An entity of the table is not among ``entities``.
        """
        types = {entity.name: entity.value_type for entity in entities}
        keys = []
        for name in table.entities:
            if name not in types:
                raise NotFoundError(
                    "entity",
                    name,
                    project,
                    f"feature table '{table.name}' is keyed by it; register the entity",
                )
            keys.append((name, types[name]))
        return cls(
            project=project,
            table=table.name,
            name=online_table_name(project, table.name),
            entities=tuple(keys),
            features=tuple((f.name, f.dtype) for f in table.features),
            max_age=table.max_age,
        )

    @functools.cached_property
    def _feature_types(self) -> dict[str, ValueType]:
        return dict(self.features)

    @property
    def entity_names(self) -> tuple[str, ...]:
        """Key column names, in key order."""
        return tuple(name for name, _ in self.entities)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Feature column names, in declaration order."""
        return tuple(name for name, _ in self.features)

    def feature_type(self, name: str) -> ValueType:
        """The value type of feature ``name``.

        Raises:
            NotFoundError: The table has no such feature.
        """
        value_type = self._feature_types.get(name)
        if value_type is not None:
            return value_type
        raise NotFoundError(
            "feature",
            f"{self.table}:{name}",
            self.project,
            f"features are {', '.join(self.feature_names)}",
        )


@dataclass(frozen=True)
class WriteCounts:
    """What a write did.

    Attributes:
        written: Rows accepted: applied, or not needed because the store holds a row that wins.
        expired: Rows not written because their retention had ended (see the module docstring).
    """

    written: int = 0
    expired: int = 0

    def __add__(self, other: WriteCounts) -> WriteCounts:
        return WriteCounts(self.written + other.written, self.expired + other.expired)


class StoredRow(NamedTuple):
    """One key's stored row, as read (a named tuple: reads build one per key, 300 a request).

    Attributes:
        event_timestamp_us: Its event time, microseconds since the epoch.
        values: The requested features' stored values, in request order (None for null).
    """

    event_timestamp_us: int
    values: tuple[Any, ...]


@dataclass(frozen=True)
class ReadRequest:
    """Keys to read from one table.

    Attributes:
        schema: The table.
        features: Features to read, in the order wanted.
        keys: Entity keys in stored form (:func:`stored_key`), in key-column order.
    """

    schema: OnlineTableSchema
    features: tuple[str, ...]
    keys: tuple[tuple[Any, ...], ...]


@dataclass(frozen=True)
class TableRead:
    """The answer to one :class:`ReadRequest`.

    Attributes:
        rows: One entry per requested key, in request order; None when the key is not stored
            (or its retention has ended).
        missing_features: Requested features that have no column in the online table yet (never
            materialized since they were added); they read as NOT_FOUND.
    """

    rows: tuple[StoredRow | None, ...]
    missing_features: frozenset[str] = frozenset()


class OnlineStore(Protocol):
    """An online store: schema, writes of Arrow batches, reads by key.

    Stores are context managers; one store object holds one connection (SQLite) or one driver
    session (Cassandra) and its prepared statements. Open one per process or Spark task.
    """

    @property
    def kind(self) -> str:
        """``sqlite`` or ``cassandra``."""
        ...

    @property
    def target(self) -> str:
        """Where the store is (hosts or file), for messages."""
        ...

    def ensure_table(self, schema: OnlineTableSchema) -> None:
        """Create the keyspace/table when missing; add columns for features added later.

        Raises:
            OnlineStoreError: The store is unreachable, refuses the change, or holds a column
                of another type.
        """
        ...

    def write_batch(
        self, schema: OnlineTableSchema, batch: pa.RecordBatch, *, now: datetime | None = None
    ) -> WriteCounts:
        """Write rows (keys, features, ``event_timestamp``, optional ``created_timestamp``).

        Each row replaces the stored one only if its event is newer (module docstring). Returns
        only when every row is durable at the configured consistency.

        Raises:
            OnlineStoreError: A row still failed after retries (nothing is reported written).
            DefinitionError: The batch lacks a column of the schema or has a wrong type.
        """
        ...

    def read(
        self, requests: Sequence[ReadRequest], *, now: datetime | None = None
    ) -> list[TableRead]:
        """Read every request (concurrently where the store can); answers in request order.

        Raises:
            OnlineStoreError: The store is unreachable or a read failed (never turned into
                "not found").
        """
        ...

    def delete_keys(
        self, schema: OnlineTableSchema, keys: Sequence[tuple[Any, ...]], *, latest_write: datetime
    ) -> int:
        """Remove the stored rows of ``keys`` (stored form), whatever their event times.

        A repair tool (``feast-spark online delete``); see :mod:`feast_spark.online.repair`.
        Returns the number of keys that had a row.

        Raises:
            OnlineStoreError: The store failed, or cannot remove a key safely (Cassandra: a
                key written after ``latest_write``; nothing is deleted then).
        """
        ...

    def purge(self, schema: OnlineTableSchema) -> None:
        """Remove every row of the online table (kept, empty), whatever their event times.

        Raises:
            OnlineStoreError: The store failed (Cassandra: TRUNCATE needs every node up).
        """
        ...

    def close(self) -> None:
        """Release connections."""
        ...

    def __enter__(self) -> OnlineStore: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...


class ClosingStore:
    """``with store:`` closes the store on the way out; stores inherit this."""

    def close(self) -> None:
        """Release connections."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


# --- opening a store ------------------------------------------------------------------------------


# Names older callers use (benchmarks, the Spark writer's tests); the functions live beside the
# config they parse.
online_store_config = parse_online_store_mapping
online_store_mapping = serialize_online_store


# --- values ---------------------------------------------------------------------------------------


def now_micros(now: datetime | None = None) -> int:
    """``now`` (default: the clock) as microseconds since the epoch."""
    if now is None:
        return time.time_ns() // 1000
    return to_micros(now)


def to_micros(moment: datetime) -> int:
    """An aware datetime as microseconds since the epoch.

    Raises:
        ValueError: ``moment`` has no time zone.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment.isoformat()} has no time zone; pass an aware datetime (UTC)")
    return (moment - _EPOCH) // _MICROS


def from_micros(micros: int) -> datetime:
    """Microseconds since the epoch as an aware UTC datetime."""
    return _EPOCH + timedelta(microseconds=micros)


def retention_end_us(event_us: int, max_age: timedelta | None) -> int | None:
    """When a value with this event time stops being kept (None: never)."""
    if max_age is None:
        return None
    return event_us + RETENTION_FACTOR * (max_age // _MICROS)


def ttl_seconds(event_us: int, max_age: timedelta | None, now_us: int) -> int | None:
    """Seconds a value written at ``now_us`` must live (None: forever; 0: do not write).

    Rounded up, so a value is never dropped before its retention ends, and capped at
    Cassandra's maximum TTL.
    """
    end = retention_end_us(event_us, max_age)
    if end is None:
        return None
    if end <= now_us:
        return 0
    return min(math.ceil((end - now_us) / 1_000_000), MAX_TTL_SECONDS)


def is_retained(event_us: int, max_age: timedelta | None, now_us: int) -> bool:
    """Whether a stored value with this event time is still kept at ``now_us``."""
    end = retention_end_us(event_us, max_age)
    return end is None or now_us < end


def retention_cutoff_us(max_age: timedelta | None, now_us: int) -> int | None:
    """The event time at or before which values are no longer kept at ``now_us`` (None: never).

    ``event_us > retention_cutoff_us(...)`` is :func:`is_retained`, computed once per read.
    """
    if max_age is None:
        return None
    return now_us - RETENTION_FACTOR * (max_age // _MICROS)


def value_picker(
    present: Sequence[str], features: Sequence[str], *, offset: int
) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """A function from a stored row to the values of ``features``, in that order.

    Args:
        present: The features the row holds, from column ``offset`` on.
        features: The features wanted; one not in ``present`` reads as None.
        offset: The column of ``present[0]`` in the row.
    """
    index = {name: i for i, name in enumerate(present, start=offset)}
    if len(features) > 1 and all(f in index for f in features):
        return itemgetter(*[index[f] for f in features])
    positions = [index.get(f) for f in features]
    return lambda raw: tuple([None if i is None else raw[i] for i in positions])


#: Each value type's scalar type (``ValueType.element`` builds an enum member on every call).
_ELEMENT = {value_type: value_type.element for value_type in ValueType}


def needs_conversion(value_type: ValueType) -> bool:
    """Whether stored values of this type differ from what users get (timestamps)."""
    return value_type is ValueType.UNIX_TIMESTAMP or value_type is ValueType.UNIX_TIMESTAMP_LIST


def stored_key(value: Any, value_type: ValueType, *, entity: str, row: int) -> Any:
    """A user-given entity key value in stored form (timestamps as microseconds).

    Raises:
        DefinitionError: The value is missing or does not fit the entity's type.
    """
    if value is None:
        raise DefinitionError(
            "entity", entity, f"entity row {row} has a null value for '{entity}'; give a value"
        )
    element = _ELEMENT[value_type]
    try:
        if element is ValueType.UNIX_TIMESTAMP:
            if isinstance(value, datetime):
                return to_micros(value)
            raise TypeError("expected an aware datetime")
        if element in (ValueType.INT32, ValueType.INT64):
            if isinstance(value, bool | float):
                raise TypeError("expected an integer")
            number = int(value.__index__())
            bits = 31 if element is ValueType.INT32 else 63
            if not -(2**bits) <= number < 2**bits:
                raise ValueError(f"out of range for {element.value}")
            return number
        if element is ValueType.STRING:
            if not isinstance(value, str):
                raise TypeError("expected a string")
            return value
        if element is ValueType.BYTES:
            if not isinstance(value, bytes | bytearray | memoryview):
                raise TypeError("expected bytes")
            return bytes(value)
        if element is ValueType.BOOL:
            if not isinstance(value, bool) and type(value).__name__ != "bool_":
                raise TypeError("expected a bool")
            return bool(value)
    except (TypeError, ValueError, AttributeError) as error:
        raise DefinitionError(
            "entity",
            entity,
            f"entity row {row}: value {value!r} ({type(value).__name__}) does not fit type "
            f"{value_type.value}: {error}",
        ) from None
    raise DefinitionError("entity", entity, f"value type {value_type.value} cannot be a key")


def user_value(value: Any, value_type: ValueType) -> Any:
    """A stored value as users get it (``UNIX_TIMESTAMP`` micros become UTC datetimes)."""
    if value is None or not needs_conversion(value_type):
        return value
    if value_type.is_list:
        return [None if v is None else from_micros(v) for v in value]
    return from_micros(value)


# --- Arrow batches --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecodedBatch:
    """An Arrow batch as Python columns in stored form.

    Attributes:
        keys: One list per entity column.
        features: One list per feature, in schema order (empty lists are None).
        event_us: Event times, microseconds.
        created_us: Created times, microseconds (None where the batch has none).
    """

    keys: tuple[list[Any], ...]
    features: tuple[list[Any], ...]
    event_us: list[int]
    created_us: list[int | None]

    @property
    def num_rows(self) -> int:
        """Rows in the batch."""
        return len(self.event_us)


def decode_batch(schema: OnlineTableSchema, batch: pa.RecordBatch) -> DecodedBatch:
    """Check and convert an Arrow batch to stored-form Python columns.

    Columns are found by name (others are ignored) and cast safely to the schema's types, so an
    ``int64`` column that holds a value too big for ``INT32`` is an error, not a wrap-around.

    Raises:
        DefinitionError: A column is missing or cannot be cast, or a key or event time is null.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    names = batch.schema.names

    def column(name: str, value_type: ValueType | None, *, nullable: bool) -> list[Any]:
        if name not in names:
            raise DefinitionError(
                "feature table",
                schema.table,
                f"the batch written to the online store has no column '{name}' "
                f"(columns: {', '.join(names)})",
            )
        array = batch.column(names.index(name))
        target = pa.timestamp("us", tz="UTC") if value_type is None else value_type.arrow_type()
        try:
            if array.type != target:
                array = pc.cast(array, target, safe=True)
            if value_type is None or value_type.element is ValueType.UNIX_TIMESTAMP:
                is_list = value_type is not None and value_type.is_list
                array = array.cast(pa.list_(pa.int64()) if is_list else pa.int64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
            raise DefinitionError(
                "feature table",
                schema.table,
                f"column '{name}' of type {array.type} cannot be stored as "
                f"{value_type.value if value_type else 'a timestamp'}: {error}",
            ) from None
        if not nullable and array.null_count:
            raise DefinitionError(
                "feature table",
                schema.table,
                f"column '{name}' has {array.null_count} null values; keys and event times "
                "must not be null",
            )
        values: list[Any] = array.to_pylist()
        if value_type is not None and value_type.is_list:
            values = [v if v else None for v in values]
        return values

    keys = tuple(column(n, t, nullable=False) for n, t in schema.entities)
    features = tuple(column(n, t, nullable=True) for n, t in schema.features)
    event_us = column(EVENT_TIMESTAMP, None, nullable=False)
    created_us = (
        column(CREATED_TIMESTAMP, None, nullable=True)
        if CREATED_TIMESTAMP in names
        else [None] * len(event_us)
    )
    return DecodedBatch(keys, features, event_us, created_us)


def read_error(store: str, target: str, table: str, error: BaseException) -> OnlineStoreError:
    """An OnlineStoreError for a failed read of ``table``, naming the host(s) and the cause.

    Driver errors are described by :func:`~feast_spark.online.cassandra_requests.describe_error`
    (each host's error, the consistency and replicas of an Unavailable, ...).
    """
    from feast_spark.online.cassandra_requests import describe_error

    return OnlineStoreError(
        store, target, f"reading table '{table}' failed: {describe_error(error)}"
    )
