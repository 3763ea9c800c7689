"""Benchmark of stream ingestion (Kafka -> Cassandra), next to a bare foreachBatch writer.

It produces --messages JSON messages (one INT64 key among --keys, --features DOUBLE features, an
ISO-8601 event time) to a new topic of the local broker (conf/kafka/local-kafka.sh), then drains
that backlog twice on a local Spark (--master, default local[2]), --max-per-batch messages per
micro-batch:

* ``stream``  feast_spark.spark.stream_query.run_stream, the job's code: parse, the batch checks,
              latest row per key, write to Cassandra, rejected rows (none here);
* ``floor``   a bare Structured Streaming query: from_json with the typed schema, then the same
              Cassandra writer (feast_spark.spark.materialize.write_online), no checks, no
              latest-per-key.

Sustained rate: messages processed between the end of the first micro-batch and the end of the
last, over that time (the first batch's start-up cost is left out). The target is at least 80% of
the floor.

Example (reduced sizes for a shared 2-core machine)::

    python benchmarks/stream.py --messages 200000 --keys 20000

The keyspace (``bench_stream``) is dropped at the end unless --keep.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from feast_spark.config import CassandraOnlineStoreConfig
from feast_spark.definitions import Entity, Feature, FeatureTable, FileSource, KafkaSource
from feast_spark.online.base import OnlineTableSchema, online_store_mapping
from feast_spark.specs import JobSpec, StreamOptions


def produce(bootstrap: str, topic: str, messages: int, keys: int, features: int) -> float:
    """Send the messages; return the producer's rate (messages/s)."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1 << 20,
                         "queue.buffering.max.messages": 1_000_000})  # fmt: skip
    start = datetime(2024, 1, 1, tzinfo=UTC)
    began = time.monotonic()
    for i in range(messages):
        value = {"driver_id": random.randrange(keys),
                 "ts": (start + timedelta(milliseconds=i)).isoformat()}  # fmt: skip
        value.update({f"f{j}": random.random() for j in range(features)})
        while True:
            try:
                producer.produce(topic, value=json.dumps(value).encode())
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(120)
    return messages / (time.monotonic() - began)


class Timeline:
    """(monotonic time, messages done) after each micro-batch."""

    def __init__(self) -> None:
        self.points: list[tuple[float, int]] = []
        self.lock = threading.Lock()

    def add(self, done: int) -> None:
        with self.lock:
            self.points.append((time.monotonic(), done))

    def done(self) -> int:
        with self.lock:
            return self.points[-1][1] if self.points else 0

    def sustained(self) -> float:
        first, last = self.points[0], self.points[-1]
        return (last[1] - first[1]) / (last[0] - first[0]) if last[0] > first[0] else 0.0


