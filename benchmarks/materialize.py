"""Benchmark of materialization into Cassandra, next to cassandra-stress on the same node.

It generates an offline Delta table of --keys keys x --features DOUBLE features (one row per key,
--rows-per-key for more), then times, on a local Spark (--master, default local[2]):

* ``materialize``  feast_spark.spark.materialize.materialize_table end to end: read the Delta
                   window, latest row per key, write from the executors (rows written / s);
* ``write``        the write phase alone: the latest rows are computed and cached first, then
                   write_online sends them (rows written / s);
* ``stress``       ``conf/cassandra/local-cassandra.sh stress write n=<--stress-n> -rate
                   threads=<--stress-threads>`` on the same node, in the same run: its op rate
                   (one op = one row of 5 blob columns, 34 bytes each).

Our rows are one key, 10 doubles and an event time (about 100 bytes), written with
``USING TIMESTAMP`` in replica-grouped unlogged batches of at most 10 rows. The target is a
write rate of at least 50% of cassandra-stress's op rate.

Example (reduced sizes for a shared 2-core machine)::

    python benchmarks/materialize.py --keys 200000 --stress-n 200000 --stress-threads 16

The benchmark keyspace (``bench_materialize``) is dropped at the end unless --keep; the stress
tool leaves its own ``keyspace1``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

from feast_spark.config import CassandraOnlineStoreConfig  # noqa: E402
from feast_spark.definitions import Entity, Feature, FeatureTable, FileSource  # noqa: E402
from feast_spark.online.base import OnlineTableSchema, online_store_mapping  # noqa: E402
from feast_spark.online.service import get_online_features  # noqa: E402
from feast_spark.online.stores import open_online_store  # noqa: E402
from feast_spark.specs import Window  # noqa: E402

BASE = datetime(2024, 1, 1, tzinfo=UTC)
STRESS = ROOT / "conf" / "cassandra" / "local-cassandra.sh"
_OP_RATE = re.compile(r"^Op rate\s*:\s*([\d,.]+) op/s", re.MULTILINE)


def feature_table(features: int) -> FeatureTable:
    return FeatureTable(
        "bench_stats",
        ["driver_id"],
        [Feature(f"f{i}", "DOUBLE") for i in range(features)],
        FileSource(path="/unused", event_timestamp_column="ts"),
    )


def write_offline(spark: Any, path: str, table: FeatureTable, keys: int, rows_per_key: int) -> None:
    from pyspark.sql import functions as sf

    from feast_spark.spark.offline_store import ensure_table
    from feast_spark.spark.offline_writes import write_window

    entity = Entity("driver_id", "INT64")
    ensure_table(spark, path, table, [entity])
    frame = spark.range(keys * rows_per_key).select(
        (sf.col("id") % keys).alias("driver_id"),
        sf.timestamp_seconds(sf.lit(int(BASE.timestamp())) + sf.col("id") % 86_400).alias(
            "event_timestamp"
        ),
        sf.timestamp_seconds(sf.lit(int(BASE.timestamp())) + sf.col("id") % 86_400).alias(
            "created_timestamp"
        ),
        *[(sf.rand(seed=i) * 100).alias(f.name) for i, f in enumerate(table.features)],
    )
    write_window(spark, frame, path, Window(BASE, BASE + timedelta(days=1)), "bench-ingest")


def run_stress(n: int, threads: int, host: str) -> dict[str, Any]:
    command = [
        str(STRESS), "stress", "write", f"n={n}", "-mode", "native", "cql3",
        "-rate", f"threads={threads}", "-node", host,
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=3600)
    seconds = time.perf_counter() - started
    match = _OP_RATE.search(done.stdout)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"cassandra-stress failed ({done.returncode}):\n{done.stdout[-3000:]}"
                           f"\n{done.stderr[-3000:]}")  # fmt: skip
    return {
        "command": " ".join(command),
        "op_rate": float(match.group(1).replace(",", "")),
        "wall_s": round(seconds, 1),
    }


def verify(config: CassandraOnlineStoreConfig, table: FeatureTable, spark: Any, path: str,
           keys: int) -> None:  # fmt: skip
    """Spot-check 200 keys against the offline table's latest rows."""
    from feast_spark.spark.latest import latest_rows

    sample = random.Random(1).sample(range(keys), min(200, keys))
    offline = (
        spark.read.format("delta").load(path).where(f"driver_id IN ({','.join(map(str, sample))})")
    )
    expected_rows = (
        latest_rows(offline, ["driver_id"]).select("driver_id", *table.feature_names).collect()
    )
    expected = {r["driver_id"]: [r[f] for f in table.feature_names] for r in expected_rows}
    with open_online_store(config) as store:
        got = get_online_features(
            store, "bench", [table], [Entity("driver_id", "INT64")],
            [f"bench_stats:{f}" for f in table.feature_names],
            [{"driver_id": k} for k in sample],
        ).to_dict()  # fmt: skip
    for i, key in enumerate(sample):
        values = [got[f"bench_stats:{f}"][i] for f in table.feature_names]
        if values != expected[key]:
            raise AssertionError(f"key {key}: online {values} != offline {expected[key]}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--rows-per-key", type=int, default=1)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--tasks", type=int, default=None, help="write tasks (default: cores)")
    parser.add_argument("--write-concurrency", type=int, default=64)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9042)
    parser.add_argument("--local-dc", default="datacenter1")
    parser.add_argument("--consistency", default="LOCAL_ONE")
    parser.add_argument("--stress-n", type=int, default=None, help="default: --keys")
    parser.add_argument("--stress-threads", type=int, default=16)
    parser.add_argument("--skip-stress", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark keyspace")
    parser.add_argument("--keyspace", default="bench_materialize")
    parser.add_argument("--tmp", default=None, help="directory for the Delta table")
    parser.add_argument("--repeat", type=int, default=1, help="runs per phase (best reported)")
    args = parser.parse_args(argv)

    from feast_spark.spark.materialize import materialize_table, online_rows, write_online
    from feast_spark.spark.session import build_spark_session

    table = feature_table(args.features)
    config = CassandraOnlineStoreConfig(
        hosts=(args.host,), port=args.port, keyspace=args.keyspace, local_dc=args.local_dc,
        write_consistency=args.consistency, write_concurrency=args.write_concurrency,
        request_timeout_s=30.0,
    )  # fmt: skip
    store = online_store_mapping(config)
    schema = OnlineTableSchema.of("bench", table, [Entity("driver_id", "INT64")])
    window = Window(BASE, BASE + timedelta(days=1))
    spark = build_spark_session(
        "bench-materialize", master=args.master,
        conf={"spark.sql.shuffle.partitions": "8", "spark.ui.enabled": "false",
              "spark.driver.memory": "4g"},
    )  # fmt: skip
    tmp = Path(args.tmp or tempfile.mkdtemp(prefix="bench-materialize-"))
    path = str(tmp / "bench_stats")
    results: dict[str, Any] = {
        "keys": args.keys, "features": args.features, "rows_per_key": args.rows_per_key,
        "master": args.master, "write_concurrency": args.write_concurrency,
        "consistency": args.consistency,
    }  # fmt: skip
    try:
        started = time.perf_counter()
        write_offline(spark, path, table, args.keys, args.rows_per_key)
        results["offline_setup_s"] = round(time.perf_counter() - started, 1)
        best: dict[str, float] = {}
        for _ in range(args.repeat):
            # end to end (the online table is dropped first: a fresh table each time)
            with open_online_store(config) as online:
                online.session.execute(f"DROP TABLE IF EXISTS {args.keyspace}.{schema.name}")
            started = time.perf_counter()
            offline = spark.read.format("delta").load(path)
            outcome = materialize_table(offline, schema, table, window, store, tasks=args.tasks)
            best["materialize"] = min(best.get("materialize", 1e9), time.perf_counter() - started)
            written = outcome.rows_written

            # the Spark part alone: Delta read + latest row per key, cached
            started = time.perf_counter()
            latest = online_rows(spark.read.format("delta").load(path), table, window).cache()
            latest.count()
            best["latest"] = min(best.get("latest", 1e9), time.perf_counter() - started)

            # the write phase alone, from the cache: the same rows again with the same
            # timestamps (the same work for Cassandra; values unchanged)
            started = time.perf_counter()
            counts = write_online(latest, schema, store, tasks=args.tasks)
            best["write"] = min(best.get("write", 1e9), time.perf_counter() - started)
            latest.unpersist()
        verify(config, table, spark, path, args.keys)
        for phase in ("materialize", "write"):
            results[phase] = {
                "rows_written": written if phase == "materialize" else counts.written,
                "seconds": round(best[phase], 2),
                "rows_per_s": round(written / best[phase]),
            }
        results["latest_rows_s"] = round(best["latest"], 2)
    finally:
        spark.stop()
        if args.tmp is None:
            shutil.rmtree(tmp, ignore_errors=True)

    if not args.skip_stress:
        results["stress"] = run_stress(args.stress_n or args.keys, args.stress_threads, args.host)
        rate = results["stress"]["op_rate"]
        results["materialize_vs_stress"] = round(results["materialize"]["rows_per_s"] / rate, 2)
        results["write_vs_stress"] = round(results["write"]["rows_per_s"] / rate, 2)
    if not args.keep:
        with open_online_store(config) as online:
            online.session.execute(f"DROP KEYSPACE IF EXISTS {args.keyspace}")

    print(json.dumps(results, indent=1))
    if "stress" in results:
        print(
            f"\nmaterialize {results['materialize']['rows_per_s']:,} rows/s, write phase "
            f"{results['write']['rows_per_s']:,} rows/s, cassandra-stress "
            f"{results['stress']['op_rate']:,.0f} op/s -> {results['materialize_vs_stress']:.0%}"
            f" / {results['write_vs_stress']:.0%} of stress"
        )


if __name__ == "__main__":
    main()
