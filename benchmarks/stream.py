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
the floor. ``written_online_per_s`` counts the rows each writer sent to Cassandra over the same
span: the floor one row per key and Arrow batch of 10,000 messages (the store settles duplicates
within one write call), the stream one row per key and micro-batch (the key's latest); with
--keys well below the batch size both write fewer rows than they read messages.

Example (reduced sizes for a shared 2-core machine)::

    python benchmarks/stream.py --messages 200000 --keys 20000

Freshness mode (--freshness): the query runs first, then a producer process sends --rate
messages/s for --duration seconds (event time = now; feature ``f0`` = the message's production
time, epoch seconds) while a reader process reads ``f0`` of --read-keys keys through the online
store's read path (``OnlineStore.read``, what ``Client.get_online_features`` calls) in a loop;
each observed change gives one freshness sample: the time the read returned minus ``f0``.
Samples of messages produced in the first --warmup seconds (30) are left out. Then the same for
the floor, on a new topic. Default trigger (micro-batches back to back)::

    python benchmarks/stream.py --freshness --rate 2000 --duration 90 --keys 1000

Each writer's figures carry the load average before and after it, and the mean seconds of a
micro-batch and of the stream's steps (``batch_steps_s``, from BatchWriter.step_seconds; the
first two batches left out). Each writer runs in a process of its own (a new JVM each, the
backlog produced again): --only runs one writer in this one. --partitions sets the topic's
partitions (default 1).

The keyspace (``bench_stream``) is dropped at the end unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# The write tasks run Python workers: this interpreter's, not whatever `python3` is on PATH.
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

