"""Open-loop load at a fixed rate, with latencies free of coordinated omission.

Run by ``benchmarks/serve.py`` in its own process (uvloop). Request ``i`` is due at
``start + i / rate`` and its latency is measured from that instant, not from when it could be
sent: a server that stalls is charged for every request it held up (wrk2's correction). Each
request takes an idle keep-alive connection or opens a new one (at most ``--max-connections``).

Two targets, printing one JSON line (``p50_ms``, ``p99_ms``, ``p999_ms``, ``max_ms``, ``sent``,
``errors``, ``rate``):

* ``http``: POST bodies from ``--bodies`` (a JSON list, used round-robin) to ``--url``;
* ``raw``: the cassandra-driver floor, with no server: per request, prepared single-partition
  selects (``--raw-tables`` tables x ``--raw-keys`` keys, all sent asynchronously, then awaited),
  on one session (token-aware, LOCAL_ONE, tuple rows, as the online store reads).
  ``--closed N`` instead keeps N requests in flight for the duration: the maximum throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

#: A request without an answer after this long counts as an error (bounds every run).
TIMEOUT_S = 5.0


def percentiles(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    if not ordered:
        return {}

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)

    return {
        "p50_ms": at(0.5),
        "p99_ms": at(0.99),
        "p999_ms": at(0.999),
        "max_ms": round(ordered[-1] * 1000, 3),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
    }


class HttpTarget:
    def __init__(self, url: str, bodies: list[bytes], max_connections: int) -> None:
        parsed = urlparse(url)
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 80
        self.requests = [
            (
                f"POST {parsed.path} HTTP/1.1\r\nHost: {self.host}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
            for body in bodies
        ]
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.open = 0
        self.max_connections = max_connections
        self.slots = asyncio.Semaphore(max_connections)

    async def call(self, i: int) -> bool:
        async with self.slots:
            reused = bool(self.idle)
            if reused:
                reader, writer = self.idle.pop()
            else:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            request = self.requests[i % len(self.requests)]
            writer.write(request)
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                if not reused:
                    raise
                # the server closed this idle keep-alive connection: retry on a new one
                writer.close()
                reader, writer = await asyncio.open_connection(self.host, self.port)
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            self.idle.append((reader, writer))
            return head[9:12] == b"200"


class RawTarget:
    def __init__(
        self,
        hosts: str,
        port: int,
        keyspace: str,
        tables: list[str],
        features: list[list[str]],
        keys_per_request: int,
        key_space: int,
    ) -> None:
        from cassandra import ConsistencyLevel
        from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
        from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
        from cassandra.query import tuple_factory

        profile = ExecutionProfile(
            load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()),
            consistency_level=ConsistencyLevel.LOCAL_ONE,
            row_factory=tuple_factory,
            request_timeout=10,
        )
        self.cluster = Cluster(
            hosts.split(","), port=port, execution_profiles={EXEC_PROFILE_DEFAULT: profile}
        )
        self.session = self.cluster.connect()
        self.statements = [
            self.session.prepare(
                f'SELECT {", ".join(names)}, event_timestamp FROM "{keyspace}"."{table}" '
                "WHERE driver_id = ?"
            )
            for table, names in zip(tables, features, strict=True)
        ]
        self.keys_per_request = keys_per_request
        self.key_space = key_space
        self.loop = asyncio.get_running_loop()

    async def call(self, _i: int) -> bool:
        loop = self.loop
        done = loop.create_future()
        keys = [random.randrange(self.key_space) for _ in range(self.keys_per_request)]
        jobs = [(s, k) for s in self.statements for k in keys]
        state = {"left": len(jobs), "ok": True}

        def answered(_rows: Any) -> None:
            state["left"] -= 1  # one driver thread calls back: no lock needed
            if state["left"] == 0:
                loop.call_soon_threadsafe(_set, done, state["ok"])

        def failed(_error: BaseException) -> None:
            state["ok"] = False
            answered(None)

        for statement, key in jobs:
            self.session.execute_async(statement, (key,)).add_callbacks(answered, failed)
        ok: bool = await done
        return ok


def _set(future: asyncio.Future[bool], value: bool) -> None:
    if not future.done():
        future.set_result(value)


async def open_loop(
    call: Callable[[int], Awaitable[bool]], rate: float, duration: float, warmup: float
) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    tasks: set[asyncio.Task[None]] = set()

    async def one(i: int, due: float, measured: bool) -> None:
        nonlocal errors
        try:
            ok = await asyncio.wait_for(call(i), TIMEOUT_S)
        except Exception:  # a timeout or a failed connection: an error, charged its wait
            ok = False
        if measured:
            latencies.append(time.perf_counter() - due)
            errors += not ok

    total = int((warmup + duration) * rate)
    start = time.perf_counter() + 0.05
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(i, due, i / rate >= warmup))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    return {"rate": rate, "sent": len(latencies), "errors": errors, **percentiles(latencies)}


async def closed_loop(
    call: Callable[[int], Awaitable[bool]], concurrency: int, duration: float
) -> dict[str, Any]:
    done = 0
    errors = 0
    latencies: list[float] = []
    end = time.perf_counter() + duration

    async def worker(w: int) -> None:
        nonlocal done, errors
        i = w
        while time.perf_counter() < end:
            began = time.perf_counter()
            try:
                ok = await asyncio.wait_for(call(i), TIMEOUT_S)
            except Exception:
                ok = False
            latencies.append(time.perf_counter() - began)
            done += 1
            errors += not ok
            i += concurrency

    began = time.perf_counter()
    cpu = time.process_time()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    elapsed = time.perf_counter() - began
    cpu = time.process_time() - cpu
    return {
        "concurrency": concurrency,
        "requests_per_s": round(done / elapsed, 1),
        "cpu_ms_per_request": round(1000 * cpu / done, 3) if done else None,
        "sent": done,
        "errors": errors,
        **percentiles(latencies),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    target: Any
    if args.target == "http":
        bodies = [json.dumps(b).encode() for b in json.loads(Path(args.bodies).read_text())]
        target = HttpTarget(args.url, bodies, args.max_connections)
    else:
        tables = args.raw_tables.split(",")
        features = [f.split("+") for f in args.raw_features.split(",")]
        target = RawTarget(
            args.raw_hosts,
            args.raw_port,
            args.raw_keyspace,
            tables,
            features,
            args.raw_keys,
            args.raw_key_space,
        )
    # A full collection over the imports would pause every request in flight; measured here
    # it would be charged to the server.
    gc.collect()
    gc.freeze()
    if args.closed:
        return await closed_loop(target.call, args.closed, args.duration)
    return await open_loop(target.call, args.rate, args.duration, args.warmup)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", choices=["http", "raw"])
    parser.add_argument("--url")
    parser.add_argument("--bodies")
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=1)
    parser.add_argument("--closed", type=int, default=0)
    parser.add_argument("--max-connections", type=int, default=256)
    parser.add_argument("--raw-hosts", default="127.0.0.1")
    parser.add_argument("--raw-port", type=int, default=9042)
    parser.add_argument("--raw-keyspace")
    parser.add_argument("--raw-tables")
    parser.add_argument("--raw-features")
    parser.add_argument("--raw-keys", type=int, default=1)
    parser.add_argument("--raw-key-space", type=int, default=1000)
    arguments = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(main(arguments))), flush=True)
    # Requests the driver still holds after their timeouts must not keep the process alive.
    os._exit(0)