def wait_for(timeline: Timeline, messages: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while timeline.done() < messages:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{timeline.done()} of {messages} messages after {timeout_s} s")
        time.sleep(0.2)


def run_ours(spark: Any, spec: JobSpec, messages: int, timeout_s: float) -> Timeline:
    from feast_spark.spark import stream as stream_module
    from feast_spark.spark.stream_query import run_stream

    timeline = Timeline()
    original = stream_module.BatchWriter._process

    def timed(self: Any, records: Any, batch_id: int) -> None:
        original(self, records, batch_id)
        timeline.add(self.totals.messages)

    stream_module.BatchWriter._process = timed  # type: ignore[method-assign]
    thread = threading.Thread(target=run_stream, args=(spark, spec),
                              kwargs={"install_signals": False}, daemon=True)  # fmt: skip
    thread.start()
    try:
        wait_for(timeline, messages, timeout_s)
    finally:
        assert isinstance(spec.options, StreamOptions)
        Path(spec.options.stop_path).write_text("benchmark done")
        thread.join(120)
        stream_module.BatchWriter._process = original  # type: ignore[method-assign]
    return timeline


def run_floor(spark: Any, spec: JobSpec, messages: int, timeout_s: float) -> Timeline:
    from pyspark.sql import functions as F  # noqa: N812

    from feast_spark.spark.materialize import write_online
    from feast_spark.spark.stream import kafka_reader

    table = spec.feature_tables[0]
    assert table.stream_source is not None and isinstance(spec.options, StreamOptions)
    schema = OnlineTableSchema.of(spec.project, table, spec.entities)
    store = dict(spec.online_store or {})
    ddl = ", ".join(
        ["driver_id bigint", "ts string", *[f"{f.name} double" for f in table.features]]
    )
    timeline = Timeline()
    total = [0]

    def write(batch: Any, _batch_id: int) -> None:
        rows = batch.select(F.from_json(F.col("value").cast("string"), ddl).alias("m")).select(
            "m.driver_id", *[f"m.{f.name}" for f in table.features],
            F.to_timestamp("m.ts").alias("event_timestamp"),
        )  # fmt: skip
        total[0] += write_online(rows, schema, store).written
        timeline.add(total[0])

    query = (
        kafka_reader(spark, table.stream_source).writeStream.foreachBatch(write)
        .option("checkpointLocation", spec.options.checkpoint_path + "-floor").start()
    )  # fmt: skip
    try:
        wait_for(timeline, messages, timeout_s)
    finally:
        query.stop()
    return timeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--keys", type=int, default=20_000)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--max-per-batch", type=int, default=50_000)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--cassandra", default="127.0.0.1")
    parser.add_argument("--keyspace", default="bench_stream")
    parser.add_argument("--timeout", type=float, default=1200)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    from feast_spark.online.stores import open_online_store
    from feast_spark.spark.session import build_spark_session

    topic = f"bench_{uuid.uuid4().hex[:8]}"
    produced = produce(args.bootstrap, topic, args.messages, args.keys, args.features)
    source = KafkaSource(bootstrap_servers=args.bootstrap, topic=topic, event_timestamp_column="ts",
                         starting_offsets="earliest",
                         options={"maxOffsetsPerTrigger": str(args.max_per_batch)})  # fmt: skip
    table = FeatureTable(
        "bench_stream", ["driver_id"], [Feature(f"f{j}", "DOUBLE") for j in range(args.features)],
        FileSource(path="/unused", event_timestamp_column="ts"), stream_source=source,
    )  # fmt: skip
    store = CassandraOnlineStoreConfig(hosts=(args.cassandra,), keyspace=args.keyspace,
                                       write_consistency="ONE")  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    spec = JobSpec(
        job_id="bench-stream", job_type="stream_ingestion", project="bench",
        entities=(Entity("driver_id", "INT64"),), feature_tables=(table,),
        offline_store_path=str(work / "offline"), online_store=online_store_mapping(store),
        options=StreamOptions(checkpoint_path=str(work / "checkpoint"),
                              stop_path=str(work / "stop")),
    )  # fmt: skip
    spark = build_spark_session("bench-stream", master=args.master,
                                conf={"spark.ui.enabled": "false",
                                      "spark.sql.shuffle.partitions": "2"})  # fmt: skip
    try:
        ours = run_ours(spark, spec, args.messages, args.timeout)
        floor = run_floor(spark, spec, args.messages, args.timeout)
    finally:
        spark.stop()
        if not args.keep:
            with open_online_store(online_store_mapping(store)) as opened:
                opened.purge(OnlineTableSchema.of("bench", table, spec.entities))
    result = {
        "messages": args.messages, "keys": args.keys, "features": args.features,
        "max_per_batch": args.max_per_batch, "master": args.master,
        "producer_rows_per_s": round(produced),
        "stream_rows_per_s": round(ours.sustained()), "stream_batches": len(ours.points),
        "floor_rows_per_s": round(floor.sustained()), "floor_batches": len(floor.points),
    }  # fmt: skip
    result["stream_vs_floor"] = round(
        result["stream_rows_per_s"] / max(1, result["floor_rows_per_s"]), 2
    )
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