from feast_spark.config import CassandraOnlineStoreConfig
from feast_spark.definitions import Entity, Feature, FeatureTable, FileSource, KafkaSource
from feast_spark.online.base import OnlineTableSchema, online_store_mapping
from feast_spark.specs import JobSpec, StreamOptions


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    """Create ``topic`` (before the query subscribes to it)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result(30)


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
        self.written: list[int] = []  # rows written online (per key and batch) at each point
        self.lock = threading.Lock()
        self.alive: Callable[[], bool] = lambda: True
        self.batches: list[dict[str, float]] = []  # each batch's seconds (total, steps)

    def step(self, seconds: dict[str, float]) -> None:
        with self.lock:
            self.batches.append(dict(seconds))

    def mean_steps(self) -> dict[str, float]:
        """Mean seconds of each step over the batches after the first two (start-up)."""
        with self.lock:
            later = self.batches[2:] or self.batches
        names = sorted({name for batch in later for name in batch})
        return {n: round(sum(b.get(n, 0.0) for b in later) / max(1, len(later)), 3) for n in names}

    def check(self) -> None:
        """Raise when the query has ended (failed)."""
        if not self.alive():
            raise RuntimeError("the query ended (see its error above)")

    def add(self, done: int, written: int) -> None:
        with self.lock:
            self.points.append((time.monotonic(), done))
            self.written.append(written)

    def done(self) -> int:
        with self.lock:
            return self.points[-1][1] if self.points else 0

    def sustained(self) -> float:
        """Messages per second from the first point to the last."""
        return self._rate([done for _, done in self.points])

    def written_per_s(self) -> float:
        """Rows written online per second, over the same span as :meth:`sustained`."""
        return self._rate(self.written)

    def _rate(self, counts: list[int]) -> float:
        span = self.points[-1][0] - self.points[0][0]
        return (counts[-1] - counts[0]) / span if span > 0 else 0.0


def wait_for(timeline: Timeline, messages: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while timeline.done() < messages:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{timeline.done()} of {messages} messages after {timeout_s} s")
        timeline.check()
        time.sleep(0.2)


def run_ours(spark: Any, spec: JobSpec, until: Callable[[Timeline], None]) -> Timeline:
    """Run ``run_stream`` (in this session) until ``until(timeline)`` returns."""
    from feast_spark.spark import stream as stream_module
    from feast_spark.spark.stream_query import run_stream

    timeline = Timeline()
    original = stream_module.BatchWriter._process

    def timed(self: Any, records: Any, batch_id: int) -> None:
        began = time.monotonic()
        original(self, records, batch_id)
        timeline.step({"batch": time.monotonic() - began, **self.step_seconds})
        timeline.add(self.totals.messages, self.totals.rows_written)

    stream_module.BatchWriter._process = timed  # type: ignore[method-assign]
    thread = threading.Thread(target=run_stream, args=(spark, spec),
                              kwargs={"install_signals": False}, daemon=True)  # fmt: skip
    thread.start()
    timeline.alive = thread.is_alive
    try:
        until(timeline)
    finally:
        assert isinstance(spec.options, StreamOptions)
        Path(spec.options.stop_path).write_text("benchmark done")
        thread.join(120)
        stream_module.BatchWriter._process = original  # type: ignore[method-assign]
    return timeline


def run_floor(spark: Any, spec: JobSpec, until: Callable[[Timeline], None]) -> Timeline:
    """Run the bare foreachBatch writer until ``until(timeline)`` returns."""
    from pyspark.sql import functions as F  # noqa: N812

    from feast_spark.spark.materialize import write_online
    from feast_spark.spark.stream import kafka_reader

    table = spec.feature_tables[0]
    assert table.stream_source is not None and isinstance(spec.options, StreamOptions)
    schema = OnlineTableSchema.of(spec.project, table, spec.entities)
    store = online_store_mapping(spec.options.online_store)
    ddl = ", ".join(
        ["driver_id bigint", "ts string", *[f"{f.name} double" for f in table.features]]
    )
    timeline = Timeline()
    total, written = [0], [0]

    def write(batch: Any, _batch_id: int) -> None:
        from pyspark.sql import Observation

        began = time.monotonic()
        rows = batch.select(F.from_json(F.col("value").cast("string"), ddl).alias("m")).select(
            "m.driver_id", *[f"m.{f.name}" for f in table.features],
            F.to_timestamp("m.ts").alias("event_timestamp"),
        )  # fmt: skip
        # Messages done, counted as they pass (the store counts keys, not rows).
        counted = Observation()
        observed = rows.observe(counted, F.count(F.lit(1)).alias("rows"))
        written[0] += write_online(observed, schema, store).written
        total[0] += int(counted.get["rows"])
        timeline.step({"batch": time.monotonic() - began})
        timeline.add(total[0], written[0])

    query = (
        kafka_reader(spark, table.stream_source).writeStream.foreachBatch(write)
        .option("checkpointLocation", spec.options.checkpoint_path + "-floor")
        .queryName("bench_floor").start()
    )  # fmt: skip
    timeline.alive = lambda: bool(query.isActive)
    try:
        until(timeline)
    finally:
        query.stop()
    return timeline


def steady_producer(
    bootstrap: str,
    topic: str,
    rate: float,
    duration_s: float,
    keys: int,
    features: int,
    results: Any,
) -> None:
    """Process: send ``rate`` messages/s for ``duration_s``; ``f0`` is the production time."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    began = time.time()
    sent = 0
    while True:
        now = time.time()
        if now - began >= duration_s:
            break
        due = int((now - began) * rate)
        while sent < due:
            moment = time.time()
            stamp = datetime.fromtimestamp(moment, UTC).isoformat()
            value = {"driver_id": random.randrange(keys), "ts": stamp, "f0": moment}
            value.update({f"f{j}": random.random() for j in range(1, features)})
            try:
                producer.produce(topic, value=json.dumps(value).encode())
            except BufferError:
                producer.poll(0.05)
                continue
            sent += 1
        producer.poll(0)
        time.sleep(0.002)
    producer.flush(60)
    results.put({"sent": sent, "rate": sent / (time.time() - began), "began": began})


def freshness_reader(
    store: dict[str, Any], table: FeatureTable, keys: int, since: float, until: float, results: Any
) -> None:
    """Process: read ``f0`` of ``keys`` keys in a loop until ``until``; one sample per change.

    A sample is (production time, time the read returned - production time), for values
    produced at or after ``since``.
    """
    from feast_spark.online.base import ReadRequest
    from feast_spark.online.stores import open_online_store

    schema = OnlineTableSchema.of("bench", table, [Entity("driver_id", "INT64")])
    request = ReadRequest(schema, ("f0",), tuple((k,) for k in range(keys)))
    seen: dict[int, float] = {}
    samples: list[tuple[float, float]] = []
    reads: list[float] = []
    with open_online_store(store) as online:
        while time.time() < until:
            asked = time.time()
            (answer,) = online.read([request])
            returned = time.time()
            reads.append(returned - asked)
            for key, row in enumerate(answer.rows):
                if row is None or row.values[0] is None:
                    continue
                produced = float(row.values[0])
                if seen.get(key) != produced:
                    seen[key] = produced
                    if produced >= since:
                        samples.append((produced, returned - produced))
    results.put({"samples": samples, "reads": reads})


