"""Apache Cassandra as the online store.

Layout (readable with plain cqlsh; table names from :mod:`feast_spark.online.naming`)::

    CREATE KEYSPACE feast WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1};
    CREATE TABLE feast.<project>__<table> (
        driver_id bigint,            -- one column per entity: the partition key
        conv_rate double,            -- one natively typed column per feature
        trips frozen<list<int>>,    -- lists frozen: one cell, last-write-wins like a scalar
        event_timestamp bigint,      -- microseconds since the epoch
        created_timestamp bigint,    -- microseconds; null in rows written before it was kept
        PRIMARY KEY ((driver_id)));

Which row is kept: per key, the one that wins the point-in-time rule (latest event time, then
latest created time, then greatest values: :mod:`feast_spark.online.ordering`), whole, whatever
the order of writes. Cassandra alone cannot do that: it keeps, per *cell*, the write with the
highest timestamp, and on equal timestamps a tombstone (a null) first, then an expiring cell, then
the greater local expiry time, then the greater value bytes (``Cells.reconcile``,
CASSANDRA-14592), so two rows of one event time written at that time would mix cell by cell. So
each write first reads, per key, the stored ``(event_timestamp, created_timestamp,
WRITETIME(event_timestamp))`` and values (at the write consistency, so quorum writes see each
other; the values settle rows tied on both times) and then:

* sends nothing for a row that loses to the stored one (a replay, an older window run later, an
  older correction run after a newer one);
* writes a winning row ``USING TIMESTAMP <event time in microseconds>`` if the stored row was
  written before it, else one microsecond after the stored write time (a correction of the same
  event time, or a row a microsecond after a correction), so that it replaces every cell.

``WRITETIME`` therefore equals ``event_timestamp`` except after a correction (it is then at most a
few microseconds later); ``event_timestamp`` is always the true event time. Without the read,
timestamps alone would still keep a newer *event* from being replaced by an older one on any
replica; the read is what orders rows of equal event time (cost: one read per key written, see
README). Tables with ``max_age`` also get ``USING TTL`` (see :mod:`feast_spark.online.base`; rows
already past it are not written). Not covered: two jobs writing the same key at the same time
(the read and the write are not atomic; the launcher refuses overlapping materializations of a
table), and reads that miss a stored row (``write_consistency`` ONE with several replicas).

Writes bind every row, pack rows that live on the same replicas into small UNLOGGED batches (at
most 10 rows / 4 KiB, below Cassandra's warning thresholds; a batch is one request, routed
token-aware and DC-aware to one of those replicas) and keep ``write_concurrency`` requests in flight
per store (Spark task) with :func:`~feast_spark.online.cassandra_requests.run_concurrently`.
Requests (and the reads before them) failing with timeouts or unavailability are retried with
backoff (safe: every row carries its own write timestamp); a write that still fails raises naming
the hosts and the cause, so a job never reports success with rows missing. Reads of all requested
tables and keys run concurrently with prepared single-partition statements; a failed read is an
error naming the hosts and the cause, never a missing value.
"""

from __future__ import annotations

import functools
import logging
import ssl
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from feast_spark.columns import CREATED_TIMESTAMP, EVENT_TIMESTAMP
from feast_spark.config import CassandraOnlineStoreConfig, TlsConfig
from feast_spark.errors import ConfigError, OnlineStoreError
from feast_spark.online.base import (
    ClosingStore,
    OnlineTableSchema,
    ReadRequest,
    TableRead,
    WriteCounts,
    decode_batch,
    now_micros,
    ttl_seconds,
)
from feast_spark.online.cassandra_reads import Fetch, PendingRead
from feast_spark.online.cassandra_requests import (
    Outcome,
    RetryPolicy,
    describe_error,
    retry_failed,
    run_concurrently,
)
from feast_spark.online.ordering import (
    next_write_timestamp,
    times_key,
    value_key,
    winners_per_key,
)
from feast_spark.types import ValueType

