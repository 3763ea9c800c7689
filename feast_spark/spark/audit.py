"""The online/offline consistency audit on Spark, key by key on the executors.

What materialize would have written is compared with what the online store holds.

Steps (each a ``DataFrame -> DataFrame`` function):

1. :func:`expected_rows`: the latest offline row per key as materialize chooses it at ``now``
   (:func:`feast_spark.spark.materialize.online_rows`: latest ``event_timestamp``, then
   ``created_timestamp``, then greatest values), rows dated after ``now`` plus the future
   allowance left out, exactly as materialize skips them.
2. :func:`sample_keys` (``--sample N``): N of those keys, at random.
3. :func:`compare_with_online`: each partition reads its keys' online rows with the store's own
   read path (``open_online_store(...).read(...)``, one read per Arrow batch) and compares them
   (:func:`feast_spark.audit.compare_row`); it sends back a tally (counts and a few examples),
   not one row per key.
4. With every key audited, :func:`online_keys` enumerates the online table (SQLite: one select;
   Cassandra: token ranges scanned in parallel) and :func:`online_only` keeps the keys without
   an offline row (a left anti join), tallied the same way.

:func:`audit_table` runs them and merges the tallies into an
:class:`~feast_spark.audit.AuditReport`.

Example (no ``max_age``)::

    offline latest rows               online table                 finding
    driver_id rate event_timestamp    driver_id rate event_ts
    1         0.5  2024-01-01 10:00   1         0.5  10:00         (consistent)
    2         0.8  2024-01-01 09:00   2         0.7  09:00         differs: rate
    3         0.1  2024-01-01 08:00   (none)                       missing_online
                                      4         0.9  07:00         online_only (all keys only)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from feast_spark.audit import (
    DEFAULT_EXAMPLES,
    ONLINE_ONLY,
    TALLY_DDL,
    AuditReport,
    Finding,
    Tally,
    compare_row,
    json_value,
    key_document,
)
from feast_spark.columns import EVENT_TIMESTAMP
from feast_spark.definitions import FeatureTable
from feast_spark.online.base import (
    OnlineStore,
    OnlineTableSchema,
    ReadRequest,
    decode_batch,
    to_micros,
)
from feast_spark.online.key_scan import scan_keys, scan_parts
from feast_spark.online.stores import open_online_store
from feast_spark.online_store_config import parse_online_store_mapping
from feast_spark.spark.identifiers import quote
from feast_spark.spark.materialize import online_rows
from feast_spark.specs import Window
from feast_spark.types import ValueType

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

#: Keys per Arrow batch of an online-key scan.
_SCAN_BATCH_ROWS = 10_000


def expected_rows(
    offline: DataFrame, table: FeatureTable, *, now: datetime, future_allowance: timedelta
) -> DataFrame:
    """The latest offline row per key that materialize, run at ``now``, would write.

    Args:
        offline: The table's offline rows.
        table: The feature table.
        now: The audit's instant (aware).
        future_allowance: Rows dated after ``now`` plus this are skipped, as materialize does.

    Returns:
        Keys, features (declaration order), ``event_timestamp``, ``created_timestamp``.
    """
    from pyspark.sql import functions as sf

    latest_event = sf.timestamp_micros(sf.lit(to_micros(now + future_allowance)))
    return online_rows(offline.where(sf.col(EVENT_TIMESTAMP) <= latest_event), table, Window())


def sample_keys(expected: DataFrame, sample: int, *, seed: int | None = None) -> DataFrame:
    """``sample`` rows of ``expected`` drawn at random (all of them when there are fewer).

    Raises:
        ValueError: ``sample`` is below 1.
    """
    from pyspark.sql import functions as sf

    if sample < 1:
        raise ValueError(f"sample must be at least 1, got {sample}")
    return expected.orderBy(sf.rand(seed)).limit(sample)


def compare_with_online(
    expected: DataFrame,
    schema: OnlineTableSchema,
    store: Mapping[str, Any],
    *,
    now: datetime,
    examples: int = DEFAULT_EXAMPLES,
    tasks: int | None = None,
) -> DataFrame:
    """Read the online row of every key of ``expected`` and tally the differences.

    Args:
        expected: :func:`expected_rows` (or a sample of them).
        schema: The online table.
        store: The online store's settings as a mapping (shipped to the executors).
        now: The audit's instant: reads and retention are judged at it.
        examples: Examples kept per kind and partition.
        tasks: Read tasks at most (default: the cluster's default parallelism); each opens one
            store session.

    Returns:
        Tally records (:data:`feast_spark.audit.TALLY_DDL`), a few per partition.
    """
    settings = dict(store)
    now_us = to_micros(now)

    def compare_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        tally = Tally(examples)
        opened: OnlineStore | None = None
        try:
            for batch in batches:
                if batch.num_rows == 0:
                    continue
                if opened is None:
                    opened = open_online_store(settings)
                decoded = decode_batch(schema, batch)
                keys = tuple(zip(*decoded.keys, strict=True))
                request = ReadRequest(schema, schema.feature_names, keys)
                stored = opened.read([request], now=now)[0].rows
                nan_is_null = opened.kind == "sqlite"
                for i, key in enumerate(keys):
                    values = tuple(column[i] for column in decoded.features)
                    finding = compare_row(
                        schema, key, decoded.event_us[i], values, stored[i],
                        now_us=now_us, nan_is_null=nan_is_null,
                    )  # fmt: skip
                    tally.add(finding)
        finally:
            if opened is not None:
                opened.close()
        yield pa.RecordBatch.from_pydict(tally.columns(), schema=_tally_schema())

    parallelism = tasks or expected.sparkSession.sparkContext.defaultParallelism
    return expected.coalesce(parallelism).mapInArrow(compare_partition, TALLY_DDL)


def online_keys(
    spark: SparkSession,
    schema: OnlineTableSchema,
    store: Mapping[str, Any],
    *,
    now: datetime,
    parts: int | None = None,
) -> DataFrame:
    """Every key the online table holds a retained row for, with its event time.

    Args:
        spark: The session.
        schema: The online table.
        store: The online store's settings as a mapping.
        now: Rows whose retention ended before it are left out.
        parts: Scan tasks (Cassandra token ranges; default: the cluster's default
            parallelism); SQLite is scanned in one.

    Returns:
        The key columns (typed as offline) and ``event_timestamp``.
    """
    settings = dict(store)
    now_us = to_micros(now)
    count = scan_parts(settings, parts or spark.sparkContext.defaultParallelism)
    key_types = list(schema.entities)

    def scan(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for part in batch.column(0).to_pylist():
                rows: list[tuple[tuple[Any, ...], int]] = []
                for row in scan_keys(settings, schema, part, count, now_us=now_us):
                    rows.append(row)
                    if len(rows) >= _SCAN_BATCH_ROWS:
                        yield _key_batch(key_types, rows)
                        rows = []
                if rows:
                    yield _key_batch(key_types, rows)

    ddl = ", ".join(
        [f"{quote(name)} {value_type.spark_ddl}" for name, value_type in key_types]
        + [f"{EVENT_TIMESTAMP} timestamp"]
    )
    return spark.range(0, count, 1, count).mapInArrow(scan, ddl)


def online_only(
    online: DataFrame,
    expected: DataFrame,
    schema: OnlineTableSchema,
    *,
    examples: int = DEFAULT_EXAMPLES,
) -> DataFrame:
    """Tally the keys of ``online`` (:func:`online_keys`) that ``expected`` lacks.

    Returns:
        Tally records (:data:`feast_spark.audit.TALLY_DDL`) of ``online_only`` findings.
    """
    names = list(schema.entity_names)
    extra = online.join(expected.select(*[quote(n) for n in names]), on=names, how="left_anti")

    def tally_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        tally = Tally(examples)
        for batch in batches:
            keys = list(zip(*[batch.column(n).to_pylist() for n in names], strict=True))
            events = batch.column(EVENT_TIMESTAMP).to_pylist()
            for key, event in zip(keys, events, strict=True):
                online_side = {EVENT_TIMESTAMP: json_value(event)}
                document = key_document(schema, key, stored=False)
                tally.add(Finding(ONLINE_ONLY, document, online=online_side), checked=False)
        yield pa.RecordBatch.from_pydict(tally.columns(), schema=_tally_schema())

    return extra.mapInArrow(tally_partition, TALLY_DDL)


def audit_table(
    offline: DataFrame,
    schema: OnlineTableSchema,
    table: FeatureTable,
    store: Mapping[str, Any],
    *,
    now: datetime,
    future_allowance: timedelta,
    sample: int | None = None,
    examples: int = DEFAULT_EXAMPLES,
) -> AuditReport:
    """Audit one table: compare its online rows with its offline latest rows.

    Args:
        offline: The table's offline rows (all of them).
        schema: The online table.
        table: The feature table.
        store: The online store's settings as a mapping.
        now: The audit's instant.
        future_allowance: The spec's future event-time allowance.
        sample: Audit this many random offline keys (None: every key, and enumerate the online
            table for keys without an offline row).
        examples: Examples kept per kind.

    Raises:
        OnlineStoreError: The online store cannot be reached (in a task: a PySparkException).
    """
    expected = expected_rows(offline, table, now=now, future_allowance=future_allowance)
    checked = expected if sample is None else sample_keys(expected, sample)
    tallies = compare_with_online(checked, schema, store, now=now, examples=examples)
    if sample is None:
        keys = online_keys(offline.sparkSession, schema, store, now=now)
        tallies = tallies.unionByName(online_only(keys, expected, schema, examples=examples))
    return AuditReport.from_records(
        [tuple(row) for row in tallies.collect()],
        table=table.name,
        online_table=schema.name,
        store=parse_online_store_mapping(store).type,
        audited_at=now,
        sample=sample,
        examples=examples,
    )


def _tally_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [("record", pa.string()), ("name", pa.string()), ("n", pa.int64()), ("detail", pa.string())]
    )


def _key_batch(
    key_types: list[tuple[str, ValueType]], rows: list[tuple[tuple[Any, ...], int]]
) -> pa.RecordBatch:
    """Stored-form keys and event times as an Arrow batch typed as the offline columns."""
    import pyarrow as pa

    timestamp = pa.timestamp("us", tz="UTC")
    columns: dict[str, pa.Array] = {}
    for i, (name, value_type) in enumerate(key_types):
        values = [row[0][i] for row in rows]
        if value_type is ValueType.UNIX_TIMESTAMP:
            columns[name] = pa.array(values, pa.int64()).cast(timestamp)
        else:
            columns[name] = pa.array(values, value_type.arrow_type())
    columns[EVENT_TIMESTAMP] = pa.array([row[1] for row in rows], pa.int64()).cast(timestamp)
    return pa.RecordBatch.from_pydict(columns)