def query_durations(spark: Any) -> dict[str, float]:
    """Mean ``durationMs`` parts of the running query's recent progress (its last batches)."""
    sums: dict[str, float] = {}
    progress = [p for q in spark.streams.active for p in q.recentProgress if p.get("numInputRows")]
    for record in progress:
        for name, value in (record.get("durationMs") or {}).items():
            sums[name] = sums.get(name, 0.0) + float(value)
    return {name: round(total / len(progress)) for name, total in sorted(sums.items())}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def freshness_phase(
    args: argparse.Namespace,
    run: Callable[..., Timeline],
    spark: Any,
    spec: JobSpec,
    store: dict[str, Any],
) -> dict[str, Any]:
    """Start ``run``'s query, produce steadily, read; the figures of one writer."""
    import multiprocessing

    table = spec.feature_tables[0]
    context = multiprocessing.get_context("spawn")
    produced, read = context.Queue(), context.Queue()
    outcome: dict[str, Any] = {}

    def until(timeline: Timeline) -> None:
        deadline = time.monotonic() + 300
        while not timeline.points:  # the first (empty) batch: the query runs
            if time.monotonic() > deadline:
                raise TimeoutError("the query ran no batch in 300 s")
            timeline.check()
            time.sleep(0.2)
        began, steady_from = time.time(), time.monotonic() + args.warmup
        since, until_s = began + args.warmup, began + args.duration
        reader = context.Process(target=freshness_reader, args=(store, table, args.read_keys, since,
                                 until_s + 5, read))  # fmt: skip
        producer = context.Process(target=steady_producer, args=(args.bootstrap,
                                   table.stream_source.topic, args.rate, args.duration, args.keys,
                                   args.features, produced))  # fmt: skip
        reader.start()
        producer.start()
        outcome["producer"] = produced.get(timeout=args.duration + 120)
        outcome["reader"] = read.get(timeout=args.duration + 120)
        producer.join(30)
        reader.join(30)
        timeline.check()
        outcome["query_duration_ms"] = query_durations(spark)
        outcome["batches"] = len(timeline.points)
        outcome["messages_done"] = timeline.done()
        outcome["steps"] = timeline.mean_steps()
        with timeline.lock:
            outcome["steady_batches"] = sum(1 for t, _ in timeline.points if t >= steady_from)

    load = Path("/proc/loadavg").read_text().split()[:3]
    run(spark, spec, until)
    samples = [lag for produced_at, lag in outcome["reader"]["samples"]]
    reads = outcome["reader"]["reads"]
    steady_s = max(1.0, args.duration - args.warmup)
    return {
        "load_before": " ".join(load),
        "load_after": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "produced_rows_per_s": round(outcome["producer"]["rate"]),
        "messages_sent": outcome["producer"]["sent"],
        "messages_done": outcome["messages_done"],
        "batches": outcome["batches"],
        "batch_steps_s": outcome["steps"],
        "query_duration_ms": outcome["query_duration_ms"],
        "batches_per_s_after_warmup": round(outcome["steady_batches"] / steady_s, 2),
        "samples": len(samples),
        "freshness_p50_s": round(percentile(samples, 0.5), 3) if samples else None,
        "freshness_p99_s": round(percentile(samples, 0.99), 3) if samples else None,
        "freshness_max_s": round(max(samples), 3) if samples else None,
        "read_p50_s": round(percentile(reads, 0.5), 3) if reads else None,
        "reads": len(reads),
    }


def bench_spec(
    args: argparse.Namespace, topic: str, work: Path, store: Any, starting_offsets: str = "earliest"
) -> JobSpec:
    options = {} if args.max_per_batch <= 0 else {"maxOffsetsPerTrigger": str(args.max_per_batch)}
    source = KafkaSource(bootstrap_servers=args.bootstrap, topic=topic, event_timestamp_column="ts",
                         starting_offsets=starting_offsets, options=options)  # fmt: skip
    table = FeatureTable(
        "bench_stream", ["driver_id"], [Feature(f"f{j}", "DOUBLE") for j in range(args.features)],
        FileSource(path="/unused", event_timestamp_column="ts"), stream_source=source,
    )  # fmt: skip
    folder = work / topic
    return JobSpec(
        job_id="bench-stream", job_type="stream_ingestion", project="bench",
        entities=(Entity("driver_id", "INT64"),), feature_tables=(table,),
        offline_store_path=str(folder / "offline"),
        options=StreamOptions(store, checkpoint_path=str(folder / "checkpoint"),
                              stop_path=str(folder / "stop")),
    )  # fmt: skip


