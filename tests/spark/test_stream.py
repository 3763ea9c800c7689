"""Stream ingestion in the test session: Kafka messages to SQLite online values, rejected rows and
Delta offline rows; stop and resume from the checkpoint; a replayed micro-batch writes nothing twice.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from feast_spark.config import SqliteOnlineStoreConfig
from feast_spark.definitions import Entity, Feature, FeatureTable, FileSource, KafkaSource
from feast_spark.online.base import OnlineTableSchema, online_store_mapping
from feast_spark.online.service import get_online_features
from feast_spark.online.stores import open_online_store
from feast_spark.specs import JobSpec, StreamOptions

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from feast_spark.spark.stream import BatchWriter

DRIVER = Entity("driver_id", "INT64")
FEATURES = [Feature("trips", "INT64"), Feature("rate", "DOUBLE"), Feature("tags", "STRING_LIST")]
FEATURE_REFS = ["driver_stream:trips", "driver_stream:rate", "driver_stream:tags"]


def table_for(source: KafkaSource) -> FeatureTable:
    return FeatureTable(
        "driver_stream", ["driver_id"], FEATURES,
        FileSource(path="/tmp/unused", event_timestamp_column="ts"), stream_source=source,
    )  # fmt: skip


def message(driver: int | None, hour: int, **features: Any) -> str:
    document: dict[str, Any] = {"ts": f"2024-01-01T{hour:02d}:00:00Z", **features}
    if driver is not None:
        document["driver_id"] = driver
    return json.dumps(document)


@pytest.fixture()
def topic(kafka_broker: str) -> str:
    return f"drivers_{uuid.uuid4().hex[:8]}"


@pytest.fixture()
def produce(kafka_broker: str) -> Callable[[str, list[str]], None]:
    """``produce(topic, values)``: send the values in order and wait until the broker has them."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": kafka_broker, "linger.ms": 5})

    def send(topic: str, values: list[str]) -> None:
        for value in values:
            producer.produce(topic, value=value.encode())
        assert producer.flush(30) == 0

    return send


class Stream:
    """``run_stream`` in a thread of the test's session; ``stop()`` asks it through its stop file."""

    def __init__(self, spark: SparkSession, spec: JobSpec) -> None:
        from feast_spark.spark.stream_query import run_stream

        self.final: dict[str, Any] = {}
        self.error: BaseException | None = None
        assert isinstance(spec.options, StreamOptions)
        self.options = spec.options

        def target() -> None:
            try:
                self.final = run_stream(spark, spec, install_signals=False)
            except BaseException as error:  # reported by stop()
                self.error = error

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()

    def stop(self) -> dict[str, Any]:
        Path(self.options.stop_path).write_text("test")
        self.thread.join(180)
        assert not self.thread.is_alive(), "the stream did not stop within 180 s"
        Path(self.options.stop_path).unlink()
        if self.error is not None:
            raise self.error
        return self.final


@pytest.fixture()
def streams() -> Iterator[list[Stream]]:
    started: list[Stream] = []
    yield started
    for stream in started:  # a failed test must not leave a query running
        if stream.thread.is_alive():
            stream.stop()


def make_spec(tmp_path: Path, table: FeatureTable, store: Any, to: str) -> JobSpec:
    return JobSpec(
        job_id=f"stream-{uuid.uuid4().hex[:6]}",
        job_type="stream_ingestion",
        project="demo",
        entities=(DRIVER,),
        feature_tables=(table,),
        offline_store_path=str(tmp_path / "offline"),
        options=StreamOptions(
            store,
            checkpoint_path=str(tmp_path / "checkpoint"),
            stop_path=str(tmp_path / "stop"),
            to=to,
            progress_path=str(tmp_path / "progress.json"),
        ),
    )


def online(store: Any, table: FeatureTable, drivers: list[int]) -> dict[str, list[Any]]:
    with open_online_store(store) as opened:
        return get_online_features(
            opened, "demo", [table], [DRIVER], FEATURE_REFS, [{"driver_id": d} for d in drivers]
        ).to_dict()


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def offline_rows(spark: SparkSession, path: str) -> list[tuple[Any, ...]]:
    rows = spark.read.format("delta").load(path).orderBy("driver_id", "event_timestamp")
    return [(r["driver_id"], r["event_timestamp"].hour, r["trips"]) for r in rows.collect()]


