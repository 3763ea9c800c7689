"""Benchmark of online reads: get_online_features next to the raw driver, on the same data.

Setup: three tables (``t0``, ``t1``, ``t2``) of --features DOUBLE features keyed by one INT64
entity, --keys keys each, written through the online store. Then, for two request shapes:

* ``1x1``    1 entity x all features of ``t0`` (one partition read);
* ``100x3``  100 entities x all features of ``t0``, ``t1`` and ``t2`` (300 partition reads),

it times, interleaved in blocks (shared machines are noisy):

* ``ours``  an OnlineReadPlan built once (as a server would), then ``plan.read`` per request
            (key validation, prepared statements, statuses, response object) on an open
            CassandraOnlineStore;
* ``client``  ``Client.get_online_features`` per request, the public entry point: a client
            on a registry holding the three tables (it resolves the references once per
            ``registry.cache_ttl_seconds`` and then reads like ``ours``), with its own store;
* ``raw``   the raw driver on its own session: a prepared single-partition
            ``SELECT <features>, event_timestamp FROM t WHERE driver_id = ?`` with
            ``session.execute`` for 1x1, and ``execute_async`` for every partition then the
            results, for 100x3 (tuple rows, LOCAL_ONE, token-aware).

and reports p50/p99 latency and requests/s (one thread, one request at a time). Targets: p99 of
1x1 at most 2 ms; ours (and the client) at most 1.3x raw.

Example::

    python benchmarks/online_read.py --keys 10000 --requests 3000 --requests-100x3 300

``--store sqlite`` times the SQLite store instead (no raw comparison).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyarrow as pa

from feast_spark.client import Client
from feast_spark.config import (
    CassandraOnlineStoreConfig,
    OfflineStoreConfig,
    RepoConfig,
    SqliteOnlineStoreConfig,
)
from feast_spark.definitions import Entity, Feature, FeatureTable, FileSource
from feast_spark.online.base import OnlineStore, OnlineTableSchema
from feast_spark.online.service import OnlineReadPlan
from feast_spark.online.stores import open_online_store

DRIVER = Entity("driver_id", "INT64")
PROJECT = "bench"


def tables(features: int) -> list[FeatureTable]:
    source = FileSource(path="/unused", event_timestamp_column="ts")
    return [
        FeatureTable(
            f"t{t}", ["driver_id"], [Feature(f"f{i}", "DOUBLE") for i in range(features)], source,
            max_age=timedelta(days=30),
        )
        for t in range(3)
    ]  # fmt: skip


def load(store: OnlineStore, table: FeatureTable, keys: int) -> None:
    schema = OnlineTableSchema.of(PROJECT, table, [DRIVER])
    store.ensure_table(schema)
    now = datetime.now(UTC) - timedelta(minutes=1)
    rng = random.Random(table.name)
    for start in range(0, keys, 10_000):
        count = min(10_000, keys - start)
        columns: dict[str, Any] = {"driver_id": pa.array(range(start, start + count), pa.int64())}
        for feature in table.feature_names:
            columns[feature] = pa.array([rng.random() for _ in range(count)], pa.float64())
        columns["event_timestamp"] = pa.array([now] * count, pa.timestamp("us", tz="UTC"))
        store.write_batch(schema, pa.RecordBatch.from_pydict(columns))


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summarize(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(samples, 0.50) * 1000, 3),
        "p99_ms": round(percentile(samples, 0.99) * 1000, 3),
        "mean_ms": round(statistics.fmean(samples) * 1000, 3),
        "requests_per_s": round(len(samples) / sum(samples), 1),
    }


def timed(call: Callable[[], Any], count: int, samples: list[float]) -> None:
    clock = time.perf_counter
    for _ in range(count):
        started = clock()
        call()
        samples.append(clock() - started)


def raw_driver(config: CassandraOnlineStoreConfig, all_tables: list[FeatureTable]) -> Any:
    from cassandra import ConsistencyLevel
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
    from cassandra.query import tuple_factory

    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(config.local_dc or "")),
        consistency_level=ConsistencyLevel.LOCAL_ONE,
        row_factory=tuple_factory,
    )
    cluster = Cluster(
        list(config.hosts), port=config.port, execution_profiles={EXEC_PROFILE_DEFAULT: profile}
    )
    session = cluster.connect()
    statements = {}
    for table in all_tables:
        name = OnlineTableSchema.of(PROJECT, table, [DRIVER]).name
        columns = ", ".join([*table.feature_names, "event_timestamp"])
        statements[table.name] = session.prepare(
            f"SELECT {columns} FROM {config.keyspace}.{name} WHERE driver_id = ?"
        )
    return cluster, session, statements


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", choices=["cassandra", "sqlite"], default="cassandra")
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--requests", type=int, default=3000, help="1x1 requests per method")
    parser.add_argument("--requests-100x3", type=int, default=300, help="100x3 requests")
    parser.add_argument("--blocks", type=int, default=5, help="interleaved blocks per method")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9042)
    parser.add_argument("--local-dc", default="datacenter1")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark keyspace")
    args = parser.parse_args(argv)

    all_tables = tables(args.features)
    config: CassandraOnlineStoreConfig | SqliteOnlineStoreConfig
    if args.store == "cassandra":
        config = CassandraOnlineStoreConfig(
            hosts=(args.host,), port=args.port, keyspace="bench_online_read",
            local_dc=args.local_dc, read_consistency="LOCAL_ONE", write_consistency="LOCAL_ONE",
        )  # fmt: skip
    else:
        config = SqliteOnlineStoreConfig(path=str(Path(tempfile.mkdtemp()) / "online.db"))
    rng = random.Random(0)
    results: dict[str, Any] = {"store": args.store, "keys": args.keys, "features": args.features}

    store = open_online_store(config)
    raw = None
    client: Client | None = None
    try:
        started = time.perf_counter()
        for table in all_tables:
            load(store, table, args.keys)
        results["load_s"] = round(time.perf_counter() - started, 1)
        if isinstance(config, CassandraOnlineStoreConfig):
            raw = raw_driver(config, all_tables)

        refs_1 = [f"t0:{f}" for f in all_tables[0].feature_names]
        refs_3 = [f"{t.name}:{f}" for t in all_tables for f in t.feature_names]

        plan_1 = OnlineReadPlan.build(PROJECT, all_tables[:1], [DRIVER], refs_1)
        plan_3 = OnlineReadPlan.build(PROJECT, all_tables, [DRIVER], refs_3)

        def ours_1x1() -> None:
            response = plan_1.read(store, [{"driver_id": rng.randrange(args.keys)}])
            if response.statuses[0][0].value != "PRESENT":
                raise AssertionError(response.to_dict())

        workdir = Path(tempfile.mkdtemp(prefix="online-read-"))
        client = serving = Client(
            RepoConfig(
                PROJECT, str(workdir / "registry.json"),
                OfflineStoreConfig(str(workdir / "offline")), config,
            )
        )  # fmt: skip
        serving.apply(DRIVER, *all_tables)

        def client_1x1() -> None:
            response = serving.get_online_features(
                refs_1, [{"driver_id": rng.randrange(args.keys)}]
            )
            if response.statuses[0][0].value != "PRESENT":
                raise AssertionError(response.to_dict())

        def ours_100x3() -> None:
            plan_3.read(store, [{"driver_id": rng.randrange(args.keys)} for _ in range(100)])

        def client_100x3() -> None:
            serving.get_online_features(
                refs_3, [{"driver_id": rng.randrange(args.keys)} for _ in range(100)]
            )

        methods: dict[str, dict[str, Callable[[], None]]] = {
            "1x1": {"ours": ours_1x1, "client": client_1x1},
            "100x3": {"ours": ours_100x3, "client": client_100x3},
        }
        if raw is not None:
            _, session, statements = raw
            first = statements["t0"]

            def raw_1x1() -> None:
                row = session.execute(first, (rng.randrange(args.keys),)).one()
                if row is None:
                    raise AssertionError("missing row")

            def raw_100x3() -> None:
                futures = [
                    session.execute_async(statements[t.name], (rng.randrange(args.keys),))
                    for t in all_tables
                    for _ in range(100)
                ]
                for future in futures:
                    future.result().one()

            methods["1x1"]["raw"] = raw_1x1
            methods["100x3"]["raw"] = raw_100x3

        for shape, counts in (("1x1", args.requests), ("100x3", args.requests_100x3)):
            samples: dict[str, list[float]] = {name: [] for name in methods[shape]}
            for call in methods[shape].values():  # warm up: prepare, connections, caches
                timed(call, max(20, counts // 20), [])
            per_block = max(1, counts // args.blocks)
            gc.disable()
            try:
                for _ in range(args.blocks):
                    for name, call in methods[shape].items():
                        timed(call, per_block, samples[name])
            finally:
                gc.enable()
            results[shape] = {name: summarize(s) for name, s in samples.items()}
            if "raw" in samples:
                ours, base = results[shape]["ours"], results[shape]["raw"]
                results[shape]["ours_vs_raw_p50"] = round(ours["p50_ms"] / base["p50_ms"], 2)
                results[shape]["ours_vs_raw_p99"] = round(ours["p99_ms"] / base["p99_ms"], 2)
                via_client = results[shape]["client"]
                results[shape]["client_vs_raw_p50"] = round(
                    via_client["p50_ms"] / base["p50_ms"], 2
                )
                results[shape]["client_vs_raw_p99"] = round(
                    via_client["p99_ms"] / base["p99_ms"], 2
                )
    finally:
        if client is not None:
            client.close()
        if raw is not None:
            raw[0].shutdown()
        if isinstance(config, CassandraOnlineStoreConfig) and not args.keep:
            store.session.execute(f"DROP KEYSPACE IF EXISTS {config.keyspace}")  # type: ignore[attr-defined]
        store.close()
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
