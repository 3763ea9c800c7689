"""The embedded online store: one SQLite file, for local mode.

Layout: one table per project feature table (named by :mod:`feast_spark.online.naming`), the
entity columns as primary key, one column per feature, ``event_timestamp`` and
``created_timestamp`` (microseconds since the epoch). Column types
(:attr:`~feast_spark.types.ValueType.sqlite_type`): ``INTEGER`` for INT32,
INT64, BOOL and UNIX_TIMESTAMP (microseconds), ``REAL`` for FLOAT and DOUBLE, ``TEXT`` for
STRING, ``BLOB`` for BYTES, and ``TEXT`` holding JSON for lists (BYTES_LIST elements as base64).

The same rules as Cassandra (:mod:`feast_spark.online.base`): a row replaces the stored one only
when it wins the point-in-time rule (:mod:`feast_spark.online.ordering`), in one upsert::

    INSERT ... ON CONFLICT (keys) DO UPDATE SET ... WHERE (excluded.event_timestamp,
        excluded.created_timestamp) > (stored event_timestamp, stored created_timestamp)
        OR (times equal AND feast_values_greater(new values..., stored values...))

(a missing created time counts as the oldest; the function compares decoded values as Spark
does). Retention is checked at read time; rows whose
retention ended before they were written are not written.

One difference from Cassandra: SQLite stores a NaN as NULL, so a NaN feature value reads as
NULL_VALUE here and as a PRESENT NaN from Cassandra.

Several Spark tasks of one local job write to the file at once: the database is in WAL mode and
each write waits up to ``BUSY_TIMEOUT_S`` for the lock. Executors on other machines cannot share
the file, which is why the configuration allows SQLite only with a local Spark master.
"""

from __future__ import annotations

import base64
import functools
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from feast_spark.columns import CREATED_TIMESTAMP, EVENT_TIMESTAMP
from feast_spark.config import SqliteOnlineStoreConfig
from feast_spark.errors import OnlineStoreError
from feast_spark.online.base import (
    ClosingStore,
    OnlineTableSchema,
    ReadRequest,
    StoredRow,
    TableRead,
    WriteCounts,
    decode_batch,
    now_micros,
    read_error,
    retention_cutoff_us,
    retention_end_us,
    value_picker,
)
from feast_spark.online.naming import quote_identifier
from feast_spark.online.ordering import value_key
from feast_spark.types import ValueType

if TYPE_CHECKING:
    import pyarrow as pa

STORE: Final = "sqlite"
#: How long a writer waits for another writer's lock.
BUSY_TIMEOUT_S: Final = 60.0
_OLDEST: Final = -(2**63)

#: SQL templates; identifiers are checked names, quoted anyway.
SQL: Final = {
    "create_table": "CREATE TABLE IF NOT EXISTS {table} ({columns}, PRIMARY KEY ({keys}))",
    "add_column": "ALTER TABLE {table} ADD COLUMN {column} {type}",
    "columns": "SELECT name, type FROM pragma_table_info(?)",
    "upsert": (
        "INSERT INTO {table} ({columns}) VALUES ({markers}) "
        "ON CONFLICT ({keys}) DO UPDATE SET {assignments} "
        "WHERE (excluded.{event}, coalesce(excluded.{created}, {oldest})) "
        "> ({table}.{event}, coalesce({table}.{created}, {oldest})) "
        "OR ((excluded.{event}, coalesce(excluded.{created}, {oldest})) "
        "= ({table}.{event}, coalesce({table}.{created}, {oldest})) "
        "AND {values_greater}({new_values}, {stored_values}))"
    ),
    "select": "SELECT {columns} FROM {table} WHERE {where}",
    "select_keys": "SELECT {columns} FROM {table} WHERE {keys} IN ({values})",
}

#: Keys read by one query at most (one query per table and chunk, not one per key).
READ_KEYS_PER_QUERY: Final = 500

#: Error texts.
ERRORS: Final = {
    "open": "cannot open the database: {error}; check that the folder exists and is writable",
    "type_mismatch": (
        "column {table}.{column} has type {actual} but feature table '{feature_table}' declares "
        "{expected} (stored as {stored}); drop the table ({table}) from {path} and materialize "
        "again"
    ),
    "write": "writing {rows} rows to table {table} failed: {error_type}: {error}",
}


def _encoder(value_type: ValueType) -> Callable[[Any], Any] | None:
    """Stored form -> SQLite value (None: as is)."""
    if not value_type.is_list:
        return None
    if value_type.element is ValueType.BYTES:
        return lambda v: (
            None
            if v is None
            else json.dumps([None if b is None else base64.b64encode(b).decode("ascii") for b in v])
        )
    return lambda v: None if v is None else json.dumps(v)