@pytest.mark.kafka
def test_messages_reach_online_rejected_and_offline_then_resume_from_the_checkpoint(
    spark: SparkSession,
    tmp_path: Path,
    topic: str,
    kafka_broker: str,
    produce: Callable[[str, list[str]], None],
    streams: list[Stream],
    online_store: Any,
) -> None:
    # given a table whose stream source is a fresh topic, and a first lot of messages (online:
    # SQLite, and the Cassandra node)
    table = table_for(KafkaSource(bootstrap_servers=kafka_broker, topic=topic,
                                  event_timestamp_column="ts", starting_offsets="earliest"))  # fmt: skip
    store = online_store
    produce(topic, [
        message(1, 10, trips=7, rate=0.5, tags=["a"]),
        message(1, 12, trips=9, rate=0.7, tags=["c"]),    # driver 1's latest
        message(2, 10, trips="x", rate=0.1),              # offset 2: trips is not an integer
        "not json",                                        # offset 3: unparseable
        message(None, 10, trips=1),                        # offset 4: no key
        json.dumps({"driver_id": 3, "ts": "yesterday"}),   # offset 5: bad event time
        message(3, 10, trips="5", rate=1, tags=["b", 2]),  # text and numbers convert
    ])  # fmt: skip

    # when the stream runs to both stores
    spec = make_spec(tmp_path, table, store, "both")
    streams.append(Stream(spark, spec))
    wait_until(lambda: online(store, table, [1, 3])["driver_stream:trips"] == [9, 5], "batch 1")
    # and then an older message of driver 1 (out of order), a duplicate and a new driver arrive
    produce(topic, [message(1, 11, trips=8), message(1, 12, trips=9, rate=0.7, tags=["c"]),
                    message(4, 9, trips=40)])  # fmt: skip
    wait_until(lambda: online(store, table, [4])["driver_stream:trips"] == [40], "batch 2")
    final = streams[-1].stop()

    # then online values are each key's latest message, never regressed by the older one
    values = online(store, table, [1, 2, 3, 4])
    assert values["driver_stream:trips"] == [9, None, 5, 40]
    assert values["driver_stream:rate"] == [0.7, None, 1.0, None]
    assert values["driver_stream:tags"] == [["c"], None, ["b", "2"], None]
    # and the four bad messages are rejected with their reason and Kafka offset
    offline_path = spec.offline_table_path(table.name)
    rejected = spark.read.format("delta").load(offline_path + ".rejected").collect()
    by_offset = {json.loads(r["source_row"])["_kafka_offset"]: r["reason"] for r in rejected}
    assert sorted(by_offset) == [2, 3, 4, 5]
    assert "trips: x is not a valid INT64" in by_offset[2]
    assert by_offset[3] == "message is not a JSON object"
    assert "driver_id: entity key is null" in by_offset[4]
    assert "yesterday" in by_offset[5]
    assert all(json.loads(r["source_row"])["_kafka_topic"] == topic for r in rejected)
    # and the offline table holds every valid message once
    assert offline_rows(spark, offline_path) == [
        (1, 10, 7), (1, 11, 8), (1, 12, 9), (1, 12, 9), (3, 10, 5), (4, 9, 40),
    ]  # fmt: skip
    assert (final["messages"], final["rows_rejected"], final["rows_offline"]) == (10, 4, 6)
    assert final["stopped_by"].startswith("stop requested")
    progress = json.loads((tmp_path / "progress.json").read_text())
    assert progress["messages"] == 10 and "input_rows_per_s" in progress

    # when a message arrives while stopped, and the stream starts again from its checkpoint
    produce(topic, [message(5, 10, trips=50)])
    streams.append(Stream(spark, spec))
    wait_until(lambda: online(store, table, [5])["driver_stream:trips"] == [50], "the restart")
    again = streams[-1].stop()

    # then only the new message is read, and added once offline
    assert again["messages"] == 1
    assert len(offline_rows(spark, offline_path)) == 7


def kafka_records(spark: SparkSession, topic: str, values: list[str]) -> DataFrame:
    """What Spark's Kafka source gives foreachBatch, built in memory."""
    now = datetime.now(UTC)
    return spark.createDataFrame(
        [(None, v.encode(), topic, 0, offset, now, 0) for offset, v in enumerate(values)],
        "key binary, value binary, topic string, partition int, offset long, "
        "timestamp timestamp, timestampType int",
    )


