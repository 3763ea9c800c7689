"""Materialization: push the latest offline row of every entity key to the online store.

Rules:

1. Only offline rows with ``start <= event_timestamp < end`` count, and never a row whose event
   time is later than the job's start plus ``future_event_time_allowance`` (counted as
   ``rows_future``): online, the event time is the write timestamp, so such a row would hide
   every correct value of its key until then. Ingest rejects them; this also catches rows that
   reached Delta before that check existed.
2. Per key, the latest row by ``event_timestamp``, then ``created_timestamp``
   (:func:`feast_spark.spark.latest.latest_rows`) is written, nulls included.
3. The online store keeps a row only if it is newer than what it holds (see
   :mod:`feast_spark.online.base`), so the online value of a key is the latest row among all
   windows materialized so far, whatever order they ran in, however often.

Writes happen on the executors: every write task opens its own store session, sends Arrow batches
and returns its counts; the driver sums them. A task whose writes still fail after the store's
retries fails, and with it the job.

Example (window ``[2024-01-01, 2024-01-02)``)::

    driver_id  event_timestamp   created_timestamp  rate          online table
    1          2024-01-01 09:00  2024-01-01 09:00   0.5           driver_id  rate  event_timestamp
    1          2024-01-01 10:00  2024-01-01 10:00   0.6     ->    1          0.6   2024-01-01 10:00
    2          2024-01-01 09:00  2024-01-01 09:30   0.8           2          0.8   2024-01-01 09:00
    2          2024-01-01 09:00  2024-01-01 09:00   0.7
    2          2024-01-02 00:00  2024-01-02 00:00   0.9     (outside the window)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from feast_spark.columns import CREATED_TIMESTAMP, EVENT_TIMESTAMP
from feast_spark.definitions import FeatureTable
from feast_spark.online.base import (
    OnlineStore,
    OnlineTableSchema,
    WriteCounts,
    to_micros,
)
from feast_spark.online.stores import open_online_store
from feast_spark.spark.identifiers import quote
from feast_spark.spark.latest import latest_rows
from feast_spark.specs import Window

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame

_COUNTS_DDL = "written long, expired long"


@dataclass(frozen=True)
class TableOutcome:
    """What materializing one table did.

    Attributes:
        table: The feature table.
        online_table: The online table written.
        rows_written: Rows (one per key) sent to the online store.
        rows_expired: Latest rows not written because their retention had ended.
        rows_future: Offline rows of the window skipped because their event time is beyond
            the job's start plus the future allowance.
    """

    table: str
    online_table: str
    rows_written: int
    rows_expired: int
    rows_future: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON form, for the job's result record."""
        return {
            "table": self.table,
            "online_table": self.online_table,
            "rows_written": self.rows_written,
            "rows_expired": self.rows_expired,
            "rows_future": self.rows_future,
        }


def online_rows(offline: DataFrame, table: FeatureTable, window: Window) -> DataFrame:
    """The latest offline row per entity key in ``window``, shaped for the online store.

    Args:
        offline: Rows of the table's Delta table (keys, ``event_timestamp``,
            ``created_timestamp``, features; other columns are dropped). A feature the frame
            lacks (added to the definition but not yet to the Delta table) is all null.
        table: The feature table.
        window: Event-time window ``[start, end)``; open bounds are unbounded.

    Returns:
        Keys, features (declaration order), ``event_timestamp``, ``created_timestamp``: one row
        per key that has a row in the window.

    Raises:
        SourceSchemaError: A key or timestamp column is missing or mistyped.
    """
    return latest_rows(
        online_columns(offline, table), table.entities, start=window.start, end=window.end,
        table_name=table.name,
    )  # fmt: skip


def online_columns(offline: DataFrame, table: FeatureTable) -> DataFrame:
    """Keys, features (declaration order; all null where ``offline`` lacks one), the two times."""
    from pyspark.sql import functions as sf

    present = set(offline.columns)
    features = [
        sf.col(quote(f.name))
        if f.name in present
        else sf.lit(None).cast(f.dtype.spark_ddl).alias(f.name)
        for f in table.features
    ]
    keys = [sf.col(quote(name)) for name in table.entities]
    return offline.select(*keys, *features, EVENT_TIMESTAMP, CREATED_TIMESTAMP)


