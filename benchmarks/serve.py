"""Benchmark of ``feast-spark serve`` beside Feast's feature server and the raw driver.

Same keys and values everywhere: three tables ``t0``..``t2`` of ten DOUBLE features (``a0``..,
``b0``.., ``c0``..) keyed by ``driver_id`` (``--keys`` keys), written into:

* ours on Cassandra (the local node) and ours on SQLite, served by ``feast-spark serve``;
* Feast's own Python feature server (``feast serve``, the ``feast`` package in a separate venv,
  ``--feast-venv``) on its SQLite online store (``serve_feast_peer.py`` writes it);
* the raw cassandra-driver floor: no server, prepared asynchronous selects on one session.

Two shapes: ``1x10`` (1 entity x 10 features of t0) and ``100x3`` (100 entities x 30 features of
t0, t1, t2). Per server and shape:

* maximum throughput: ``wrk`` (Debian's), closed loop, ``--connections`` connections, one thread;
* latency at a fixed rate (``--rate-1x10``, ``--rate-100x3``): ``serve_load.py``, open loop,
  measured from each request's due time (no coordinated omission).

Everything runs on this machine over loopback; runs are bounded by ``--duration``. Compare
ratios within one run: the machine is shared. Example::

    python benchmarks/serve.py --keys 10000 --duration 10 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pyarrow as pa  # noqa: E402
import yaml  # noqa: E402

from feast_spark.client import Client  # noqa: E402
from feast_spark.definitions import Entity, Feature, FeatureTable, FileSource  # noqa: E402
from feast_spark.online.base import OnlineTableSchema  # noqa: E402
from feast_spark.online.naming import online_table_name  # noqa: E402
from feast_spark.online.stores import open_online_store  # noqa: E402

HERE = Path(__file__).resolve().parent
PROJECT = "bench"
PREFIXES = "abc"
FEATURES = 10
DRIVER = Entity("driver_id", "INT64")
KEYSPACE = "bench_serve"


def value(table: int, feature: int, key: int) -> float:
    """Same as serve_feast_peer.value."""
    return key / 1000 + table + feature / 10


def tables() -> list[FeatureTable]:
    source = FileSource(path="/unused.parquet", event_timestamp_column="event_timestamp")
    return [
        FeatureTable(
            f"t{t}",
            ["driver_id"],
            [Feature(f"{p}{i}", "DOUBLE") for i in range(FEATURES)],
            source,
            max_age=timedelta(days=30),
        )
        for t, p in enumerate(PREFIXES)
    ]


def make_project(folder: Path, store: str, keys: int, stamp: datetime) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    online: dict[str, Any] = (
        {"type": "sqlite", "path": "online.db"}
        if store == "sqlite"
        else {"type": "cassandra", "keyspace": KEYSPACE, "local_dc": "datacenter1"}
    )
    config = folder / "feature_store.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "project": PROJECT,
                "registry": "registry.json",
                "offline_store": {"path": "offline"},
                "online_store": online,
            }
        )
    )
    client = Client(str(config))
    client.apply(DRIVER, *tables())
    with open_online_store(client.config.online_store) as online_store:
        for t, table in enumerate(tables()):
            schema = OnlineTableSchema.of(PROJECT, table, [DRIVER])
            online_store.ensure_table(schema)
            for start in range(0, keys, 5000):
                ids = list(range(start, min(keys, start + 5000)))
                columns: dict[str, Any] = {"driver_id": pa.array(ids, pa.int64())}
                for i, feature in enumerate(table.features):
                    columns[feature.name] = [value(t, i, k) for k in ids]
                columns["event_timestamp"] = pa.array([stamp] * len(ids), pa.timestamp("us", "UTC"))
                online_store.write_batch(schema, pa.RecordBatch.from_pydict(columns))
    client.close()
    return config


def bodies(shape: str, keys: int, count: int) -> list[dict[str, Any]]:
    rng = random.Random(7)
    if shape == "1x10":
        features = [f"t0:a{i}" for i in range(FEATURES)]
        return [
            {"features": features, "entities": {"driver_id": [rng.randrange(keys)]}}
            for _ in range(count)
        ]
    features = [f"t{t}:{p}{i}" for t, p in enumerate(PREFIXES) for i in range(FEATURES)]
    return [
        {"features": features, "entities": {"driver_id": rng.sample(range(keys), 100)}}
        for _ in range(count)
    ]


def wrk_script(path: Path, payloads: list[dict[str, Any]]) -> Path:
    quoted = ",\n".join("[==[" + json.dumps(p) + "]==]" for p in payloads)
    path.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"local bodies = {{\n{quoted}\n}}\nlocal n = 0\n"
        "request = function()\n  n = n % #bodies + 1\n"
        "  return wrk.format(nil, nil, nil, bodies[n])\nend\n"
    )
    return path


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def run_wrk(url: str, script: Path, connections: int, duration: float) -> dict[str, Any]:
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{int(duration)}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60).stdout
    result: dict[str, Any] = {}
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    result["requests_per_s"] = float(rate.group(1)) if rate else 0.0
    for q in ("50", "99"):
        found = re.search(rf"^\s+{q}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if found:
            result[f"p{q}_ms"] = round(float(found.group(1)) * _UNITS[found.group(2)], 3)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    result["non_2xx"] = int(bad.group(1)) if bad else 0
    if errors:
        result["socket_errors"] = errors.group(1)
    return result


def run_load(args: list[str], mode: list[str], duration: float) -> dict[str, Any]:
    """Run ``serve_load.py`` once (``mode``: ``--rate R`` open loop or ``--closed N``); its JSON."""
    command = [sys.executable, str(HERE / "serve_load.py"), *args, *mode]
    command += ["--duration", str(duration)]
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=duration + 120)
    except subprocess.TimeoutExpired:
        return {"error": "no result within the run's time limit"}
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1:]}
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def run_open_loop(args: list[str], rate: float, duration: float) -> dict[str, Any]:
    """Requests at a fixed rate, latency measured from each one's due time."""
    return run_load(args, ["--rate", str(rate)], duration)