def static_stream(
    store_config: Any, **writer: Any
) -> tuple[FeatureTable, dict[str, Any], BatchWriter]:
    """A table on an unused topic, its online table created, and a started BatchWriter."""
    from feast_spark.spark.stream import BatchWriter

    source = KafkaSource(bootstrap_servers="127.0.0.1:1", topic="t", event_timestamp_column="ts")
    table = table_for(source)
    store = online_store_mapping(store_config)
    schema = OnlineTableSchema.of("demo", table, [DRIVER])
    with open_online_store(store) as opened:
        opened.ensure_table(schema)
    batch_writer = BatchWriter(
        table=table, entities=[DRIVER], source=source, schema=schema, store=store, **writer
    )
    batch_writer.start("feast-spark-stream-test")
    return table, store, batch_writer


def test_a_replayed_micro_batch_writes_nothing_twice(
    spark: SparkSession, tmp_path: Path, online_store: Any
) -> None:
    from feast_spark.spark.offline_store import ensure_table
    from feast_spark.spark.rejected_rows import rejected_table_path

    # given a writer to the online store and an existing offline table, and one batch of records
    offline_path = str(tmp_path / "offline" / "demo" / "driver_stream")
    table, _, writer = static_stream(
        online_store, rejected_path=rejected_table_path(offline_path), offline_path=offline_path
    )
    ensure_table(spark, offline_path, table, [DRIVER])
    batch = kafka_records(spark, "t", [message(1, 10, trips=7), message(2, 10, trips="x")])

    # when the same batch id is processed twice (a replay after a crash), then a new batch
    writer(batch, 0)
    writer(batch, 0)
    writer(kafka_records(spark, "t", [message(1, 11, trips=8)]), 1)
    # and a late message of driver 1 (older than its value online)
    writer(kafka_records(spark, "t", [message(1, 9, trips=6)]), 2)

    # then the offline table got batch 0 once, the rejected rows table its bad row once
    assert offline_rows(spark, offline_path) == [(1, 9, 6), (1, 10, 7), (1, 11, 8)]
    rejected = spark.read.format("delta").load(rejected_table_path(offline_path))
    assert [r["ingestion_job_id"] for r in rejected.collect()] == ["feast-spark-stream-test-0"]
    assert writer.totals.batches == 4 and writer.totals.rows_rejected == 2
    # and online, driver 1 keeps its latest value, the late message notwithstanding
    assert online(online_store, table, [1, 2])["driver_stream:trips"] == [8, None]


def test_an_online_only_batch_counts_its_messages_in_the_write_itself(
    spark: SparkSession, tmp_path: Path
) -> None:
    from feast_spark.spark.rejected_rows import rejected_table_path

    # given an online-only writer (its counts come from the online write's observations)
    offline_path = str(tmp_path / "offline" / "demo" / "driver_stream")
    table, store, writer = static_stream(
        SqliteOnlineStoreConfig(path=str(tmp_path / "online.db")),
        rejected_path=rejected_table_path(offline_path),
    )

    # when it gets a mixed batch, an empty one, and one whose messages are all bad
    writer(kafka_records(spark, "t", [message(1, 10, trips=7), message(1, 11, trips=8),
                                      message(2, 10, trips="x"), "not json"]), 0)  # fmt: skip
    after_mixed = writer.totals.to_dict()
    writer(kafka_records(spark, "t", []), 1)
    writer(kafka_records(spark, "t", ["{broken", message(None, 10, trips=1)]), 2)

    # then each batch's messages, rejected and written rows are counted
    assert (after_mixed["messages"], after_mixed["rows_rejected"]) == (4, 2)
    assert after_mixed["rows_written"] == 1  # driver 1's latest only
    totals = writer.totals.to_dict()
    assert (totals["batches"], totals["messages"], totals["rows_rejected"]) == (3, 6, 4)
    assert (totals["rows_written"], totals["rows_offline"]) == (1, 0)
    # and the rejected rows of batches 0 and 2 are kept, online holds driver 1's latest value
    rejected = spark.read.format("delta").load(rejected_table_path(offline_path)).collect()
    assert sorted(r["ingestion_job_id"] for r in rejected) == [
        "feast-spark-stream-test-0", "feast-spark-stream-test-0",
        "feast-spark-stream-test-2", "feast-spark-stream-test-2",
    ]  # fmt: skip
    assert online(store, table, [1, 2])["driver_stream:trips"] == [8, None]