def write_online(
    rows: DataFrame,
    schema: OnlineTableSchema,
    store: Mapping[str, Any],
    *,
    tasks: int | None = None,
    by_key: Sequence[str] | None = None,
) -> WriteCounts:
    """Write ``rows`` to the online store from the executors; return what was written.

    The table must exist (``ensure_table`` on the driver first). Each write task opens its own
    store (only once it has rows), writes its Arrow batches and yields its counts.

    Rows holding several rows of a key (a stream's micro-batch, not reduced to the latest row
    per key) are written ``by_key``: partitioned by key into ``tasks`` tasks (one task: no
    shuffle at all), each task writing its rows in one call, in which the store keeps each
    key's latest row and counts the key once. A key never spans two tasks, so two writes of
    rows tied on event time never race (the store orders them by reading first).

    Args:
        rows: Keys, features, ``event_timestamp`` (and ``created_timestamp``).
        schema: The online table.
        store: The online store's settings as a mapping, shipped to the executors
            (:func:`feast_spark.online_store_config.serialize_online_store`).
        tasks: Write tasks at most (default: the cluster's default parallelism); each holds one
            session with ``write_concurrency`` writes in flight. With ``by_key``: exactly.
        by_key: The key columns, when ``rows`` may hold several rows of a key (see above); a
            task then holds all its rows in memory at once.

    Raises:
        pyspark.errors.PySparkException: A write task failed (its OnlineStoreError is in the
            message).
    """
    settings = dict(store)

    def write_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        counts = WriteCounts()
        opened: OnlineStore | None = None
        if by_key is not None:  # one write call: a key's rows never split between two calls
            given = [batch for batch in batches if batch.num_rows]
            batches = iter([pa.concat_batches(given)] if given else [])
        try:
            for batch in batches:
                if batch.num_rows == 0:
                    continue
                if opened is None:
                    opened = open_online_store(settings)
                counts = counts + opened.write_batch(schema, batch)
        finally:
            if opened is not None:
                opened.close()
        yield pa.RecordBatch.from_pydict(
            {"written": [counts.written], "expired": [counts.expired]},
            schema=pa.schema([("written", pa.int64()), ("expired", pa.int64())]),
        )

    parallelism = tasks or rows.sparkSession.sparkContext.defaultParallelism
    if by_key is None or parallelism == 1:
        partitioned = rows.coalesce(parallelism)
    else:
        partitioned = rows.repartition(parallelism, *[quote(key) for key in by_key])
    # One row of counts per task, summed here: a Spark aggregate would add a shuffle and a job.
    per_task = partitioned.mapInArrow(write_partition, _COUNTS_DDL).collect()
    return WriteCounts(
        sum(int(row["written"]) for row in per_task), sum(int(row["expired"]) for row in per_task)
    )


def materialize_table(
    offline: DataFrame,
    schema: OnlineTableSchema,
    table: FeatureTable,
    window: Window,
    store: Mapping[str, Any],
    *,
    tasks: int | None = None,
    latest_event: datetime | None = None,
) -> TableOutcome:
    """Ensure the online table, then write the latest row per key of ``window`` to it.

    Args:
        offline: The table's offline rows (any superset of the window).
        schema: The online table (``OnlineTableSchema.of(project, table, entities)``).
        table: The feature table.
        window: Event-time window.
        store: The online store's settings as a mapping.
        tasks: Write tasks at most (see :func:`write_online`).
        latest_event: Rows with a later event time are skipped and counted, so the latest
            row of a key is chosen among the others (None: no limit).

    Raises:
        OnlineStoreError: The store cannot be reached or refuses the schema.
        pyspark.errors.PySparkException: A write task failed.
    """
    from pyspark.sql import Observation
    from pyspark.sql import functions as sf

    with open_online_store(store) as online:
        online.ensure_table(schema)
    future = Observation()
    if latest_event is not None:
        beyond = sf.col(EVENT_TIMESTAMP) > sf.timestamp_micros(sf.lit(to_micros(latest_event)))
        offline = offline.observe(
            future, sf.count(sf.when(beyond, sf.lit(1))).alias("future")
        ).where(~beyond)
    counts = write_online(online_rows(offline, table, window), schema, store, tasks=tasks)
    skipped = int(future.get.get("future") or 0) if latest_event is not None else 0
    return TableOutcome(table.name, schema.name, counts.written, counts.expired, skipped)
