"""A warm driver: one long-lived local Spark driver that runs a project's small jobs.

Started by ``feast-spark driver start`` as the job ``jobs/warm_driver.py``, it builds its
session, pays Delta's first use once (a one-row table written and read in a temporary folder),
then serves the requests of :mod:`feast_spark.warm_protocol` on a Unix socket, one thread per
connection. A job runs as in its own spark-submit (:func:`feast_spark.spark.job_entry.run_job`,
the job file's ``run``), with three differences:

- its session is ``SparkSession.newSession()`` with the job's session settings: SQL settings,
  temporary views and functions are its own; the SparkContext, its executors, Python workers and
  cached tables are shared;
- its Spark work runs in a job group named after the job, so a cancel (or the client's
  connection closing) cancels it: again every half second until the job returns, since a
  cancel stops the Spark jobs that run, not the Python between them;
- what it prints or logs from its own thread goes to the client (the job's log); Spark's own
  log and the output of threads the job starts go to the driver's log.

SIGTERM (``feast-spark driver stop``, ``jobs cancel``) stops the driver: running jobs are
cancelled and fail, the socket is removed, the session stopped.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType, ModuleType
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

from feast_spark import warm_protocol
from feast_spark.spark.job_entry import run_job

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

CANCEL_REPEAT_S = 0.5

log = logging.getLogger(__name__)


class ThreadOutput(io.TextIOBase):
    """``sys.stdout``/``sys.stderr`` of the driver, routed per thread.

    A thread with a sink writes to it (a job's output goes to its client); others write to the
    stream this one replaced.
    """

    def __init__(self, fallback: TextIO) -> None:
        self.fallback = fallback
        self._local = threading.local()

    def route(self, sink: Any) -> None:
        """Send this thread's writes to ``sink(text)`` (None: back to the fallback)."""
        self._local.sink = sink

    def write(self, text: str) -> int:
        """Write to this thread's sink, else to the fallback."""
        sink = getattr(self._local, "sink", None)
        if sink is None:
            return self.fallback.write(text)
        sink(text)
        return len(text)

    def flush(self) -> None:
        """Flush the fallback (a sink sends each write at once)."""
        self.fallback.flush()


class WarmDriver:
    """Serve jobs on ``socket_path`` with ``spark`` until stopped.

    Args:
        spark: The driver's session (its SparkContext runs every job).
        socket_path: The Unix socket to listen on.
        outputs: The routed ``sys.stdout`` and ``sys.stderr``.
        idle_timeout_s: Stop after this many seconds without a job (None: never).
    """

    def __init__(
        self,
        spark: SparkSession,
        socket_path: Path,
        outputs: tuple[ThreadOutput, ...],
        *,
        idle_timeout_s: float | None = None,
    ) -> None:
        self.spark = spark
        self.idle_timeout_s = idle_timeout_s
        self._last_active = time.monotonic()
        self.socket_path = socket_path
        self.outputs = outputs
        self.started_at = datetime.now(UTC)
        self.jobs_run = 0
        self.running: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def serve(self) -> None:
        """Accept connections until :meth:`stop`; each is served by a thread of its own."""
        from pyspark import InheritableThread

        warm_protocol.private_folder(self.socket_path.parent)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()  # a stale file of a driver that was killed
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(self.socket_path))
        os.chmod(self.socket_path, 0o600)
        server.listen(16)
        server.settimeout(0.5)  # wake up to see a stop
        print(f"feast-spark: warm driver ready on {self.socket_path}", flush=True)
        try:
            while not self._stopping.is_set():
                try:
                    connection, _ = server.accept()
                except TimeoutError:
                    if self._idle_for_too_long():
                        print(f"feast-spark: no job for {self.idle_timeout_s:g} s: the warm "
                              "driver stops", flush=True)  # fmt: skip
                        break
                    continue
                connection.settimeout(None)
                InheritableThread(target=self._handle, args=(connection,), daemon=True).start()
        finally:
            server.close()
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()

    def _idle_for_too_long(self) -> bool:
        with self._lock:
            busy = bool(self.running)
            if busy:
                self._last_active = time.monotonic()
        idle = time.monotonic() - self._last_active
        return not busy and self.idle_timeout_s is not None and idle > self.idle_timeout_s

    def stop(self) -> None:
        """Stop accepting and cancel every running job."""
        self._stopping.set()
        with self._lock:
            running = list(self.running)
        for job_id in running:
            self.spark.sparkContext.cancelJobGroup(job_id)

    def _handle(self, connection: socket.socket) -> None:
        with connection, connection.makefile("rb") as stream:
            request = next(warm_protocol.receive(stream), None)
            if request is None:
                return
            op = request.get("op")
            try:
                if op == "ping":
                    warm_protocol.send(connection, self._status())
                elif op == "check":
                    warm_protocol.send(connection, self._check(request))
                elif op == "run":
                    self._run(connection, stream, request)
                else:
                    warm_protocol.send(connection, {"ok": False, "reason": f"unknown op {op!r}"})
            except OSError:
                pass  # the client went away; a job it ran was cancelled by its watcher
            except Exception as error:  # e.g. the JVM is gone: say so rather than hang up
                log.error("warm driver request %s failed: %s", op, error)
                with contextlib.suppress(OSError):
                    warm_protocol.send(connection, {"ok": False, "reason": str(error)[:500]})

    def _status(self) -> dict[str, Any]:
        with self._lock:
            running = sorted(self.running)
        return {
            "ok": True,
            "pid": os.getpid(),
            "started_at": self.started_at.isoformat(),
            "jobs_run": self.jobs_run,
            "running": running,
            "spark_version": self.spark.version,
        }

    def _check(self, request: dict[str, Any]) -> dict[str, Any]:
        """Whether a job with the request's session settings and environment can run here."""
        if self._stopping.is_set():
            return {"ok": False, "reason": "the driver is stopping"}
        session_conf, env = request.get("session_conf") or {}, request.get("env") or {}
        if not isinstance(session_conf, dict) or not isinstance(env, dict):
            return {"ok": False, "reason": "session_conf and env must be objects"}
        static = [str(k) for k in session_conf if not self.spark.conf.isModifiable(str(k))]
        if static:
            return {"ok": False, "reason": f"static settings {', '.join(sorted(static))}"}
        # Variables the job's spec names (credentials): its Python workers see the driver's.
        changed = sorted(str(k) for k, v in env.items() if os.environ.get(str(k)) != v)
        if changed:
            return {"ok": False, "reason": f"environment {', '.join(changed)} differs"}
        return {"ok": True}

    def _run(self, connection: socket.socket, stream: BinaryIO, request: dict[str, Any]) -> None:
        job_id = str(request.get("job_id"))
        job_type = str(request.get("job_type"))
        session_conf = request.get("session_conf") or {}
        refusal = self._check(request).get("reason")
        if job_type not in warm_protocol.WARM_JOB_TYPES:
            refusal = f"job type {job_type!r} is not run by a warm driver"
        if refusal:  # the job has not started: the client runs it in its own spark-submit
            warm_protocol.send(connection, {"refused": refusal})
            return
        ui_url = self.spark.sparkContext.uiWebUrl
        warm_protocol.send(connection, {"started": True, "ui_url": ui_url})
        done = threading.Event()
        with self._lock:
            self.running[job_id] = done
        watcher = threading.Thread(
            target=self._watch_cancel, args=(stream, job_id, done), daemon=True
        )
        watcher.start()
        status = 1
        try:
            for output in self.outputs:
                output.route(lambda text: self._send_log(connection, text))
            status = self._run_job(job_id, job_type, request, session_conf)
        finally:
            for output in self.outputs:
                output.route(None)
            done.set()
            with self._lock:
                del self.running[job_id]
                self.jobs_run += 1
                self._last_active = time.monotonic()
        warm_protocol.send(connection, {"exit": status})

    def _run_job(
        self, job_id: str, job_type: str, request: dict[str, Any], session_conf: dict[str, Any]
    ) -> int:
        context = self.spark.sparkContext
        # No description of its own: Spark's (the call site, Delta's "MERGE operation") stays.
        context.setJobGroup(job_id, "", interruptOnCancel=True)
        try:
            module = _load_job_module(str(request.get("job_file")), job_type)
            session = self.spark.newSession()
            for key, value in session_conf.items():
                session.conf.set(str(key), str(value))
            args = [str(arg) for arg in request.get("args") or []]
            return run_job(job_type, module.run, args, spark=session)
        except Exception as error:  # the job file cannot be loaded: as a spark-submit would
            print(f"feast-spark: cannot run {request.get('job_file')}: {error}", flush=True)
            return 1
        finally:
            context.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]

    def _watch_cancel(self, stream: BinaryIO, job_id: str, done: threading.Event) -> None:
        """Cancel the job when the client asks, or when its connection closes first."""
        with contextlib.suppress(OSError, ValueError):
            for message in warm_protocol.receive(stream):
                if message.get("op") == "cancel":
                    break
        while not done.is_set():
            self.spark.sparkContext.cancelJobGroup(job_id)
            done.wait(CANCEL_REPEAT_S)

    @staticmethod
    def _send_log(connection: socket.socket, text: str) -> None:
        with contextlib.suppress(OSError):  # the client is gone: the job still ends properly
            warm_protocol.send(connection, {"log": text})