def test_query_rates_read_the_query_progress() -> None:
    from feast_spark.spark.stream_query import query_rates

    # given a StreamingQueryProgress document of a Kafka source
    progress = {
        "inputRowsPerSecond": 1000.0,
        "processedRowsPerSecond": 2500.04,
        "durationMs": {"triggerExecution": 412},
        "sources": [{"metrics": {"maxOffsetsBehindLatest": "17"}}],
    }
    # then the rates, the last trigger's duration and the lag are read; nothing known: None
    assert query_rates(progress) == {
        "input_rows_per_s": 1000.0, "processed_rows_per_s": 2500.0,
        "last_trigger_s": 0.412, "kafka_lag": 17,
    }  # fmt: skip
    assert set(query_rates(None).values()) == {None}


class _Conf(dict[str, str]):
    def contains(self, key: str) -> bool:
        return key in self

    def set(self, key: str, value: str) -> None:
        self[key] = value


class _Context:
    defaultParallelism = 2  # noqa: N815 (Spark's name)

    def __init__(self, spark_conf: _Conf) -> None:
        self.spark_conf = spark_conf

    def getConf(self) -> _Conf:  # noqa: N802 (Spark's name)
        return self.spark_conf


class _Session:
    def __init__(self, spark_conf: dict[str, str]) -> None:
        self.sparkContext = _Context(_Conf(spark_conf))
        self.conf = _Conf()


def test_micro_batches_shuffle_into_the_parallelism_unless_the_spark_conf_says_otherwise() -> None:
    from feast_spark.spark.stream import ADAPTIVE, SHUFFLE_PARTITIONS, use_micro_batch_settings

    # given a batch session without a shuffle setting, and one configured with 16
    default, configured = _Session({}), _Session({SHUFFLE_PARTITIONS: "16"})
    # when the stream prepares each for a micro-batch
    use_micro_batch_settings(default)  # type: ignore[arg-type]
    use_micro_batch_settings(configured)  # type: ignore[arg-type]
    # then the first shuffles into the cluster's parallelism, the second keeps its setting, and
    # neither plans adaptively (two jobs per shuffle)
    assert default.conf == {ADAPTIVE: "false", SHUFFLE_PARTITIONS: "2"}
    assert configured.conf == {ADAPTIVE: "false"}


def test_the_kafka_reader_reads_a_batch_in_every_core_without_waiting_at_its_end() -> None:
    from feast_spark.spark.stream import FETCH_MAX_WAIT_MS, reader_options

    # given a source with no options, and one that sets its own partitions and consumer wait
    plain = KafkaSource(bootstrap_servers="k:9092", topic="t", event_timestamp_column="ts")
    tuned = KafkaSource(
        bootstrap_servers="k:9092", topic="t", event_timestamp_column="ts",
        starting_offsets="earliest",
        options={"minPartitions": "8", "kafka.fetch.max.wait.ms": "100", "maxOffsetsPerTrigger": "5"},
    )  # fmt: skip
    # when their reader options are built for a cluster of 2 cores
    # then the plain one reads in 2 tasks, with a short wait for a fetch that finds no data
    assert reader_options(plain, 2) == {
        "kafka.bootstrap.servers": "k:9092", "subscribe": "t", "startingOffsets": "latest",
        "failOnDataLoss": "false", "minPartitions": "2",
        "kafka.fetch.max.wait.ms": str(FETCH_MAX_WAIT_MS),
    }  # fmt: skip
    # and the source's own options win
    assert reader_options(tuned, 2) == {
        "kafka.bootstrap.servers": "k:9092", "subscribe": "t", "startingOffsets": "earliest",
        "failOnDataLoss": "false", "minPartitions": "8", "kafka.fetch.max.wait.ms": "100",
        "maxOffsetsPerTrigger": "5",
    }  # fmt: skip


def write_offset_log(checkpoint: Path, start: dict[str, Any], ends: list[dict[str, Any]]) -> None:
    """A checkpoint's offset log as Spark writes it (``sources/0/0``, then ``offsets/<id>``)."""
    (checkpoint / "sources" / "0").mkdir(parents=True, exist_ok=True)
    (checkpoint / "sources" / "0" / "0").write_text("\x00v1\n" + json.dumps(start))
    (checkpoint / "offsets").mkdir(exist_ok=True)
    for batch_id, end in enumerate(ends):
        metadata = json.dumps({"batchWatermarkMs": 0, "batchTimestampMs": 1, "conf": {}})
        (checkpoint / "offsets" / str(batch_id)).write_text(f"v1\n{metadata}\n{json.dumps(end)}")