def _decoder(value_type: ValueType) -> Callable[[Any], Any] | None:
    """SQLite value -> stored form (None: as is)."""
    if value_type is ValueType.BOOL:
        return lambda v: None if v is None else bool(v)
    if value_type is ValueType.BOOL_LIST:
        return lambda v: (
            None if v is None else [None if b is None else bool(b) for b in json.loads(v)]
        )
    if value_type is ValueType.BYTES_LIST:
        return lambda v: (
            None
            if v is None
            else [None if b is None else base64.b64decode(b) for b in json.loads(v)]
        )
    if value_type.is_list:
        return lambda v: None if v is None else json.loads(v)
    return None


def _connect(path: str) -> sqlite3.Connection:
    """A connection to ``path`` in WAL mode.

    Switching to (or checking) WAL mode can fail at once with "database is locked" while another
    process opens or closes the file: SQLite does not wait on its busy timeout then. A reader
    opening the store while a Spark task writes hit it; the open is tried again until
    ``BUSY_TIMEOUT_S`` has passed.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        connection = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.OperationalError as error:
            connection.close()
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)
        else:
            return connection


class SqliteOnlineStore(ClosingStore):
    """One connection to the SQLite online store file.

    Safe to share between threads (calls are serialized); every Spark task opens its own.
    """

    def __init__(self, config: SqliteOnlineStoreConfig) -> None:
        """Open (and create when missing) the database file.

        Raises:
            OnlineStoreError: The file cannot be opened or created.
        """
        self._path = config.path
        self._lock = threading.Lock()
        try:
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
            self._connection = _connect(self._path)
        except (sqlite3.Error, OSError) as error:
            raise OnlineStoreError(STORE, self._path, ERRORS["open"].format(error=error)) from error
        self._columns_cache: dict[str, dict[str, str]] = {}
        self._functions: set[str] = set()

    @property
    def kind(self) -> str:
        """``sqlite``."""
        return STORE

    @property
    def target(self) -> str:
        """The database file."""
        return self._path

    def close(self) -> None:
        """Close the connection."""
        self._connection.close()

    # --- schema ----------------------------------------------------------------------------------

    def _columns(self, table: str, *, refresh: bool = False) -> dict[str, str] | None:
        """Column name -> declared type, or None when the table does not exist."""
        if refresh or table not in self._columns_cache:
            rows = self._connection.execute(SQL["columns"], (table,)).fetchall()
            if not rows:
                self._columns_cache.pop(table, None)
                return None
            self._columns_cache[table] = {name: declared.upper() for name, declared in rows}
        return self._columns_cache[table]

    def ensure_table(self, schema: OnlineTableSchema) -> None:
        """Create the table when missing; add columns for features added later.

        Raises:
            OnlineStoreError: The database refuses, or a column has another type.
        """
        table = quote_identifier(schema.name)
        columns = [
            *(f"{quote_identifier(n)} {t.sqlite_type} NOT NULL" for n, t in schema.entities),
            *(f"{quote_identifier(n)} {t.sqlite_type}" for n, t in schema.features),
            f"{quote_identifier(EVENT_TIMESTAMP)} INTEGER NOT NULL",
            f"{quote_identifier(CREATED_TIMESTAMP)} INTEGER",
        ]
        with self._lock:
            try:
                self._connection.execute(
                    SQL["create_table"].format(
                        table=table,
                        columns=", ".join(columns),
                        keys=", ".join(quote_identifier(n) for n in schema.entity_names),
                    )
                )
                existing = self._columns(schema.name, refresh=True) or {}
                for name, value_type in (*schema.entities, *schema.features):
                    expected = value_type.sqlite_type
                    actual = existing.get(name)
                    if actual is None:
                        self._connection.execute(
                            SQL["add_column"].format(
                                table=table, column=quote_identifier(name), type=expected
                            )
                        )
                    elif actual != expected:
                        raise OnlineStoreError(
                            STORE,
                            self._path,
                            ERRORS["type_mismatch"].format(
                                table=schema.name, column=name, actual=actual,
                                feature_table=schema.table, expected=value_type.value,
                                stored=expected, path=self._path,
                            ),
                        )  # fmt: skip
                self._columns(schema.name, refresh=True)
            except sqlite3.Error as error:
                raise OnlineStoreError(
                    STORE, self._path, f"creating table {schema.name} failed: {error}"
                ) from error

    # --- writes ----------------------------------------------------------------------------------

    def write_batch(
        self, schema: OnlineTableSchema, batch: pa.RecordBatch, *, now: datetime | None = None
    ) -> WriteCounts:
        """Upsert an Arrow batch; a row replaces the stored one only when it is newer.

        Raises:
            OnlineStoreError: The database refused the write (the transaction is rolled back).
            DefinitionError: The batch does not match the schema.
        """
        decoded = decode_batch(schema, batch)
        if decoded.num_rows == 0:
            return WriteCounts()
        features = []
        for (_, value_type), values in zip(schema.features, decoded.features, strict=True):
            encode = _encoder(value_type)
            features.append(values if encode is None else [encode(v) for v in values])
        rows = zip(*decoded.keys, *features, decoded.event_us, decoded.created_us, strict=True)
        parameters: list[tuple[Any, ...]]
        if schema.max_age is None:
            parameters = list(rows)
        else:
            now_us = now_micros(now)
            parameters = [
                row
                for row, event in zip(rows, decoded.event_us, strict=True)
                if (retention_end_us(event, schema.max_age) or 0) > now_us
            ]
        with self._lock:
            statement = self._upsert(schema)
            try:
                self._connection.execute("BEGIN IMMEDIATE")
                try:
                    self._connection.executemany(statement, parameters)
                except BaseException:
                    self._connection.execute("ROLLBACK")
                    raise
                self._connection.execute("COMMIT")
            except sqlite3.Error as error:
                raise OnlineStoreError(
                    STORE,
                    self._path,
                    ERRORS["write"].format(
                        rows=len(parameters), table=schema.name,
                        error_type=type(error).__name__, error=error,
                    ),
                ) from error  # fmt: skip
        # Per key (a batch may hold several rows of one key); a key whose rows all expired
        # counts as expired.
        width = len(schema.entity_names)
        keys = len(set(zip(*decoded.keys, strict=True)))
        written = len({row[:width] for row in parameters})
        return WriteCounts(written=written, expired=keys - written)

    def _upsert(self, schema: OnlineTableSchema) -> str:
        table = quote_identifier(schema.name)
        columns = [*schema.entity_names, *schema.feature_names, EVENT_TIMESTAMP, CREATED_TIMESTAMP]
        updated = [*schema.feature_names, EVENT_TIMESTAMP, CREATED_TIMESTAMP]
        features = [quote_identifier(f) for f in schema.feature_names]
        return SQL["upsert"].format(
            table=table,
            columns=", ".join(quote_identifier(c) for c in columns),
            markers=", ".join("?" for _ in columns),
            keys=", ".join(quote_identifier(k) for k in schema.entity_names),
            assignments=", ".join(
                f"{quote_identifier(c)} = excluded.{quote_identifier(c)}" for c in updated
            ),
            event=quote_identifier(EVENT_TIMESTAMP),
            created=quote_identifier(CREATED_TIMESTAMP),
            oldest=_OLDEST,
            values_greater=self._values_greater(schema),
            new_values=", ".join(f"excluded.{f}" for f in features) or "NULL",
            stored_values=", ".join(f"{table}.{f}" for f in features) or "NULL",
        )

    def _values_greater(self, schema: OnlineTableSchema) -> str:
        """Register (once per connection) and name an SQL function: new values > stored ones?

        Rows tied on event and created time go to the greatest values, compared as the
        point-in-time rule does (:mod:`feast_spark.online.ordering`) on decoded values; SQL's own
        ordering differs for lists (JSON text) and bytes lists (base64).
        """
        types = [t for _, t in schema.features] or [ValueType.INT64]
        name = "feast_values_greater_" + "_".join(t.name.lower() for t in types)
        if name not in self._functions:
            decoders = [_decoder(t) or (lambda v: v) for t in types]
            count = len(types)

            def greater(*values: Any) -> bool:
                new = [decode(v) for decode, v in zip(decoders, values[:count], strict=True)]
                old = [decode(v) for decode, v in zip(decoders, values[count:], strict=True)]
                return tuple(map(value_key, new)) > tuple(map(value_key, old))

            self._connection.create_function(name, 2 * count, greater, deterministic=True)
            self._functions.add(name)
        return name

    # --- reads -----------------------------------------------------------------------------------

    def read(
        self, requests: Sequence[ReadRequest], *, now: datetime | None = None
    ) -> list[TableRead]:
        """Read each request's keys; answers in request order.

        Raises:
            OnlineStoreError: The database refused a read.
        """
        with self._lock:
            return self._read_all(requests, now_micros(now))

    def read_if_free(
        self, requests: Sequence[ReadRequest], *, now: datetime | None = None
    ) -> list[TableRead] | None:
        """:meth:`read` at once if no other thread is using the connection, else None.

        For a caller that must not wait for another thread's read (an event loop). A reader in
        WAL mode does not wait for writers either, and a read of a few keys takes less time than
        handing it to a worker thread.

        Raises:
            OnlineStoreError: The database refused a read.
        """
        if not self._lock.acquire(blocking=False):
            return None
        try:
            return self._read_all(requests, now_micros(now))
        finally:
            self._lock.release()

    def _read_all(self, requests: Sequence[ReadRequest], now_us: int) -> list[TableRead]:
        answers = []
        for request in requests:
            try:
                answers.append(self._read_one(request, now_us))
            except sqlite3.Error as error:
                raise read_error(STORE, self._path, request.schema.name, error) from error
        return answers

    def _read_one(self, request: ReadRequest, now_us: int) -> TableRead:
        schema = request.schema
        columns = self._columns(schema.name)
        if columns is not None and not all(f in columns for f in request.features):
            columns = self._columns(schema.name, refresh=True)  # added by another process?
        if columns is None:
            columns = self._columns(schema.name, refresh=True)
            if columns is None:
                return TableRead((None,) * len(request.keys), frozenset(request.features))
        present = tuple(f for f in request.features if f in columns)
        width = len(schema.entities)
        decoders = [_decoder(schema.feature_type(f)) for f in present]
        pick = value_picker(present, request.features, offset=0)
        cutoff = retention_cutoff_us(schema.max_age, now_us)
        stored: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        keys = request.keys
        for start in range(0, len(keys), READ_KEYS_PER_QUERY):
            chunk = keys[start : start + READ_KEYS_PER_QUERY]
            statement = _select_keys(schema, present, len(chunk))
            parameters = [value for key in chunk for value in key]
            for raw in self._connection.execute(statement, parameters):
                stored[tuple(raw[:width])] = raw[width:]
        rows: list[StoredRow | None] = []
        for key in keys:
            raw = stored.get(key)
            if raw is None or (cutoff is not None and raw[-1] <= cutoff):
                rows.append(None)
                continue
            decoded = [
                value if decode is None else decode(value)
                for value, decode in zip(raw[:-1], decoders, strict=True)
            ]
            rows.append(StoredRow(raw[-1], pick(decoded)))
        return TableRead(tuple(rows), frozenset(request.features) - set(present))

    # --- repair ----------------------------------------------------------------------------------

    def delete_keys(
        self, schema: OnlineTableSchema, keys: Sequence[tuple[Any, ...]], *, latest_write: datetime
    ) -> int:
        """Delete the rows of ``keys``: any event time, since SQLite compares at write time.

        The next materialization writes whatever is then the latest row of each key.

        Raises:
            OnlineStoreError: The database refused.
        """
        if self._columns(schema.name, refresh=True) is None:
            return 0
        statement = "DELETE FROM {table} WHERE {where}".format(
            table=quote_identifier(schema.name),
            where=" AND ".join(f"{quote_identifier(k)} = ?" for k in schema.entity_names),
        )
        with self._lock:
            try:
                self._connection.execute("BEGIN IMMEDIATE")
                deleted = 0
                try:
                    for key in keys:
                        deleted += self._connection.execute(statement, key).rowcount
                except BaseException:
                    self._connection.execute("ROLLBACK")
                    raise
                self._connection.execute("COMMIT")
            except sqlite3.Error as error:
                raise OnlineStoreError(
                    STORE, self._path, f"deleting keys of table {schema.name} failed: {error}"
                ) from error
        return deleted

    def purge(self, schema: OnlineTableSchema) -> None:
        """Delete every row of the table (the table stays).

        Raises:
            OnlineStoreError: The database refused.
        """
        if self._columns(schema.name, refresh=True) is None:
            return
        with self._lock:
            try:
                self._connection.execute(f"DELETE FROM {quote_identifier(schema.name)}")
            except sqlite3.Error as error:
                raise OnlineStoreError(
                    STORE, self._path, f"purging table {schema.name} failed: {error}"
                ) from error


@functools.lru_cache(maxsize=1024)
def _select_keys(schema: OnlineTableSchema, present: tuple[str, ...], count: int) -> str:
    """``SELECT keys, features, event_timestamp ... WHERE (keys) IN (...)`` for ``count`` keys."""
    names = schema.entity_names
    markers = "(" + ", ".join("?" for _ in names) + ")"
    if len(names) == 1:
        keys, values = quote_identifier(names[0]), ", ".join("?" for _ in range(count))
    else:
        keys = "(" + ", ".join(quote_identifier(k) for k in names) + ")"
        values = "VALUES " + ", ".join(markers for _ in range(count))
    return SQL["select_keys"].format(
        columns=", ".join(quote_identifier(c) for c in (*names, *present, EVENT_TIMESTAMP)),
        table=quote_identifier(schema.name),
        keys=keys,
        values=values,
    )