if TYPE_CHECKING:
    import pyarrow as pa
    from cassandra.cluster import Cluster, Session
    from cassandra.query import BoundStatement, PreparedStatement, Statement

_log = logging.getLogger(__name__)

STORE: Final = "cassandra"

#: CQL templates; identifiers are checked names (``[a-z_][a-z0-9_]*``), quoted anyway.
CQL: Final = {
    "create_keyspace": "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {replication}",
    "create_table": (
        "CREATE TABLE IF NOT EXISTS {keyspace}.{table} ({columns}, PRIMARY KEY (({keys}))) "
        "WITH comment = {comment}"
    ),
    "add_column": "ALTER TABLE {keyspace}.{table} ADD {column} {type}",
    "insert": "INSERT INTO {keyspace}.{table} ({columns}) VALUES ({markers}) USING TIMESTAMP ?",
    "insert_ttl": (
        "INSERT INTO {keyspace}.{table} ({columns}) VALUES ({markers}) USING TIMESTAMP ? AND TTL ?"
    ),
    "select": "SELECT {columns} FROM {keyspace}.{table} WHERE {where}",
    "select_version": (
        "SELECT {event}, {created}, WRITETIME({event}), {features} FROM {keyspace}.{table} "
        "WHERE {where}"
    ),
}

#: Error texts.
ERRORS: Final = {
    "version_read_failed": (
        "reading the stored rows of {failed} of {total} keys of table {keyspace}.{table} (to "
        "compare them with the rows to write) failed{after}; first error: {error}"
    ),
    "unreachable": (
        "cannot connect: {errors}; check that Cassandra runs there and that "
        "online_store.hosts / port (and TLS, credentials) are right"
    ),
    "ddl_failed": "{action} failed: {error}",
    "key_mismatch": (
        "table {keyspace}.{table} is keyed by ({actual}) but feature table '{feature_table}' by "
        "({expected}); drop the online table (DROP TABLE {keyspace}.{table}) and materialize again"
    ),
    "type_mismatch": (
        "column {keyspace}.{table}.{column} has type {actual} but feature table "
        "'{feature_table}' declares {expected}; drop the online table "
        "(DROP TABLE {keyspace}.{table}) and materialize again"
    ),
    "write_failed": (
        "{failed} of {total} rows for table {keyspace}.{table} failed{after}; first error: "
        "{error_type}: {error}"
    ),
    "tls_file": "cannot load {what} from {path}: {error}",
    "poisoned_key": (
        "key {key} of table {keyspace}.{table} holds a value written at {written}, beyond now "
        "plus future_event_time_allowance: a Cassandra delete must be timestamped at least that "
        "late, and its tombstone would hide every correct value of the key until then; nothing "
        "was deleted. Remove the table's rows instead: feast-spark online purge {feature_table}, "
        "then materialize it again"
    ),
}

#: Rows per unlogged batch at most: Cassandra warns above 10 partitions per unlogged batch
#: (``unlogged_batch_across_partitions_warn_threshold``).
BATCH_MAX_ROWS: Final = 10
#: Serialized bytes per batch at most (Cassandra warns above 5 KiB: ``batch_size_warn_threshold``).
BATCH_MAX_BYTES: Final = 4096
#: Attempts per write request before the job fails (5, the first included), and the first wait
#: between them (0.2 s, doubled each time: 3 s of waiting in all).
WRITE_RETRY: Final = RetryPolicy(attempts=5, backoff_s=0.2)
#: Reads in flight per call.
READ_CONCURRENCY: Final = 256
_READ_PROFILE: Final = "feast_spark_read"
_WRITE_PROFILE: Final = "feast_spark_write"
#: Reads of stored versions before writes: at the write consistency (ANY cannot read: ONE), so
#: with quorum writes they see every acknowledged write.
_VERSION_PROFILE: Final = "feast_spark_versions"