def test_a_batch_size_is_read_from_the_offset_log_or_is_unknown(tmp_path: Path) -> None:
    from feast_spark.spark.stream import batch_records

    # given an offset log of a topic of two partitions: batch 0 from the starting offsets,
    # batch 1 after it; batch 2 sees a third partition appear
    write_offset_log(tmp_path, {"t": {"0": 5, "1": 0}}, [
        {"t": {"0": 10, "1": 3}}, {"t": {"0": 10, "1": 4003}}, {"t": {"0": 11, "1": 4003, "2": 7}},
    ])  # fmt: skip
    # then each batch spans the offsets between its start and its end
    assert [batch_records(str(tmp_path), b) for b in (0, 1)] == [8, 4000]
    # and a partition without a start offset, a batch not logged, no checkpoint: unknown
    assert batch_records(str(tmp_path), 2) is None
    assert batch_records(str(tmp_path), 3) is None
    assert batch_records(None, 0) is None
    # and so is a log that is not Kafka offsets
    (tmp_path / "offsets" / "1").write_text("v1\n{}\n[1, 2]")
    assert batch_records(str(tmp_path), 1) is None


def test_small_batches_are_written_by_one_task_larger_ones_by_key_unknown_ones_aggregated() -> None:
    from feast_spark.spark.stream import OnlinePlan

    # given the default plan and a cluster of 2 cores
    plan = OnlinePlan()
    # then a steady stream's batch is one task, a backlog's batches tasks of 100,000 records
    # (at least one per core), and a batch of unknown size is aggregated first (None)
    assert [plan.tasks(n, 2) for n in (0, 5_000, 5_001, 250_000, 1_000_000)] == [1, 1, 2, 3, 10]
    assert plan.tasks(None, 2) is None


@pytest.mark.parametrize("plan", ["aggregated", "one task", "by key in three tasks"])
def test_every_online_plan_writes_each_keys_latest_message_and_counts_it_once(
    spark: SparkSession, tmp_path: Path, online_store: Any, plan: str
) -> None:
    from feast_spark.spark.rejected_rows import rejected_table_path
    from feast_spark.spark.stream import OnlinePlan

    # given a writer whose batch sizes are known (an offset log) or not, planned three ways
    checkpoint = tmp_path / "checkpoint"
    write_offset_log(
        checkpoint, {"t": {"0": 0}}, [{"t": {"0": 40}}, {"t": {"0": 80}}, {"t": {"0": 80}}]
    )
    plans = {
        "aggregated": (None, OnlinePlan()),
        "one task": (str(checkpoint), OnlinePlan(single_task_records=1_000)),
        "by key in three tasks": (str(checkpoint), OnlinePlan(0, records_per_task=15)),
    }
    path, online_plan = plans[plan]
    table, store, writer = static_stream(
        online_store, rejected_path=rejected_table_path(str(tmp_path / "offline")),
        checkpoint_path=path, online_plan=online_plan,
    )  # fmt: skip
    # and a batch of 40 messages for 8 drivers, each key's rows out of order: driver d's
    # latest is hour 10 + d % 3; two rows tie on that hour, the one of greater values wins
    messages = []
    for d in range(8):
        latest = 10 + d % 3
        messages += [message(d, latest - 2, trips=1), message(d, latest, trips=100 + d),
                     message(d, latest, trips=d), message(d, latest - 1, trips=2),
                     message(d, latest - 3, trips=3)]  # fmt: skip

    # when the batch is written, then a second one holding only older messages of every key
    writer(kafka_records(spark, "t", messages), 0)
    after_first = writer.totals.to_dict()
    writer(kafka_records(spark, "t", [message(d, 9, trips=-1) for d in range(8)] * 5), 1)
    # and an empty batch (the offset log spans no record)
    writer(kafka_records(spark, "t", []), 2)

    # then each key holds its latest message (the greater of the tied ones), never regressed
    drivers = list(range(8))
    assert online(store, table, drivers)["driver_stream:trips"] == [100 + d for d in drivers]
    # and each batch counted one written row per key
    assert (after_first["messages"], after_first["rows_written"]) == (40, 8)
    assert writer.totals.to_dict()["rows_written"] == 16
    assert writer.totals.to_dict()["batches"] == 3