def run_closed_raw(args: list[str], concurrency: int, duration: float) -> dict[str, Any]:
    """``concurrency`` requests always in flight: the peak rate."""
    return run_load(args, ["--closed", str(concurrency)], duration)


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the processes of process group ``pgid``.

    The machine is shared: CPU time per request is the figure that load hardly changes.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after the name: state ppid pgrp ... utime stime
            total += int(fields[11]) + int(fields[12])
    return total / ticks


class Server:
    def __init__(self, name: str, command: list[str], cwd: Path, port: int, env: dict[str, str]):
        self.name = name
        self.port = port
        self.log = (cwd / f"{name}.log").open("wb")
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"{name} did not start; see {self.log.name}")

    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/get-online-features",
            json.dumps(body).encode(),
            {"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            result: dict[str, Any] = json.loads(response.read())
            return result

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # our own session: the server and workers
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


def values_of(body: dict[str, Any]) -> dict[str, Any]:
    # By name: Feast's server may order the features of a table differently.
    names = body["metadata"]["feature_names"]
    return {name: r["values"] for name, r in zip(names, body["results"], strict=True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rate-1x10", type=float, default=500)
    parser.add_argument("--rate-100x3", type=float, default=50)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/feast-spark-serve-bench"))
    parser.add_argument("--feast-venv", type=Path, default=Path("/work/feast-peer-venv"))
    parser.add_argument("--only", help="Comma-separated subset: cassandra,sqlite,feast,raw")
    parser.add_argument("--port", type=int, default=18600)
    parser.add_argument("--reuse", action="store_true", help="Keep the data of an earlier run")
    args = parser.parse_args()
    only = set((args.only or "cassandra,sqlite,feast,raw").split(","))
    work = args.dir
    work.mkdir(parents=True, exist_ok=True)
    stamp = (datetime.now(UTC) - timedelta(minutes=1)).replace(microsecond=0)
    load_before = os.getloadavg()

    print(f"setting up {args.keys} keys x 3 tables x {FEATURES} features ...", flush=True)
    configs: dict[str, Path] = {}
    if args.reuse:
        configs = {s: work / s / "feature_store.yaml" for s in ("cassandra", "sqlite")}
    if only & {"cassandra", "raw"} and not args.reuse:
        configs["cassandra"] = make_project(work / "cassandra", "cassandra", args.keys, stamp)
    if "sqlite" in only and not args.reuse:
        configs["sqlite"] = make_project(work / "sqlite", "sqlite", args.keys, stamp)
    feast_python = args.feast_venv / "bin" / "python"
    if "feast" in only and not args.reuse:
        subprocess.run(
            [
                str(feast_python),
                str(HERE / "serve_feast_peer.py"),
                str(work / "feast-repo"),
                str(args.keys),
                str(stamp.timestamp()),
            ],
            check=True,
            capture_output=True,
        )

    shapes = {"1x10": args.rate_1x10, "100x3": args.rate_100x3}
    files: dict[str, tuple[Path, Path]] = {}
    for shape in shapes:
        payloads = bodies(shape, args.keys, 500 if shape == "1x10" else 100)
        body_file = work / f"bodies-{shape}.json"
        body_file.write_text(json.dumps(payloads))
        files[shape] = (body_file, wrk_script(work / f"wrk-{shape}.lua", payloads))

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    servers: dict[str, tuple[list[str], Path]] = {}
    cli = [
        sys.executable,
        "-c",
        "from feast_spark.cli import main; main()",
        "serve",
        "--workers",
        str(args.workers),
        "--log-level",
        "warning",
    ]
    for store in ("cassandra", "sqlite"):
        if store in only:
            servers[f"ours-{store}"] = (
                [*cli, "--config", str(configs[store]), "--port", str(args.port)],
                work / store,
            )
    if "feast" in only:
        feast = str(args.feast_venv / "bin" / "feast")
        servers["feast"] = (
            [
                feast,
                "serve",
                "-p",
                str(args.port),
                "-w",
                str(args.workers),
                "--no-access-log",
                "--max-requests",
                "10000000",
            ],
            work / "feast-repo",
        )

    results: dict[str, dict[str, Any]] = {}
    reference: dict[str, Any] | None = None
    check = {
        "features": [f"t{t}:{p}{i}" for t, p in enumerate(PREFIXES) for i in (0, 9)],
        "entities": {"driver_id": [0, 1, args.keys - 1, args.keys + 5]},
    }
    for name, (command, cwd) in servers.items():
        print(f"--- {name}", flush=True)
        server = Server(name, command, cwd, args.port, env)
        try:
            got = values_of(server.post(check))
            reference = reference or got
            results.setdefault(name, {})["same_values"] = got == reference
            for shape, rate in shapes.items():
                body_file, script = files[shape]
                url = f"http://127.0.0.1:{args.port}/get-online-features"
                run_wrk(url, script, args.connections, 2)  # warm up
                cpu = group_cpu_seconds(server.process.pid)
                peak = run_wrk(url, script, args.connections, args.duration)
                cpu = group_cpu_seconds(server.process.pid) - cpu
                served = peak["requests_per_s"] * args.duration
                peak["server_cpu_ms_per_request"] = (
                    round(1000 * cpu / served, 3) if served else None
                )
                fixed = run_open_loop(
                    ["http", "--url", url, "--bodies", str(body_file)], rate, args.duration
                )
                results[name][shape] = {"max": peak, "fixed_rate": fixed}
                print(f"    {shape}: max {peak}\n    {shape}: at {rate}/s {fixed}", flush=True)
        finally:
            server.stop()

    if "raw" in only:
        print("--- raw driver", flush=True)
        raw_args = ["raw", "--raw-keyspace", KEYSPACE, "--raw-key-space", str(args.keys)]
        for shape, rate in shapes.items():
            count = 1 if shape == "1x10" else 3
            names = [online_table_name(PROJECT, f"t{t}") for t in range(count)]
            features = ["+".join(f"{p}{i}" for i in range(FEATURES)) for p in PREFIXES[:count]]
            shape_args = [
                *raw_args,
                "--raw-tables",
                ",".join(names),
                "--raw-features",
                ",".join(features),
                "--raw-keys",
                "1" if shape == "1x10" else "100",
            ]
            peak = run_closed_raw(shape_args, args.connections, args.duration)
            fixed = run_open_loop(shape_args, rate, args.duration)
            results.setdefault("raw-driver", {})[shape] = {"max": peak, "fixed_rate": fixed}
            print(f"    {shape}: max {peak}\n    {shape}: at {rate}/s {fixed}", flush=True)

    results["machine"] = {
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "cpus": os.cpu_count(),
        "keys": args.keys,
        "workers": args.workers,
        "connections": args.connections,
        "duration_s": args.duration,
    }
    print(json.dumps(results, indent=1))
    summary(results, shapes)


def summary(results: dict[str, Any], shapes: dict[str, float]) -> None:
    print(
        "\n| shape | server | max req/s (wrk) | server CPU ms / request | p50 / p99 ms at max | "
        "fixed rate | p50 / p99 / p99.9 ms at that rate | errors |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for shape, rate in shapes.items():
        for name in ("ours-cassandra", "ours-sqlite", "feast", "raw-driver"):
            entry = results.get(name, {}).get(shape)
            if not entry:
                continue
            peak, fixed = entry["max"], entry["fixed_rate"]
            cpu = peak.get("server_cpu_ms_per_request", peak.get("cpu_ms_per_request", "-"))
            print(
                f"| {shape} | {name} | {peak.get('requests_per_s')} | "
                f"{cpu} | {peak.get('p50_ms')} / "
                f"{peak.get('p99_ms')} | {rate}/s | {fixed.get('p50_ms')} / "
                f"{fixed.get('p99_ms')} / {fixed.get('p999_ms')} | "
                f"{peak.get('non_2xx', peak.get('errors'))} + {fixed.get('errors')} |"
            )
        feast = results.get("feast", {}).get(shape, {}).get("max", {}).get("requests_per_s")
        feast_cpu = (
            results.get("feast", {}).get(shape, {}).get("max", {}).get("server_cpu_ms_per_request")
        )
        for name in ("ours-cassandra", "ours-sqlite"):
            peak = results.get(name, {}).get(shape, {}).get("max", {})
            ours, cpu = peak.get("requests_per_s"), peak.get("server_cpu_ms_per_request")
            if feast and ours:
                print(f"{shape}: {name} max throughput / Feast's = {ours / feast:.2f}")
            if feast_cpu and cpu:
                print(f"{shape}: Feast's server CPU per request / {name}'s = {feast_cpu / cpu:.2f}")


if __name__ == "__main__":
    main()