def run_each_in_its_own_process() -> dict[str, Any]:
    """Run this benchmark once per writer (``--only``), each in a new process, and merge.

    Both writers then start from a new JVM: in one process the second ran on code the first
    had warmed up (the JIT), which took a third of its batch time off.
    """
    result: dict[str, Any] = {}
    for name in ("stream", "floor"):
        command = [sys.executable, __file__, *sys.argv[1:], "--only", name]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        lines = out.splitlines()
        start = max(i for i, line in enumerate(lines) if line == "{")
        result.update(json.loads("\n".join(lines[start:])))
    if "rows_per_s" in result.get("stream", {}) and "rows_per_s" in result.get("floor", {}):
        result["stream_vs_floor"] = round(
            result["stream"]["rows_per_s"] / max(1, result["floor"]["rows_per_s"]), 2
        )
    return result


def run_cli(args: argparse.Namespace) -> dict[str, Any]:
    """The backlog drained by ``feast-spark stream start``, timed as the user's command.

    A project folder (Cassandra online, local launcher, ``local[2]``) whose table has the
    topic as its stream source (``maxOffsetsPerTrigger`` = --max-per-batch); the command runs as
    a user types it (spark-submit, a new JVM), and the query's checkpoint tells when each batch
    was committed (``commits/<id>``'s time) and how far it read (``offsets/<id>``). Figures:
    the whole process (command typed to last batch committed) and the sustained rate between the
    first and the last commit, as the in-session modes measure it.
    """
    import yaml

    from feast_spark.spark.stream import logged_offsets

    topic = f"bench_{uuid.uuid4().hex[:8]}"
    create_topic(args.bootstrap, topic, args.partitions)
    produced = produce(args.bootstrap, topic, args.messages, args.keys, args.features)
    folder = Path(tempfile.mkdtemp(prefix="bench-stream-cli-"))
    config = {
        "project": "bench",
        "registry": str(folder / "registry.json"),
        "offline_store": {"path": str(folder / "offline")},
        "online_store": {
            "type": "cassandra",
            "hosts": [args.cassandra],
            "keyspace": args.keyspace,
            "write_consistency": "ONE",
        },
        "spark": {"master": args.master, "conf": {"spark.ui.enabled": "false"}},
        "launcher": {
            "type": "local",
            "job_store": str(folder / "jobs"),
            "staging_location": str(folder / "staging"),
        },
    }
    (folder / "feature_store.yaml").write_text(yaml.safe_dump(config))
    features = ", ".join(f"{{name: f{j}, dtype: DOUBLE}}" for j in range(args.features))
    (folder / "definitions.yaml").write_text(
        "kind: Entity\nname: driver_id\nvalue_type: INT64\n---\n"
        "kind: FeatureTable\nname: bench_stream\nentities: [driver_id]\n"
        f"features: [{features}]\n"
        "batch_source: {type: file, path: unused.parquet, event_timestamp_column: ts}\n"
        f"stream_source: {{type: kafka, bootstrap_servers: '{args.bootstrap}', topic: {topic},"
        " event_timestamp_column: ts, starting_offsets: earliest,"
        f" options: {{maxOffsetsPerTrigger: '{args.max_per_batch}'}}}}\n"
    )
    cli = [str(Path(sys.executable).parent / "feast-spark")]
    config_arg = ["--config", str(folder)]
    subprocess.run([*cli, "apply", "-f", str(folder / "definitions.yaml"), *config_arg],
                   check=True, capture_output=True)  # fmt: skip
    checkpoint = folder / "staging" / "streams" / "bench" / "bench_stream" / "checkpoint"
    typed = time.time()
    subprocess.run([*cli, "stream", "start", "bench_stream", *config_arg], check=True,
                   capture_output=True)  # fmt: skip
    commits: dict[int, tuple[float, int]] = {}  # batch id -> (commit time, end offset)
    deadline = time.monotonic() + args.timeout
    try:
        while not commits or max(end for _, end in commits.values()) < args.messages:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the CLI stream did not drain {args.messages} messages")
            time.sleep(0.5)
            for commit in (checkpoint / "commits").glob("[0-9]*"):
                batch_id = int(commit.name)
                if batch_id not in commits:
                    offsets = logged_offsets((checkpoint / "offsets" / commit.name).read_text())
                    end = sum(o for parts in offsets.values() for o in parts.values())
                    commits[batch_id] = (commit.stat().st_mtime, end)
    finally:
        subprocess.run([*cli, "stream", "stop", "bench_stream", *config_arg],
                       capture_output=True)  # fmt: skip
    ordered = sorted(commits.values())
    working = [(t, end) for t, end in ordered if end > 0]  # from the first batch with messages
    (first_t, first_end), (last_t, last_end) = working[0], working[-1]
    return {
        "messages": args.messages,
        "producer_rows_per_s": round(produced),
        "whole_process_s": round(last_t - typed, 1),
        "rows_per_s": round((last_end - first_end) / (last_t - first_t)),
        "batches": len(working),
        "first_batch_done_after_s": round(first_t - typed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--keys", type=int, default=20_000)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument(
        "--max-per-batch", type=int, default=50_000, help="maxOffsetsPerTrigger (0: none)"
    )
    parser.add_argument("--partitions", type=int, default=1, help="partitions of the topic")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--cassandra", default="127.0.0.1")
    parser.add_argument("--keyspace", default="bench_stream")
    parser.add_argument("--timeout", type=float, default=1200)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--only", choices=("stream", "floor"), help="run one writer only")
    parser.add_argument("--freshness", action="store_true", help="steady producer, freshness")
    parser.add_argument("--rate", type=float, default=2000, help="--freshness: messages/s")
    parser.add_argument("--duration", type=float, default=60, help="--freshness: seconds")
    parser.add_argument("--warmup", type=float, default=30, help="--freshness: seconds left out")
    parser.add_argument("--read-keys", type=int, default=1000, help="--freshness: keys read")
    parser.add_argument(
        "--via-cli", action="store_true", help="backlog drained by `feast-spark stream start`"
    )
    args = parser.parse_args()
    if args.via_cli:
        print(json.dumps({"cli": run_cli(args)}, indent=1))
        return
    if args.only is None:
        print(json.dumps(run_each_in_its_own_process(), indent=1))
        return

    from feast_spark.online.stores import open_online_store
    from feast_spark.spark.session import build_spark_session

    store = CassandraOnlineStoreConfig(hosts=(args.cassandra,), keyspace=args.keyspace,
                                       write_consistency="ONE")  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    writers = [("stream", run_ours), ("floor", run_floor)]
    if args.only:
        writers = [(n, w) for n, w in writers if n == args.only]
    result: dict[str, Any] = {
        "keys": args.keys, "features": args.features, "master": args.master,
        "max_per_batch": args.max_per_batch, "partitions": args.partitions,
    }  # fmt: skip
    spark = None
    spec = bench_spec(args, "unused", work, store)
    try:
        if args.freshness:
            args.read_keys = min(args.read_keys, args.keys)
            result.update(rate=args.rate, duration_s=args.duration, warmup_s=args.warmup,
                          read_keys=args.read_keys)  # fmt: skip
            with open_online_store(online_store_mapping(store)) as opened:
                opened.ensure_table(OnlineTableSchema.of("bench", spec.feature_tables[0],
                                                         spec.entities))  # fmt: skip
            spark = build_spark_session("bench-stream", master=args.master,
                                        conf={"spark.ui.enabled": "false"})  # fmt: skip
            for name, writer in writers:
                topic = f"bench_{uuid.uuid4().hex[:8]}"
                create_topic(args.bootstrap, topic, args.partitions)
                spec = bench_spec(args, topic, work, store)
                result[name] = freshness_phase(args, writer, spark, spec,
                                               online_store_mapping(store))  # fmt: skip
        else:
            topic = f"bench_{uuid.uuid4().hex[:8]}"
            create_topic(args.bootstrap, topic, args.partitions)
            result["messages"] = args.messages
            result["producer_rows_per_s"] = round(
                produce(args.bootstrap, topic, args.messages, args.keys, args.features)
            )
            spec = bench_spec(args, topic, work, store)
            spark = build_spark_session("bench-stream", master=args.master,
                                        conf={"spark.ui.enabled": "false"})  # fmt: skip
            for name, writer in writers:
                load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
                timeline = writer(spark, spec,
                                  lambda t: wait_for(t, args.messages, args.timeout))  # fmt: skip
                result[name] = {"rows_per_s": round(timeline.sustained()),
                                "written_online_per_s": round(timeline.written_per_s()),
                                "batches": len(timeline.points), "load_before": load,
                                "batch_steps_s": timeline.mean_steps(),
                                "load_after": " ".join(
                                    Path("/proc/loadavg").read_text().split()[:3])}  # fmt: skip
            if "stream" in result and "floor" in result:
                result["stream_vs_floor"] = round(
                    result["stream"]["rows_per_s"] / max(1, result["floor"]["rows_per_s"]), 2
                )
    finally:
        if spark is not None:
            spark.stop()
        if not args.keep:
            with open_online_store(online_store_mapping(store)) as opened:
                opened.purge(OnlineTableSchema.of("bench", spec.feature_tables[0], spec.entities))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
