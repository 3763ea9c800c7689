"""Apache Cassandra as the online store: connection, schema, reads, writes and repair.

Layout (readable with plain cqlsh; table names from :mod:`feast_spark.online.naming`)::

    CREATE KEYSPACE feast WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1};
    CREATE TABLE feast.<project>__<table> (
        driver_id bigint,            -- one column per entity: the partition key
        conv_rate double,            -- one natively typed column per feature
        trips frozen<list<int>>,    -- lists frozen: one cell, last-write-wins like a scalar
        event_timestamp bigint,      -- microseconds since the epoch
        created_timestamp bigint,    -- microseconds; null in rows written before it was kept
        PRIMARY KEY ((driver_id)));

Which row is kept per key, whatever the order of writes, and how writes are timestamped, batched
and retried: see :mod:`feast_spark.online.cassandra_writes` (the store's writer). Reads of all
requested tables and keys run concurrently with prepared statements: one ``IN`` select per
replica and few dozen keys of a table keyed by one entity, else one select per key
(:mod:`feast_spark.online.cassandra_reads`). A failed read is an error naming the hosts and the
cause, never a missing value. The rest lives in :mod:`~feast_spark.online.cassandra_connection`
(cluster, profiles, TLS), :mod:`~feast_spark.online.cassandra_statements` (prepared statements)
and :mod:`~feast_spark.online.cassandra_cql` (CQL and error texts).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from feast_spark.columns import CREATED_TIMESTAMP, EVENT_TIMESTAMP
from feast_spark.config import CassandraOnlineStoreConfig
from feast_spark.errors import OnlineStoreError
from feast_spark.online.base import (
    ClosingStore,
    OnlineTableSchema,
    ReadRequest,
    TableRead,
    WriteCounts,
    now_micros,
)
from feast_spark.online.cassandra_connection import READ_PROFILE, WRITE_PROFILE, connect
from feast_spark.online.cassandra_cql import (
    CQL,
    ERRORS,
    STORE,
    cql_column_type,
    driver_errors,
    replication_literal,
    string_literal,
)
from feast_spark.online.cassandra_reads import (
    Fetch,
    PendingRead,
    Select,
    key_list_selects,
    reads_by_key_list,
)
from feast_spark.online.cassandra_statements import PreparedStatements
from feast_spark.online.cassandra_writes import CassandraWriter
from feast_spark.online.naming import quote_identifier

if TYPE_CHECKING:
    import pyarrow as pa
    from cassandra.cluster import Session

_log = logging.getLogger(__name__)

#: Reads in flight per call.
READ_CONCURRENCY: Final = 256


class CassandraOnlineStore(ClosingStore):
    """One driver session on a Cassandra cluster, with its prepared statements.

    Statements are prepared once per store object (that is, per session), never shared between
    sessions. Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, config: CassandraOnlineStoreConfig) -> None:
        """Connect to the cluster.

        Raises:
            OnlineStoreError: No host answers (names the hosts tried and the driver's error).
            ConfigError: A TLS file cannot be loaded.
        """
        self._config = config
        self._target = ",".join(f"{host}:{config.port}" for host in config.hosts)
        self._keyspace = quote_identifier(config.keyspace)
        self._cluster, self._session = connect(config, self._target)
        self._statements = PreparedStatements(self._session, config.keyspace, self._target)
        self._writer = CassandraWriter(
            config, self._target, self._session, self._cluster, self._statements
        )

    # --- connection ------------------------------------------------------------------------------

    @property
    def kind(self) -> str:
        """``cassandra``."""
        return STORE

    @property
    def target(self) -> str:
        """The contact points, ``host:port,...``."""
        return self._target

    @property
    def session(self) -> Session:
        """The driver session (for tools and benchmarks)."""
        return self._session

    def close(self) -> None:
        """Shut the driver's connections and threads down."""
        self._cluster.shutdown()

    # --- schema ----------------------------------------------------------------------------------

    def ensure_table(self, schema: OnlineTableSchema) -> None:
        """Create the keyspace and table when missing; add columns for new features.

        Raises:
            OnlineStoreError: A DDL statement failed, or the table has other keys or a column of
                another type.
        """
        table = quote_identifier(schema.name)
        self._ddl(
            "create keyspace " + self._config.keyspace,
            CQL["create_keyspace"].format(
                keyspace=self._keyspace,
                replication=replication_literal(dict(self._config.replication)),
            ),
        )
        columns = [
            *(f"{quote_identifier(n)} {cql_column_type(t)}" for n, t in schema.entities),
            *(f"{quote_identifier(n)} {cql_column_type(t)}" for n, t in schema.features),
            f"{quote_identifier(EVENT_TIMESTAMP)} bigint",
            f"{quote_identifier(CREATED_TIMESTAMP)} bigint",
        ]
        comment = f"feast-spark online table: project '{schema.project}', table '{schema.table}'"
        self._ddl(
            f"create table {self._config.keyspace}.{schema.name}",
            CQL["create_table"].format(
                keyspace=self._keyspace,
                table=table,
                columns=", ".join(columns),
                keys=", ".join(quote_identifier(n) for n in schema.entity_names),
                comment=string_literal(comment),
            ),
        )
        existing = self._columns(schema.name, refresh=True) or {}
        self._check_keys(schema)
        if CREATED_TIMESTAMP not in existing:  # a table written before created times were kept
            self._add_column(schema, CREATED_TIMESTAMP, "bigint")
        for name, value_type in schema.features:
            actual = existing.get(name)
            expected = cql_column_type(value_type)
            if actual is None:
                self._add_column(schema, name, expected)
            elif actual != expected:
                raise OnlineStoreError(
                    STORE, self._target, self._type_mismatch(schema, name, actual, expected)
                )

    def _add_column(self, schema: OnlineTableSchema, column: str, cql_type: str) -> None:
        from cassandra import InvalidRequest

        statement = CQL["add_column"].format(
            keyspace=self._keyspace, table=quote_identifier(schema.name),
            column=quote_identifier(column), type=cql_type,
        )  # fmt: skip
        try:
            self._session.execute(statement)
        except InvalidRequest:
            # Another process may have added it meanwhile; accept that if the type agrees.
            actual = (self._columns(schema.name, refresh=True) or {}).get(column)
            if actual == cql_type:
                return
            if actual is not None:
                raise OnlineStoreError(
                    STORE, self._target, self._type_mismatch(schema, column, actual, cql_type)
                ) from None
            raise
        except driver_errors() as error:
            raise OnlineStoreError(
                STORE, self._target,
                ERRORS["ddl_failed"].format(action=f"adding column {column}", error=error),
            ) from error  # fmt: skip
        _log.info("added column %s %s to %s.%s", column, cql_type, self._config.keyspace,
                  schema.name)  # fmt: skip

    def _type_mismatch(
        self, schema: OnlineTableSchema, column: str, actual: str, expected: str
    ) -> str:
        return ERRORS["type_mismatch"].format(
            keyspace=self._config.keyspace, table=schema.name, column=column, actual=actual,
            feature_table=schema.table, expected=expected,
        )  # fmt: skip

    def _check_keys(self, schema: OnlineTableSchema) -> None:
        metadata = self._table_metadata(schema.name)
        if metadata is None:
            return
        actual = [(c.name, c.cql_type) for c in metadata.partition_key]
        expected = [(n, cql_column_type(t)) for n, t in schema.entities]
        if actual != expected or metadata.clustering_key:
            raise OnlineStoreError(
                STORE,
                self._target,
                ERRORS["key_mismatch"].format(
                    keyspace=self._config.keyspace,
                    table=schema.name,
                    actual=", ".join(f"{n} {t}" for n, t in actual),
                    feature_table=schema.table,
                    expected=", ".join(f"{n} {t}" for n, t in expected),
                ),
            )

    def _ddl(self, action: str, statement: str) -> None:
        try:
            self._session.execute(statement)
        except driver_errors() as error:
            raise OnlineStoreError(
                STORE, self._target, ERRORS["ddl_failed"].format(action=action, error=error)
            ) from error

    def _table_metadata(self, table: str) -> Any:
        keyspace = self._cluster.metadata.keyspaces.get(self._config.keyspace)
        return None if keyspace is None else keyspace.tables.get(table)

    def _columns(self, table: str, *, refresh: bool = False) -> dict[str, str] | None:
        """Column name -> CQL type of an online table, or None when it does not exist."""
        if refresh:
            try:
                self._cluster.refresh_table_metadata(self._config.keyspace, table)
            except driver_errors() as error:
                _log.debug("refreshing metadata of %s failed: %s", table, error)
        metadata = self._table_metadata(table)
        if metadata is None:
            return None
        return {name: column.cql_type for name, column in metadata.columns.items()}

    # --- writes ----------------------------------------------------------------------------------

    def write_batch(
        self, schema: OnlineTableSchema, batch: pa.RecordBatch, *, now: datetime | None = None
    ) -> WriteCounts:
        """Write the rows that win the point-in-time rule against what is stored.

        See :meth:`CassandraWriter.write_batch
        <feast_spark.online.cassandra_writes.CassandraWriter.write_batch>`.

        Raises:
            OnlineStoreError: Rows still failed after retries, or failed with an error that
                retrying cannot fix.
            DefinitionError: The batch does not match the schema.
        """
        return self._writer.write_batch(schema, batch, now=now)

    # --- reads -----------------------------------------------------------------------------------

    def read(
        self, requests: Sequence[ReadRequest], *, now: datetime | None = None
    ) -> list[TableRead]:
        """Read all requests concurrently; answers in request order.

        A table that does not exist yet reads as all keys missing; a feature without a column
        reads as missing. Driver errors raise (they are never turned into "not found").

        Raises:
            OnlineStoreError: A read failed.
        """
        return self.start_read(requests, now=now).result()

    def start_read(
        self, requests: Sequence[ReadRequest], *, now: datetime | None = None
    ) -> PendingRead:
        """Send every select of ``requests`` and return without waiting.

        A table keyed by one entity (of a type matched exactly) is read with one ``IN`` select
        per group of keys sharing a primary replica (sent to that replica), others one partition
        per select. All selects go out at once (at most :data:`READ_CONCURRENCY` in flight; each
        answer sends the next). ``result()`` waits for them; ``add_done_callback`` is told, from
        the driver's thread, when the last one arrived, so an event loop can wait without
        blocking. :meth:`read` is ``start_read(...).result()``.
        """
        plans: list[tuple[tuple[str, ...], int] | None] = []
        jobs: list[Select] = []
        for request in requests:
            metadata = self._table_metadata(request.schema.name)
            if metadata is None:
                plans.append(None)
                continue
            columns = metadata.columns
            present = tuple(f for f in request.features if f in columns)
            selects = self._selects(request, present)
            plans.append((present, len(selects)))
            jobs.extend(selects)
        fetch = Fetch(
            self._session, jobs, self._target, READ_PROFILE, READ_CONCURRENCY, driver_errors()
        )
        fetch.start()
        return PendingRead(fetch, requests, plans, now_micros(now))

    def _selects(self, request: ReadRequest, present: tuple[str, ...]) -> list[Select]:
        schema = request.schema
        single = self._statements.select(schema, present)
        keys = list(dict.fromkeys(request.keys))
        if not reads_by_key_list(schema):
            return [(single, key, schema.name) for key in keys]
        many = self._statements.select(schema, present, many=True)
        selects = key_list_selects(self._session, self._config.keyspace, single, many, keys)
        return [(bound, None, schema.name) for bound, _ in selects]

    # --- repair ----------------------------------------------------------------------------------

    def delete_keys(
        self, schema: OnlineTableSchema, keys: Sequence[tuple[Any, ...]], *, latest_write: datetime
    ) -> int:
        """Delete the partitions of ``keys`` with tombstones at their own write timestamps.

        A Cassandra delete only hides cells written at or before its timestamp, and its
        tombstone then hides every later write at or before that timestamp too (until
        ``gc_grace_seconds`` pass and compaction drops it). So each key is deleted at the
        highest write timestamp it holds (its newest event time): later events show again.
        A key written after ``latest_write`` (now plus the future allowance: a poisoned,
        future-dated value) is refused, and nothing is deleted: its tombstone would hide every
        correct value until that future date. Purge the table and materialize it again instead.

        Raises:
            OnlineStoreError: A key was written after ``latest_write``, or the store failed.
        """
        from feast_spark.online.base import from_micros, to_micros

        columns = self._columns(schema.name, refresh=True)
        if columns is None:
            return 0
        cells = [c for c in columns if c not in schema.entity_names]
        where = " AND ".join(f"{quote_identifier(k)} = ?" for k in schema.entity_names)
        table = f"{self._keyspace}.{quote_identifier(schema.name)}"
        select = self._statements.prepared(
            ("writetime", schema.name, tuple(cells)),
            lambda: "SELECT {} FROM {} WHERE {}".format(
                ", ".join(f"WRITETIME({quote_identifier(c)})" for c in cells), table, where
            ),
            idempotent=True,
        )
        delete = self._statements.prepared(
            ("delete", schema.name, schema.entity_names),
            lambda: f"DELETE FROM {table} USING TIMESTAMP ? WHERE {where}",
            idempotent=True,
        )
        limit = to_micros(latest_write)
        stamps: list[tuple[tuple[Any, ...], int]] = []
        try:
            for key in keys:
                row = self._session.execute(select, key, execution_profile=WRITE_PROFILE).one()
                written = [t for t in (row or ()) if t is not None]
                if not written:
                    continue
                stamp = max(written)
                if stamp > limit:
                    raise OnlineStoreError(
                        STORE, self._target,
                        ERRORS["poisoned_key"].format(
                            key=", ".join(f"{n}={v!r}" for n, v in
                                          zip(schema.entity_names, key, strict=True)),
                            keyspace=self._config.keyspace, table=schema.name,
                            written=from_micros(stamp).isoformat(), feature_table=schema.table,
                        ),
                    )  # fmt: skip
                stamps.append((key, stamp))
            for key, stamp in stamps:
                self._session.execute(delete, (stamp, *key), execution_profile=WRITE_PROFILE)
        except driver_errors() as error:
            raise OnlineStoreError(
                STORE, self._target, f"deleting keys of {schema.name} failed: {error}"
            ) from error
        return len(stamps)

    def purge(self, schema: OnlineTableSchema) -> None:
        """``TRUNCATE`` the table: every row goes, whatever its write timestamps.

        Cassandra needs every node up for it, and snapshots the data first when
        ``auto_snapshot`` is on (its default): clear old snapshots with ``nodetool
        clearsnapshot``.

        Raises:
            OnlineStoreError: The store failed (e.g. a node is down).
        """
        if self._columns(schema.name, refresh=True) is None:
            return
        statement = f"TRUNCATE {self._keyspace}.{quote_identifier(schema.name)}"
        try:
            self._session.execute(
                statement, timeout=max(60.0, self._config.request_timeout_s),
                execution_profile=WRITE_PROFILE,
            )  # fmt: skip
        except driver_errors() as error:
            raise OnlineStoreError(
                STORE, self._target,
                f"TRUNCATE of {self._config.keyspace}.{schema.name} failed (it needs every node "
                f"up): {type(error).__name__}: {error}",
            ) from error  # fmt: skip