def cql_column_type(value_type: ValueType) -> str:
    """The CQL type of a feature or key column: lists are *frozen* (``frozen<list<int>>``).

    A frozen collection is one cell, so it follows last-write-wins by write timestamp like a
    scalar. A non-frozen list is one cell per element, keyed by a time UUID of the write: writing
    the same list again with the same timestamp (a rerun) would append its elements a second time.
    """
    return f"frozen<{value_type.cql_type}>" if value_type.is_list else value_type.cql_type


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def replication_literal(replication: dict[str, Any]) -> str:
    """A replication mapping as a CQL map literal (all values as strings)."""
    items = ", ".join(f"{_literal(str(k))}: {_literal(str(v))}" for k, v in replication.items())
    return "{" + items + "}"


def ssl_context(tls: TlsConfig) -> ssl.SSLContext:
    """The client SSL context for ``tls``.

    Verifies the server against ``ca_cert`` (else the system's CAs), checks its name unless
    disabled, and presents a client certificate if one is given.

    Raises:
        ConfigError: A certificate or key file cannot be loaded.
    """
    try:
        context = ssl.create_default_context(cafile=tls.ca_cert)
    except (OSError, ssl.SSLError) as error:
        raise ConfigError(
            "online_store.tls.ca_cert", tls.ca_cert, "online_store.tls",
            ERRORS["tls_file"].format(what="the CA certificate", path=tls.ca_cert, error=error),
        ) from None  # fmt: skip
    context.check_hostname = tls.check_hostname
    if tls.client_cert:
        try:
            context.load_cert_chain(tls.client_cert, tls.client_key)
        except (OSError, ssl.SSLError) as error:
            raise ConfigError(
                "online_store.tls.client_cert", tls.client_cert, "online_store.tls",
                ERRORS["tls_file"].format(
                    what="the client certificate and key", path=tls.client_cert, error=error
                ),
            ) from None  # fmt: skip
    return context


@functools.cache
def _driver_errors() -> tuple[type[BaseException], ...]:
    """Exceptions the driver raises for a failed request or connection."""
    from cassandra import DriverException
    from cassandra.cluster import NoHostAvailable
    from cassandra.connection import ConnectionException
    from cassandra.protocol import ErrorMessage

    return (DriverException, NoHostAvailable, ConnectionException, ErrorMessage, OSError)


def _retryable_errors() -> tuple[type[BaseException], ...]:
    """Write failures worth retrying: timeouts, unavailability, overload, lost connections."""
    from cassandra import CoordinationFailure, OperationTimedOut, Timeout, Unavailable
    from cassandra.cluster import NoHostAvailable
    from cassandra.connection import ConnectionException
    from cassandra.protocol import IsBootstrappingErrorMessage, OverloadedErrorMessage

    return (
        Timeout, Unavailable, CoordinationFailure, OperationTimedOut, NoHostAvailable,
        ConnectionException, OverloadedErrorMessage, IsBootstrappingErrorMessage,
    )  # fmt: skip


