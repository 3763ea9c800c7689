"""Writing to Apache Cassandra as the online store: which row is kept, and how it is sent.

The table layout is in :mod:`feast_spark.online.cassandra`.

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
replica; the read is what orders rows of equal event time (cost: one ``IN`` select per replica
and 100 keys written of a table keyed by one entity, else one read per key; see README). Tables
with ``max_age`` also get ``USING TTL`` (see :mod:`feast_spark.online.base`; rows already past it
are not written). Not covered: two jobs writing the same key at the same time
(the read and the write are not atomic; the launcher refuses overlapping materializations of a
table), and reads that miss a stored row (``write_consistency`` ONE with several replicas).

Writes bind every row, pack rows that live on the same replicas into small UNLOGGED batches (at
most 10 rows / 4 KiB, below Cassandra's warning thresholds; a batch is one request, routed
token-aware and DC-aware to one of those replicas) and keep ``write_concurrency`` requests in flight
per store (Spark task) with :func:`~feast_spark.online.cassandra_requests.run_concurrently`.
Requests (and the reads before them) failing with timeouts or unavailability are retried with
backoff (safe: every row carries its own write timestamp); a write that still fails raises naming
the hosts and the cause, so a job never reports success with rows missing. The reads before a
write run concurrently too; one that still fails is an error naming the hosts and the cause, never
a row taken as absent.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from feast_spark.config import CassandraOnlineStoreConfig
from feast_spark.errors import OnlineStoreError
from feast_spark.online.base import (
    OnlineTableSchema,
    WriteCounts,
    decode_batch,
    now_micros,
    ttl_seconds,
)
from feast_spark.online.cassandra_connection import VERSION_PROFILE, WRITE_PROFILE
from feast_spark.online.cassandra_cql import ERRORS, STORE, retryable_errors
from feast_spark.online.cassandra_reads import key_list_selects, reads_by_key_list
from feast_spark.online.cassandra_requests import (
    Outcome,
    RetryPolicy,
    describe_error,
    retry_failed,
    run_concurrently,
)
from feast_spark.online.cassandra_statements import PreparedStatements
from feast_spark.online.ordering import (
    next_write_timestamp,
    times_key,
    value_key,
    winners_per_key,
)

if TYPE_CHECKING:
    import pyarrow as pa
    from cassandra.cluster import Cluster, Session
    from cassandra.query import BoundStatement, PreparedStatement, Statement

#: Rows per unlogged batch at most: Cassandra warns above 10 partitions per unlogged batch
#: (``unlogged_batch_across_partitions_warn_threshold``).
BATCH_MAX_ROWS: Final = 10
#: Serialized bytes per batch at most (Cassandra warns above 5 KiB: ``batch_size_warn_threshold``).
BATCH_MAX_BYTES: Final = 4096
#: Attempts per write request before the job fails (5, the first included), and the first wait
#: between them (0.2 s, doubled each time: 3 s of waiting in all).
WRITE_RETRY: Final = RetryPolicy(attempts=5, backoff_s=0.2)


class CassandraWriter:
    """The write path of one :class:`~feast_spark.online.cassandra.CassandraOnlineStore`.

    Holds the store's session, cluster (for the token map and host states) and prepared
    statements; the store delegates :meth:`write_batch` to it.
    """

    def __init__(
        self,
        config: CassandraOnlineStoreConfig,
        target: str,
        session: Session,
        cluster: Cluster,
        statements: PreparedStatements,
    ) -> None:
        """Write through ``session`` with the store's settings and statements.

        Args:
            config: The online store's settings (keyspace, write concurrency).
            target: The contact points as ``host:port,...``, for error messages.
            session: The driver session of the store.
            cluster: The driver cluster of that session.
            statements: The store's prepared statements.
        """
        self._config = config
        self._target = target
        self._session = session
        self._cluster = cluster
        self._statements = statements

    def write_batch(
        self, schema: OnlineTableSchema, batch: pa.RecordBatch, *, now: datetime | None = None
    ) -> WriteCounts:
        """Write the rows that win the point-in-time rule against what is stored.

        Per key, the batch's winning row is compared with the stored row's event time, created
        time (and, when both tie, values), read first; a row that loses is not sent, a row that
        wins is written at :func:`~feast_spark.online.ordering.next_write_timestamp` (its event
        time, unless a stored row of the same event time forces one microsecond more), with a
        TTL under ``max_age``. Counts are per key (a batch may hold several rows of one key): a
        key whose winning row loses to the stored one counts as written (the store holds a
        newer row), one whose winning row is past ``max_age`` as expired.

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
            # A key's latest row is its last to expire: the key is expired when that row is.
            now_us = now_micros(now)
            ttls = [ttl_seconds(event, schema.max_age, now_us) for event in events]
            live = [index for index in chosen if ttls[index]]
            expired, chosen = len(chosen) - len(live), live
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
        requests = self._replica_batches(self._statements.insert(schema), parameters)
        self._execute_all(schema, requests, len(parameters))
        return WriteCounts(written=len(chosen), expired=expired)

    def _stored_rows(
        self, schema: OnlineTableSchema, keys: Sequence[tuple[Any, ...]]
    ) -> list[tuple[Any, ...] | None]:
        """Each key's stored ``(event, created, write timestamp, *features)`` (None: no row).

        A table keyed by one entity is read with one ``IN`` select per replica and
        :data:`~feast_spark.online.cassandra_reads.KEYS_PER_SELECT` keys (as online reads are),
        others one single-partition read per key; the values come along for rows tied on both
        times. ``keys`` are distinct.

        Raises:
            OnlineStoreError: A read still failed after retries.
        """
        single = self._statements.select_version(schema)
        found: list[Any]
        if reads_by_key_list(schema) and len(keys) > 1:
            try:
                many = self._statements.select_version(schema, many=True)
            except OnlineStoreError as error:
                raise OnlineStoreError(
                    STORE, self._target,
                    ERRORS["version_read_failed"].format(
                        failed=len(keys), total=len(keys), keyspace=self._config.keyspace,
                        table=schema.name, after="", error=error.reason,
                    ),
                ) from error  # fmt: skip
            selects = key_list_selects(self._session, self._config.keyspace, single, many, keys)
            jobs = [(bound, None) for bound, _ in selects]
            answers = self._read_retrying(schema, jobs, [size for _, size in selects])
            stored = {row[0]: row[1:] for rows in answers for row in rows}
            found = [stored.get(key[0]) for key in keys]
        else:
            answers = self._read_retrying(schema, [(single, key) for key in keys], [1] * len(keys))
            found = [rows[0] if rows else None for rows in answers]
        return [None if row is None or row[0] is None else tuple(row) for row in found]

    def _read_retrying(
        self, schema: OnlineTableSchema, jobs: Sequence[tuple[Statement, Any]], sizes: list[int]
    ) -> list[list[Any]]:
        """The rows of each select (of ``sizes[i]`` keys), retried like writes.

        Raises:
            OnlineStoreError: A read still failed after retries.
        """
        outcomes: dict[int, list[Any]] = {}
        retryable = retryable_errors()

        def run(pending: Sequence[int]) -> list[Outcome]:
            results = run_concurrently(
                self._session, [jobs[i] for i in pending],
                concurrency=self._config.write_concurrency, execution_profile=VERSION_PROFILE,
            )  # fmt: skip
            for index, outcome in zip(pending, results, strict=True):
                if outcome.rows is not None:
                    outcomes[index] = outcome.rows
            return results

        failures, attempts = retry_failed(
            run, range(len(jobs)), policy=WRITE_RETRY,
            retryable=lambda error: isinstance(error, retryable),
            describe=lambda failed, attempt: f" reading stored rows of {schema.name}",
            explain=self._describe,
        )  # fmt: skip
        if failures:
            failed = sum(sizes[failure.request] for failure in failures)
            first = failures[0]
            raise OnlineStoreError(
                STORE, self._target,
                ERRORS["version_read_failed"].format(
                    failed=failed, total=sum(sizes), keyspace=self._config.keyspace,
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
        retryable = retryable_errors()

        def run(pending: Sequence[tuple[Statement, int]]) -> list[Outcome]:
            return run_concurrently(
                self._session, [(request, None) for request, _ in pending],
                concurrency=self._config.write_concurrency, execution_profile=WRITE_PROFILE,
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
