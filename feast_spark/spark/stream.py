"""Stream ingestion, one micro-batch at a time: Kafka messages to online (and offline) rows.

A micro-batch of Kafka records (``key, value, topic, partition, offset, timestamp``) goes through
the same checks as a batch ingest (:func:`feast_spark.spark.row_checks.check_rows`), then is
written by :func:`feast_spark.spark.checked_writes.write_checked` (as a push's rows are):

1. **online**: the latest valid row per key is written with the materialize writer
   (:func:`feast_spark.spark.materialize.write_online`). The event time is the write timestamp
   and the store keeps a row only if it is newer than the one it holds, so late, out-of-order,
   duplicated and replayed messages never regress a value; rows older than ``max_age`` expire.
   How depends on the batch's size, read from the query's offset log (:class:`OnlinePlan`).
2. **rejected rows**: unparseable messages and rows that fail a check go to the table's
   rejected-rows table with their reason; ``source_row`` carries the message's fields and its
   Kafka coordinates (``_kafka_topic``, ``_kafka_partition``, ``_kafka_offset``). They are
   recorded under the id ``<stream id>-<batch id>``, once: a replayed batch's are skipped.
3. **offline** (``--to both``): the valid rows are appended to the Delta offline table in one
   commit carrying Delta's transaction identifier (``txnAppId`` = the stream id, ``txnVersion``
   = the batch id): a batch replayed after a crash is skipped by Delta, so the table gets each
   batch exactly once.

Every step is idempotent, so a batch interrupted anywhere is replayed whole from the checkpoint.

Message rules (format ``json``): each message value is one JSON object whose fields are the
table's columns (renamed by ``field_mapping``). Fields are read as text and converted by the
batch rules (:mod:`feast_spark.spark.conversions`), so ``"7"`` and ``7`` are both a valid INT64
and ``"x"`` rejects its row with a reason; ``BYTES`` values are base64 text; lists are JSON
arrays. A message that is not a JSON object (or has no value) is rejected as unparseable. When
the source names no created-timestamp field, the message's Kafka timestamp is the created time:
of two messages with the same event time, the one produced later wins.

Example (``trips`` INT64, one batch)::

    offset  value                                            online / rejected
    0       {"driver_id": 1, "ts": "2024-01-01T10:00Z", "trips": 7}
    1       {"driver_id": 1, "ts": "2024-01-01T10:05Z", "trips": 9}   online: 1 -> 9 (10:05)
    2       {"driver_id": 2, "ts": "2024-01-01T10:00Z", "trips": "x"} rejected: trips: x is not a
                                                                      valid INT64 (offset 2)
    3       not json                                                  rejected: message is not a
                                                                      JSON object (offset 3)
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F  # noqa: N812 (the conventional alias)
from pyspark.sql import types as T  # noqa: N812

from feast_spark.columns import EVENT_TIMESTAMP
from feast_spark.definitions import Entity, FeatureTable, FileSource
from feast_spark.definitions.stream_sources import KafkaSource
from feast_spark.errors import FeastSparkError
from feast_spark.online.base import OnlineTableSchema
from feast_spark.spark.checked_writes import ExtraRejected, WriteTargets, write_checked
from feast_spark.spark.identifiers import quote
from feast_spark.spark.job_entry import pause_point
from feast_spark.spark.row_checks import CheckPlan, check_plan, event_bound
from feast_spark.spark.sources import require_utc_session
from feast_spark.storage import read_text
from feast_spark.types import ValueType

_log = logging.getLogger("feast_spark.spark.stream")

#: The Kafka coordinates kept beside each message's fields (and in its rejected ``source_row``).
KAFKA_TOPIC = "_kafka_topic"
KAFKA_PARTITION = "_kafka_partition"
KAFKA_OFFSET = "_kafka_offset"
KAFKA_TIMESTAMP = "_kafka_timestamp"
_CORRUPT = "_feast_corrupt_message"
# A batch's latest accepted event time (microseconds), as a column of its messages.
_LATEST_EVENT = "_feast_latest_event"
UNPARSEABLE = "message is not a JSON object"
SHUFFLE_PARTITIONS = "spark.sql.shuffle.partitions"
ADAPTIVE = "spark.sql.adaptive.enabled"


def use_micro_batch_settings(session: SparkSession) -> None:
    """Settings for a micro-batch: its shuffle in the cluster's parallelism, no adaptive plan.

    The latest-per-key aggregation of a small micro-batch spends more on Spark's default 200
    shuffle blocks per map task than on its rows (about 1 s of a 2,000-row batch on 2 cores,
    BENCHMARKS.md); a value set in the Spark conf (``--conf``, ``spark-defaults.conf``) is kept.
    Adaptive execution is turned off: it runs the shuffle's two stages as two Spark jobs with a
    new plan between them, which cost a small batch more than anything it could adapt (one
    aggregation, nothing to join). ``session`` is the streaming query's own session (the
    micro-batch's), so the caller's session is not changed.
    """
    session.conf.set(ADAPTIVE, "false")
    if session.sparkContext.getConf().contains(SHUFFLE_PARTITIONS):
        return
    session.conf.set(SHUFFLE_PARTITIONS, str(session.sparkContext.defaultParallelism))


@dataclass(frozen=True)
class OnlinePlan:
    """How a micro-batch's valid rows are written online, by its number of Kafka records.

    Up to ``single_task_records`` (a steady stream's batch), one task writes them without a
    shuffle: a small micro-batch pays more for a stage and a shuffle than for its rows. Larger
    batches of a known size are hash-partitioned by key into tasks of about
    ``records_per_task`` (at least the cluster's parallelism), cheaper than an aggregation.
    Either way the store keeps each key's latest row (``write_online``'s ``by_key``). A batch
    of unknown size (no offset log, or a partition without a start offset) goes through the
    latest-per-key aggregation, which holds no task's rows in memory (BENCHMARKS.md: stream
    ingestion).

    Attributes:
        single_task_records: Batches of at most this many records use one write task.
        records_per_task: Records per write task of larger batches.
    """

    single_task_records: int = 5_000
    records_per_task: int = 100_000

    def tasks(self, records: int | None, parallelism: int) -> int | None:
        """Write tasks for a batch of ``records`` (None: unknown, aggregate first)."""
        if records is None:
            return None
        if records <= self.single_task_records:
            return 1
        return max(parallelism, -(-records // self.records_per_task))


def batch_records(checkpoint_path: str | None, batch_id: int) -> int | None:
    """How many Kafka records micro-batch ``batch_id`` spans, from the query's offset log.

    Spark writes a batch's end offsets to ``<checkpoint>/offsets/<batch id>`` before running
    it, and its start offsets are the previous batch's end (batch 0: ``sources/0/0``, the
    resolved starting offsets). Each file's last line is the Kafka source's offsets as JSON
    (``{"topic": {"0": 42}}``). The span is an upper bound (compacted topics have gaps). None
    when a file is missing or unreadable, or a partition has no start offset: the caller then
    plans for any size.
    """
    if checkpoint_path is None:
        return None
    base = checkpoint_path.rstrip("/")
    start = f"{base}/offsets/{batch_id - 1}" if batch_id > 0 else f"{base}/sources/0/0"
    try:
        end_offsets = logged_offsets(read_text(f"{base}/offsets/{batch_id}"))
        start_offsets = logged_offsets(read_text(start))
    except (FeastSparkError, OSError, ValueError):
        return None
    span = 0
    for topic, partitions in end_offsets.items():
        for partition, offset in partitions.items():
            first = start_offsets.get(topic, {}).get(partition)
            if first is None or first < 0 or offset < first:
                return None
            span += offset - first
    return span


def logged_offsets(text: str) -> dict[str, dict[str, int]]:
    """The Kafka offsets of an offset-log file (its last line; ValueError: not such JSON)."""
    lines = [line for line in text.strip("\x00\n").splitlines() if line.strip()]
    offsets = json.loads(lines[-1]) if lines else None
    if not isinstance(offsets, dict) or not all(
        isinstance(parts, dict) and all(isinstance(v, int) for v in parts.values())
        for parts in offsets.values()
    ):
        raise ValueError("not Kafka offsets")
    return offsets


def message_fields(table: FeatureTable, source: KafkaSource) -> T.StructType:
    """The JSON fields read from each message: every column the table needs, as text.

    Lists are arrays of text; everything else is text (a JSON number or boolean keeps its
    literal spelling), converted afterwards by the batch rules.
    """
    fields: dict[str, T.DataType] = {}
    for name in table.entities:
        fields[source.source_column(name)] = T.StringType()
    fields[source.event_timestamp_column] = T.StringType()
    if source.created_timestamp_column:
        fields[source.created_timestamp_column] = T.StringType()
    for feature in table.features:
        kind: T.DataType = T.StringType()
        if feature.dtype.is_list:
            kind = T.ArrayType(T.StringType())
        fields[source.source_column(feature.name)] = kind
    return T.StructType(
        [T.StructField(n, k) for n, k in fields.items()] + [T.StructField(_CORRUPT, T.StringType())]
    )


def check_source(source: KafkaSource) -> FileSource:
    """The batch-source view of ``source`` that :func:`check_rows` reads its mapping from."""
    return FileSource(
        path=f"kafka://{source.bootstrap_servers}/{source.topic}",
        event_timestamp_column=source.event_timestamp_column,
        created_timestamp_column=source.created_timestamp_column,
        field_mapping=dict(source.field_mapping),
        timestamp_format=source.timestamp_format,
    )


@dataclass(frozen=True)
class MessagePlan:
    """How a micro-batch's Kafka records become messages and unparseable rejections, as columns.

    Built once per stream (:func:`message_plan`), as :class:`~feast_spark.spark.row_checks.
    CheckPlan` is: every batch has the same schema, and building the columns again for each
    batch cost more calls to the JVM than checking a small batch.

    Attributes:
        parsed: The parsed message, its text and its Kafka coordinates.
        bad: Holds for a message that is not a JSON object.
        counts: ``records`` and ``unparseable``, for an observation.
        messages: One column per message field (``BYTES`` decoded), and the coordinates.
        unparseable: The rejected-row columns of a message that is not a JSON object.
    """

    parsed: tuple[Column, ...]
    bad: Column
    counts: tuple[Column, ...]
    messages: tuple[Column, ...]
    unparseable: tuple[Column, ...]

    def apply(
        self, records: DataFrame, observation: Observation | None = None, *more: Column
    ) -> tuple[DataFrame, DataFrame]:
        """``(messages, unparseable)`` of a batch of Kafka records.

        Args:
            records: Spark's Kafka source rows (``value`` binary, ``topic``, ``partition``,
                ``offset``, ``timestamp``).
            observation: Counts ``records`` and ``unparseable`` as the first action on either
                result reads them: no pass of its own.
            more: Columns added to the messages (a batch's own values).

        Returns:
            The parsed messages (one column per message field, plus the Kafka coordinates and
            ``more``), and the rejected rows of the messages that are not JSON objects
            (``reason``, ``event_timestamp`` null, ``source_row``).
        """
        frame = records.select(*self.parsed)
        if observation is not None:
            frame = frame.observe(observation, *self.counts)
        messages = frame.where(~self.bad).select(*self.messages, *more)
        return messages, frame.where(self.bad).select(*self.unparseable)


def message_plan(table: FeatureTable, source: KafkaSource) -> MessagePlan:
    """The :class:`MessagePlan` of ``table``'s messages on ``source`` (rules: module docstring)."""
    schema = message_fields(table, source)
    text = F.col("value").cast("string")
    parsed = F.from_json(
        text, schema, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": _CORRUPT}
    )
    coordinates = (
        F.col("topic").alias(KAFKA_TOPIC),
        F.col("partition").alias(KAFKA_PARTITION),
        F.col("offset").alias(KAFKA_OFFSET),
        F.col("timestamp").alias(KAFKA_TIMESTAMP),
    )
    bad = F.col("_m").isNull() | F.col(f"_m.{quote(_CORRUPT)}").isNotNull()
    counts = (
        F.count(F.lit(1)).alias("records"),
        F.count(F.when(bad, F.lit(1))).alias("unparseable"),
    )
    decoded = {source.source_column(f.name) for f in table.features if f.dtype == ValueType.BYTES}
    fields = [
        (
            F.try_to_binary(F.col(f"_m.{quote(name)}"), F.lit("base64"))
            if name in decoded
            else F.col(f"_m.{quote(name)}")
        ).alias(name)
        for name in schema.fieldNames()
        if name != _CORRUPT
    ]
    names = [KAFKA_TOPIC, KAFKA_PARTITION, KAFKA_OFFSET]
    unparseable = (
        F.lit(UNPARSEABLE).alias("reason"),
        F.lit(None).cast("timestamp").alias(EVENT_TIMESTAMP),
        F.to_json(
            F.struct(F.col("_value").alias("_kafka_value"), *[F.col(n) for n in names])
        ).alias("source_row"),
    )
    return MessagePlan(
        parsed=(parsed.alias("_m"), text.alias("_value"), *coordinates),
        bad=bad,
        counts=counts,
        messages=(*fields, *[F.col(n) for n in (*names, KAFKA_TIMESTAMP)]),
        unparseable=unparseable,
    )


def message_checks(
    messages: DataFrame, table: FeatureTable, entities: Sequence[Entity], source: KafkaSource
) -> CheckPlan:
    """The batch checks of parsed messages (:func:`check_rows`' rules, no window), as a plan.

    A message without a created time gets its Kafka timestamp as one. When ``messages`` carry
    a batch's latest accepted event time (:data:`_LATEST_EVENT`, from
    :func:`~feast_spark.spark.row_checks.event_bound`), later events are rejected; that column
    stays out of a rejected row's ``source_row``.
    """
    require_utc_session(messages.sparkSession)
    bounded = _LATEST_EVENT in messages.columns
    return check_plan(
        messages.schema, [name for name in messages.columns if name != _LATEST_EVENT], table,
        entities, check_source(source), None, landed_at=F.col(KAFKA_TIMESTAMP),
        latest_event=F.col(_LATEST_EVENT) if bounded else None,
    )  # fmt: skip


class StreamStoppingError(RuntimeError):
    """A micro-batch that began while the stream was stopping (it is replayed at the next start)."""


@dataclass
class StreamTotals:
    """What a stream has done since its job started (updated after each micro-batch).

    Attributes:
        batches: Micro-batches processed.
        messages: Kafka messages read.
        rows_rejected: Messages rejected (unparseable or failing a check).
        rows_written: Rows written online (one per key and batch).
        rows_expired: Latest rows not written online because ``max_age`` had passed.
        rows_offline: Rows sent to the offline table (``--to both``; a replayed batch's rows
            count again, though Delta skips them).
        last_batch_id: The last batch's id.
        last_batch_s: The last batch's duration in seconds.
    """

    batches: int = 0
    messages: int = 0
    rows_rejected: int = 0
    rows_written: int = 0
    rows_expired: int = 0
    rows_offline: int = 0
    last_batch_id: int | None = None
    last_batch_s: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        with self.lock:
            return {
                "batches": self.batches,
                "messages": self.messages,
                "rows_rejected": self.rows_rejected,
                "rows_written": self.rows_written,
                "rows_expired": self.rows_expired,
                "rows_offline": self.rows_offline,
                "last_batch_id": self.last_batch_id,
                "last_batch_s": self.last_batch_s,
            }


@dataclass
class BatchWriter:
    """The ``foreachBatch`` function of a stream: checks and writes one micro-batch.

    Attributes:
        table: The feature table.
        entities: Its entities.
        source: Its stream source.
        schema: The online table (created before the query starts).
        store: The online store's settings as a mapping.
        rejected_path: The rejected-rows table.
        future_allowance: Rows whose event time is later than the batch's start plus this are
            rejected (None: no limit).
        offline_path: The Delta offline table, created before the query starts (None: online
            only).
        totals: Updated after each batch.
        stream_id: The stream's stable id (set by :meth:`start`).
        checkpoint_path: The query's checkpoint: each batch's size is read from its offset log
            (None: unknown, every batch planned for any size).
        online_plan: How valid rows are written online, by the batch's size.
    """

    table: FeatureTable
    entities: Sequence[Entity]
    source: KafkaSource
    schema: OnlineTableSchema
    store: Mapping[str, Any]
    rejected_path: str
    future_allowance: timedelta | None = None
    offline_path: str | None = None
    totals: StreamTotals = field(default_factory=StreamTotals)
    stream_id: str | None = None
    checkpoint_path: str | None = None
    online_plan: OnlinePlan = field(default_factory=OnlinePlan)
    _ready: threading.Event = field(default_factory=threading.Event, repr=False)
    _offline_schema: T.StructType | None = field(default=None, repr=False)
    # Built at the first batch, for all of them (see MessagePlan).
    _messages: MessagePlan | None = field(default=None, repr=False)
    _checks: CheckPlan | None = field(default=None, repr=False)
    _busy: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _closed: bool = field(default=False, repr=False)
    #: Seconds of each step of the last batch (online, rejected, offline), for profiling.
    step_seconds: dict[str, float] = field(default_factory=dict, repr=False)

    def start(self, stream_id: str) -> None:
        """Set the stream's stable id (the query's id, kept in its checkpoint); batches wait."""
        self.stream_id = stream_id
        self._ready.set()

    def close(self) -> None:
        """Wait for the micro-batch in progress to finish; refuse any later one.

        Called before ``query.stop()``, which interrupts the query's thread: its writes are then
        never cut short. A batch refused here raises, so Spark does not commit it and the next
        start replays it.
        """
        with self._busy:
            self._closed = True

    def __call__(self, records: DataFrame, batch_id: int) -> None:
        """Process one micro-batch (Spark calls this; a replayed batch gives the same result)."""
        with self._busy:
            if self._closed:
                raise StreamStoppingError(f"batch {batch_id} refused: the stream is stopping")
            self._process(records, batch_id)

    def _process(self, records: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        if not self._ready.wait(timeout=600):
            raise RuntimeError("the stream's id was never set; call BatchWriter.start")
        stream_id = str(self.stream_id)
        use_micro_batch_settings(records.sparkSession)
        received_at = datetime.now(UTC)
        latest = None if self.future_allowance is None else received_at + self.future_allowance
        # The Kafka records are not cached (building the cache was a quarter of a write task's
        # time): a batch with rejected rows reads its records from Kafka again (the same
        # offsets); ``--to both`` caches the checked rows in write_checked.
        parsed = Observation()
        if self._messages is None:
            self._messages = message_plan(self.table, self.source)
        more = () if latest is None else (event_bound(latest).alias(_LATEST_EVENT),)
        messages, unparseable = self._messages.apply(records, parsed, *more)
        if self._checks is None:
            self._checks = message_checks(messages, self.table, self.entities, self.source)
        checked = self._checks.apply(messages)
        targets = WriteTargets(self.table, self.schema, self.store, self.rejected_path,
                               self.offline_path)  # fmt: skip
        online_tasks = self.online_plan.tasks(
            batch_records(self.checkpoint_path, batch_id),
            records.sparkSession.sparkContext.defaultParallelism,
        )
        done = write_checked(
            checked, targets, record_id=f"{stream_id}-{batch_id}", txn_app_id=stream_id,
            txn_version=batch_id, received_at=received_at,
            extra_rejected=ExtraRejected(unparseable, parsed),
            offline_schema=self._offline_schema, online_tasks=online_tasks,
        )  # fmt: skip
        self._offline_schema = done.offline_schema
        self.step_seconds = dict(done.seconds)
        counts = {"messages": done.read, "rejected": done.rejected, "written": done.written,
                  "expired": done.expired, "offline": done.offline}  # fmt: skip
        elapsed = time.monotonic() - started
        with self.totals.lock:
            totals = self.totals
            totals.batches += 1
            totals.messages += counts["messages"]
            totals.rows_rejected += counts["rejected"]
            totals.rows_written += counts["written"]
            totals.rows_expired += counts["expired"]
            totals.rows_offline += counts["offline"]
            totals.last_batch_id, totals.last_batch_s = batch_id, round(elapsed, 3)
        _log.info(
            "batch %d: %s in %.2f s (%s; online written by %s)", batch_id, counts, elapsed,
            ", ".join(f"{k} {v:.2f} s" for k, v in self.step_seconds.items()),
            "an aggregation" if online_tasks is None else f"{online_tasks} task(s)",
        )  # fmt: skip
        pause_point("stream_batch")  # fault tests: kill the driver before Spark commits the batch


#: How long the broker may hold a Kafka fetch waiting for more data (the consumer's
#: ``fetch.max.wait.ms``; Kafka's default is 500 ms). Spark's reader fetches a micro-batch's known
#: offset range, and its fetch past the range's last record waited that whole time: half a
#: second of every micro-batch. The wait bounds only fetches that find no data.
FETCH_MAX_WAIT_MS: Final = 10


def reader_options(source: KafkaSource, parallelism: int) -> dict[str, str]:
    """The options of Spark's Kafka source for ``source`` on a cluster of ``parallelism`` cores.

    A stream whose checkpoint points at offsets the topic no longer retains goes on from the
    earliest retained one (``failOnDataLoss`` false) rather than stopping for good. A micro-batch
    is read in at least as many tasks as the cluster has cores (``minPartitions``: a topic of one
    partition would otherwise parse and check each batch on one core), and a fetch that finds no
    data returns after :data:`FETCH_MAX_WAIT_MS`. The source's own options override these.
    """
    options = {
        "kafka.bootstrap.servers": source.bootstrap_servers,
        "subscribe": source.topic,
        "startingOffsets": source.starting_offsets,
        "failOnDataLoss": "false",
        "minPartitions": str(parallelism),
        "kafka.fetch.max.wait.ms": str(FETCH_MAX_WAIT_MS),
    }
    return {**options, **source.options}


def kafka_reader(spark: SparkSession, source: KafkaSource) -> DataFrame:
    """The streaming DataFrame of ``source``'s topic (options: :func:`reader_options`)."""
    options = reader_options(source, spark.sparkContext.defaultParallelism)
    return spark.readStream.format("kafka").options(**options).load()