def _describe_connect_error(error: BaseException) -> str:
    errors = getattr(error, "errors", None)
    if isinstance(errors, dict) and errors:
        return "; ".join(f"{host}: {type(e).__name__}: {e}" for host, e in errors.items())
    return f"{type(error).__name__}: {error}"


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
        self._keyspace = _quote(config.keyspace)
        self._statements: dict[tuple[Any, ...], PreparedStatement] = {}
        self._cluster, self._session = self._connect()

    # --- connection ------------------------------------------------------------------------------

    def _connect(self) -> tuple[Cluster, Session]:
        from cassandra import ConsistencyLevel
        from cassandra.auth import PlainTextAuthProvider
        from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
        from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
        from cassandra.query import tuple_factory

        config = self._config

        def profile(consistency: str) -> ExecutionProfile:
            return ExecutionProfile(
                load_balancing_policy=TokenAwarePolicy(
                    DCAwareRoundRobinPolicy(local_dc=config.local_dc or "")
                ),
                consistency_level=ConsistencyLevel.name_to_value[consistency],
                request_timeout=config.request_timeout_s,
                row_factory=tuple_factory,
            )

        credentials = config.credentials
        cluster = Cluster(
            list(config.hosts),
            port=config.port,
            execution_profiles={
                EXEC_PROFILE_DEFAULT: profile(config.write_consistency),
                _READ_PROFILE: profile(config.read_consistency),
                _WRITE_PROFILE: profile(config.write_consistency),
                _VERSION_PROFILE: profile(
                    "ONE" if config.write_consistency == "ANY" else config.write_consistency
                ),
            },
            auth_provider=PlainTextAuthProvider(*credentials) if credentials else None,
            ssl_context=ssl_context(config.tls) if config.tls else None,
            connect_timeout=config.request_timeout_s,
        )
        try:
            session = cluster.connect()
        except _driver_errors() as error:
            cluster.shutdown()
            raise OnlineStoreError(
                STORE,
                self._target,
                ERRORS["unreachable"].format(errors=_describe_connect_error(error)),
            ) from error
        return cluster, session

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
        table = _quote(schema.name)
        self._ddl(
            "create keyspace " + self._config.keyspace,
            CQL["create_keyspace"].format(
                keyspace=self._keyspace,
                replication=replication_literal(dict(self._config.replication)),
            ),
        )
        columns = [
            *(f"{_quote(n)} {cql_column_type(t)}" for n, t in schema.entities),
            *(f"{_quote(n)} {cql_column_type(t)}" for n, t in schema.features),
            f"{_quote(EVENT_TIMESTAMP)} bigint",
            f"{_quote(CREATED_TIMESTAMP)} bigint",
        ]
        comment = f"feast-spark online table: project '{schema.project}', table '{schema.table}'"
        self._ddl(
            f"create table {self._config.keyspace}.{schema.name}",
            CQL["create_table"].format(
                keyspace=self._keyspace,
                table=table,
                columns=", ".join(columns),
                keys=", ".join(_quote(n) for n in schema.entity_names),
                comment=_literal(comment),
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
            keyspace=self._keyspace, table=_quote(schema.name), column=_quote(column),
            type=cql_type,
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
        except _driver_errors() as error:
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
        except _driver_errors() as error:
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
            except _driver_errors() as error:
                _log.debug("refreshing metadata of %s failed: %s", table, error)
        metadata = self._table_metadata(table)
        if metadata is None:
            return None
        return {name: column.cql_type for name, column in metadata.columns.items()}

    # --- statements ------------------------------------------------------------------------------

    def _prepared(
        self, key: tuple[Any, ...], text: Callable[[], str], *, idempotent: bool
    ) -> PreparedStatement:
        """The statement prepared under ``key`` in this session (``text`` builds its CQL)."""
        statement = self._statements.get(key)
        if statement is None:
            cql = text()
            try:
                statement = self._session.prepare(cql)
            except _driver_errors() as error:
                raise OnlineStoreError(
                    STORE, self._target, f"preparing '{cql}' failed: {error}"
                ) from error
            statement.is_idempotent = idempotent
            self._statements[key] = statement
        return statement

    def _insert(self, schema: OnlineTableSchema) -> PreparedStatement:
        with_ttl = schema.max_age is not None
        columns = (*schema.entity_names, *schema.feature_names, EVENT_TIMESTAMP, CREATED_TIMESTAMP)

        def text() -> str:
            return CQL["insert_ttl" if with_ttl else "insert"].format(
                keyspace=self._keyspace,
                table=_quote(schema.name),
                columns=", ".join(_quote(c) for c in columns),
                markers=", ".join("?" for _ in columns),
            )

        # Idempotent: the explicit write timestamp makes a repeated write a no-op.
        return self._prepared(("insert", schema.name, columns, with_ttl), text, idempotent=True)

    def _select(self, schema: OnlineTableSchema, features: tuple[str, ...]) -> PreparedStatement:
        def text() -> str:
            return CQL["select"].format(
                keyspace=self._keyspace,
                table=_quote(schema.name),
                columns=", ".join(_quote(c) for c in (*features, EVENT_TIMESTAMP)),
                where=" AND ".join(f"{_quote(k)} = ?" for k in schema.entity_names),
            )

        key = ("select", schema.name, features, schema.entity_names)
        return self._prepared(key, text, idempotent=True)

    def _select_version(self, schema: OnlineTableSchema) -> PreparedStatement:
        def text() -> str:
            return CQL["select_version"].format(
                keyspace=self._keyspace,
                table=_quote(schema.name),
                event=_quote(EVENT_TIMESTAMP),
                created=_quote(CREATED_TIMESTAMP),
                features=", ".join(_quote(f) for f in schema.feature_names),
                where=" AND ".join(f"{_quote(k)} = ?" for k in schema.entity_names),
            )

        key = ("select_version", schema.name, schema.feature_names, schema.entity_names)
        return self._prepared(key, text, idempotent=True)

    # --- writes ----------------------------------------------------------------------------------

    def write_batch(
        self, schema: OnlineTableSchema, batch: pa.RecordBatch, *, now: datetime | None = None
    ) -> WriteCounts:
        """Write the rows that win the point-in-time rule against what is stored.

        Per key, the batch's winning row is compared with the stored row's event time, created
        time (and, when both tie, values), read first; a row that loses is not sent, a row that
        wins is written at :func:`~feast_spark.online.ordering.next_write_timestamp` (its event
        time, unless a stored row of the same event time forces one microsecond more), with a
        TTL under ``max_age``. Rows that lose count as written: the store holds a newer row.

        Raises:
            OnlineStoreError: Rows still failed after :data:`WRITE_RETRY`'s attempts, or failed
                with an error that retrying cannot fix.
            DefinitionError: The batch does not match the schema.
        """
        decoded = decode_batch(schema, batch)
        if decoded.num_rows == 0:
            return WriteCounts()
        keys = list(zip(*decoded.keys, strict=True))
        events, created, features = decoded.event_us, decoded.created_us, decoded.features
        chosen = winners_per_key(keys, events, created, features)
        ttls: list[int | None] = [None] * decoded.num_rows
        expired = 0
        if schema.max_age is not None:
            now_us = now_micros(now)
            ttls = [ttl_seconds(event, schema.max_age, now_us) for event in events]
            expired = ttls.count(0)
            chosen = [index for index in chosen if ttls[index]]
        stored = self._stored_rows(schema, [keys[i] for i in chosen])
        parameters: list[tuple[Any, ...]] = []
        for index, row in zip(chosen, stored, strict=True):
            stored_write: int | None = None
            if row is not None:
                new, old = times_key(events[index], created[index]), times_key(row[0], row[1])
                if new == old:  # tied on both times: the greater values win
                    new_values = tuple(value_key(f[index]) for f in features)
                    if new_values <= tuple(value_key(v) for v in row[3:]):
                        continue
                elif new < old:
                    continue  # the stored row wins (a replay, or an older row run later)
                stored_write = row[2]
            values = (
                *keys[index], *(f[index] for f in features), events[index], created[index],
                next_write_timestamp(events[index], stored_write),
            )  # fmt: skip
            parameters.append(values if schema.max_age is None else (*values, ttls[index]))
        requests = self._replica_batches(self._insert(schema), parameters)
        self._execute_all(schema, requests, len(parameters))
        return WriteCounts(written=decoded.num_rows - expired, expired=expired)

    def _stored_rows(
        self, schema: OnlineTableSchema, keys: Sequence[tuple[Any, ...]]
    ) -> list[tuple[Any, ...] | None]:
        """Each key's stored ``(event, created, write timestamp, *features)`` (None: no row).

        One single-partition read per key; the values come along for rows tied on both times.

        Raises:
            OnlineStoreError: A read still failed after retries.
        """
        statement = self._select_version(schema)
        rows = self._read_retrying(schema, [(statement, key) for key in keys])
        return [None if row is None or row[0] is None else tuple(row) for row in rows]

    def _read_retrying(
        self, schema: OnlineTableSchema, jobs: Sequence[tuple[PreparedStatement, tuple[Any, ...]]]
    ) -> list[Any]:
        """The first row (or None) of each single-partition select, retried like writes.

        Raises:
            OnlineStoreError: A read still failed after retries.
        """
        outcomes: dict[int, Any] = {}
        retryable = _retryable_errors()

        def run(pending: Sequence[int]) -> list[Outcome]:
            results = run_concurrently(
                self._session, [jobs[i] for i in pending],
                concurrency=self._config.write_concurrency, execution_profile=_VERSION_PROFILE,
            )  # fmt: skip
            for index, outcome in zip(pending, results, strict=True):
                if outcome.rows is not None:
                    outcomes[index] = outcome.rows[0] if outcome.rows else None
            return results

        failures, attempts = retry_failed(
            run, range(len(jobs)), policy=WRITE_RETRY,
            retryable=lambda error: isinstance(error, retryable),
            describe=lambda failed, attempt: f" reading stored rows of {schema.name}",
            explain=self._describe,
        )  # fmt: skip
        if failures:
            first = failures[0]
            raise OnlineStoreError(
                STORE, self._target,
                ERRORS["version_read_failed"].format(
                    failed=len(failures), total=len(jobs), keyspace=self._config.keyspace,
                    table=schema.name, after=f" after {attempts} attempts" if attempts > 1 else "",
                    error=self._describe(first.error, first.host),
                ),
            ) from first.error  # fmt: skip
        return [outcomes[i] for i in range(len(jobs))]

    def _replica_batches(
        self, statement: PreparedStatement, parameters: Sequence[tuple[Any, ...]]
    ) -> list[tuple[Statement, int]]:
        """Bind every row and pack rows with the same replicas into small unlogged batches.

        One request per row costs the Python driver most of its time; a batch of rows that
        live on the same replicas costs one request and no extra hop (it is routed, token-aware,
        to one of those replicas). Batches stay below Cassandra's warning thresholds
        (:data:`BATCH_MAX_ROWS` partitions, :data:`BATCH_MAX_BYTES`), are not atomic (UNLOGGED:
        no batch log) and are safe to retry, since every row carries its own write timestamp.

        Returns:
            ``(request, rows in it)`` pairs.
        """
        from cassandra.query import BatchStatement, BatchType

        token_map = self._cluster.metadata.token_map
        keyspace = self._config.keyspace
        open_batches: dict[Any, tuple[list[BoundStatement], int]] = {}
        requests: list[tuple[Statement, int]] = []

        def flush(rows: list[BoundStatement]) -> None:
            if len(rows) == 1:
                requests.append((rows[0], 1))
                return
            batch = BatchStatement(batch_type=BatchType.UNLOGGED)
            for bound in rows:
                batch.add(bound)
            batch.is_idempotent = True
            requests.append((batch, len(rows)))

        for params in parameters:
            bound = statement.bind(params)
            size = sum(map(len, filter(None, bound.values)))  # serialized values (None: null)
            group: Any = None
            if token_map is not None and bound.routing_key is not None:
                token = token_map.token_class.from_key(bound.routing_key)
                group = tuple(token_map.get_replicas(keyspace, token))
            rows, rows_bytes = open_batches.get(group, ([], 0))
            if rows and (len(rows) >= BATCH_MAX_ROWS or rows_bytes + size > BATCH_MAX_BYTES):
                flush(rows)
                rows, rows_bytes = [], 0
            rows.append(bound)
            open_batches[group] = (rows, rows_bytes + size)
        for rows, _ in open_batches.values():
            if rows:
                flush(rows)
        return requests

    def _execute_all(
        self,
        schema: OnlineTableSchema,
        requests: Sequence[tuple[Statement, int]],
        total_rows: int,
    ) -> None:
        """Run the requests ``write_concurrency`` at a time; retry the failed ones with backoff.

        Raises:
            OnlineStoreError: Requests still failed after :data:`WRITE_RETRY` attempts, or
                failed with an error retrying cannot fix (e.g. the table was dropped); the
                message names the host(s) and the cause.
        """
        retryable = _retryable_errors()

        def run(pending: Sequence[tuple[Statement, int]]) -> list[Outcome]:
            return run_concurrently(
                self._session, [(request, None) for request, _ in pending],
                concurrency=self._config.write_concurrency, execution_profile=_WRITE_PROFILE,
            )  # fmt: skip

        failures, attempts = retry_failed(
            run, requests, policy=WRITE_RETRY,
            retryable=lambda error: isinstance(error, retryable),
            describe=lambda failed, attempt: f" writing {schema.name}", explain=self._describe,
        )  # fmt: skip
        if not failures:
            return
        first = failures[0]
        error_type, _, cause = self._describe(first.error, first.host).partition(": ")
        raise OnlineStoreError(
            STORE,
            self._target,
            ERRORS["write_failed"].format(
                failed=sum(rows for (_, rows) in (f.request for f in failures)),
                total=total_rows, keyspace=self._config.keyspace, table=schema.name,
                after=f" after {attempts} attempts" if attempts > 1 else "",
                error_type=error_type, error=cause,
            ),
        ) from first.error  # fmt: skip

    def _describe(self, error: BaseException, host: str | None) -> str:
        """The driver error as one line naming hosts and cause (see ``describe_error``)."""
        try:
            hosts = [(str(h.endpoint), bool(h.is_up)) for h in self._cluster.metadata.all_hosts()]
        except Exception:  # metadata is best effort here: the error itself matters
            hosts = []
        return describe_error(error, host, hosts)

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
        """Send every single-partition select of ``requests`` and return without waiting.

        All selects go out at once (at most :data:`READ_CONCURRENCY` in flight; each answer sends
        the next). ``result()`` waits for them; ``add_done_callback`` is told, from the driver's
        thread, when the last one arrived, so an event loop can wait without blocking.
        :meth:`read` is ``start_read(...).result()``.
        """
        plans: list[tuple[PreparedStatement, tuple[str, ...]] | None] = []
        jobs: list[tuple[PreparedStatement, tuple[Any, ...], str]] = []
        for request in requests:
            metadata = self._table_metadata(request.schema.name)
            if metadata is None:
                plans.append(None)
                continue
            columns = metadata.columns
            present = tuple(f for f in request.features if f in columns)
            statement = self._select(request.schema, present)
            plans.append((statement, present))
            jobs.extend((statement, key, request.schema.name) for key in request.keys)
        fetch = Fetch(
            self._session, jobs, self._target, _READ_PROFILE, READ_CONCURRENCY, _driver_errors()
        )
        fetch.start()
        return PendingRead(fetch, requests, plans, now_micros(now))

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
        where = " AND ".join(f"{_quote(k)} = ?" for k in schema.entity_names)
        table = f"{self._keyspace}.{_quote(schema.name)}"
        select = self._prepared(
            ("writetime", schema.name, tuple(cells)),
            lambda: "SELECT {} FROM {} WHERE {}".format(
                ", ".join(f"WRITETIME({_quote(c)})" for c in cells), table, where
            ),
            idempotent=True,
        )
        delete = self._prepared(
            ("delete", schema.name, schema.entity_names),
            lambda: f"DELETE FROM {table} USING TIMESTAMP ? WHERE {where}",
            idempotent=True,
        )
        limit = to_micros(latest_write)
        stamps: list[tuple[tuple[Any, ...], int]] = []
        try:
            for key in keys:
                row = self._session.execute(select, key, execution_profile=_WRITE_PROFILE).one()
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
                self._session.execute(delete, (stamp, *key), execution_profile=_WRITE_PROFILE)
        except _driver_errors() as error:
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
        statement = f"TRUNCATE {self._keyspace}.{_quote(schema.name)}"
        try:
            self._session.execute(
                statement, timeout=max(60.0, self._config.request_timeout_s),
                execution_profile=_WRITE_PROFILE,
            )  # fmt: skip
        except _driver_errors() as error:
            raise OnlineStoreError(
                STORE, self._target,
                f"TRUNCATE of {self._config.keyspace}.{schema.name} failed (it needs every node "
                f"up): {type(error).__name__}: {error}",
            ) from error  # fmt: skip