def warm_up(spark: SparkSession) -> float:
    """Pay Delta's first use (classes, the first log replay and commit) before the first job."""
    from delta.tables import DeltaTable

    began = time.monotonic()
    folder = tempfile.mkdtemp(prefix="feast-spark-warm-up-")
    try:
        path = f"{folder}/table"
        spark.range(4).selectExpr("id", "current_timestamp() AS ts").write.format("delta").save(
            path
        )
        spark.range(4).selectExpr("id", "current_timestamp() AS ts").createOrReplaceTempView("s")
        DeltaTable.forPath(spark, path).alias("t").merge(
            spark.table("s").alias("s"), "t.id = s.id"
        ).whenNotMatchedInsertAll().execute()
        DeltaTable.forPath(spark, path).history(1).collect()
        spark.read.format("delta").load(path).groupBy("id").count().collect()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return time.monotonic() - began


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``jobs/warm_driver.py --socket PATH``."""
    import argparse

    from feast_spark.spark.session import build_spark_session, stop_session

    parser = argparse.ArgumentParser(prog="warm_driver")
    parser.add_argument("--socket", required=True, type=Path)
    parser.add_argument("--idle-timeout", type=float, default=None, help="seconds; none: never")
    args = parser.parse_args(argv)
    outputs = (ThreadOutput(sys.stdout), ThreadOutput(sys.stderr))
    sys.stdout, sys.stderr = outputs
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    spark = build_spark_session("feast-spark-warm-driver")
    print(f"feast-spark: Delta warmed up in {warm_up(spark):.1f} s", flush=True)
    # Spark's INFO lines of every job would fill this long-lived driver's one log (a job's own
    # output goes to the job's log); warnings and errors stay.
    spark.sparkContext.setLogLevel("WARN")
    logging.getLogger("py4j").setLevel(logging.WARNING)  # a line per job thread's connection
    driver = WarmDriver(spark, args.socket, outputs, idle_timeout_s=args.idle_timeout)

    def on_stop(_signum: int, _frame: FrameType | None) -> None:
        with contextlib.suppress(Exception):  # the JVM got the same signal and may be gone
            driver.stop()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    try:
        driver.serve()
    finally:
        with contextlib.suppress(Exception):
            stop_session(spark)
    return 0


def _load_job_module(job_file: str, job_type: str) -> ModuleType:
    """The job file as a fresh module (its ``run`` is the job's body)."""
    spec = importlib.util.spec_from_file_location(f"feast_spark_warm_job_{job_type}", job_file)
    if spec is None or spec.loader is None:
        raise ImportError(f"not a Python file: {job_file}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "run", None)):
        raise ImportError(f"{job_file} has no run(spark, spec, started_at, progress)")
    return module
