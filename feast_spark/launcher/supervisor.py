"""``python -m feast_spark.launcher.supervisor``: run one spark-submit and record how it ended.

Local and client-mode jobs run their driver in a spark-submit process on this machine. The
launcher does not run spark-submit directly: it starts this small supervisor in a session of its
own (so the job outlives the launching process, a closed terminal or a finished Airflow task
runner), and the supervisor

1. starts spark-submit in a new process group, its output appended to the job's log;
2. writes ``process.json`` (its own pid and start time, spark-submit's pid and start time, the
   host and its boot id) to the job store;
3. on SIGTERM/SIGINT (``Job.cancel`` on this machine), or when the job's record in the store
   carries a cancel request (``Job.cancel`` on another machine, which must not signal pids of
   its own), stops spark-submit's whole process group (the JVM and the Python driver): SIGTERM,
   then SIGKILL after a grace period;
4. writes ``exit.json`` (exit status, end time, whether it was cancelled), so any later process
   learns the outcome without having been spark-submit's parent; before that, keeps the
   class-data sharing archive the driver wrote at its exit if the job succeeded
   (:mod:`feast_spark.launcher.class_archive`).

The request (command, environment, paths) comes as one JSON document on stdin, so secrets in the
environment never appear in ``ps``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from feast_spark.launcher import processes
from feast_spark.launcher.class_archive import keep_written
from feast_spark.launcher.job_store import (
    EXIT_FILE,
    LOG_FILE,
    PROCESS_FILE,
    RECORD_FILE,
    JobStore,
)

POLL_S = 0.2
# How often the job's record is read for a cancel request made from another machine.
CANCEL_POLL_S = 1.0


class _Stop:
    """Set by the signal handler: when a stop was asked, and when to escalate to SIGKILL."""

    def __init__(self) -> None:
        self.requested_at: float | None = None


def run(request: dict[str, Any], stop: _Stop) -> int:
    """Run the request's command to its end; return its exit status (negative: a signal)."""
    store = JobStore(request["store"])
    job_id = request["job_id"]
    grace_s = float(request.get("grace_s", 20.0))
    log_path = request["log_path"]
    os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)

    with open(log_path, "ab", buffering=0) as log:
        try:
            exit_code, spawn_error = _run_child(request, stop, store, log, grace_s)
        finally:
            if request.get("remove_after"):  # the job's secrets file: spark-submit is done
                with contextlib.suppress(FileNotFoundError):
                    os.remove(request["remove_after"])
        if spawn_error:
            log.write(f"feast-spark supervisor: {spawn_error}\n".encode())
    archive = request.get("class_archive")
    if archive:  # the driver's class-data sharing archive, written at its exit
        succeeded = exit_code == 0 and stop.requested_at is None
        keep_written(archive["written"], archive["final"], succeeded=succeeded)

    store.write_json(
        job_id,
        EXIT_FILE,
        {
            "exit_code": exit_code,
            "ended_at": datetime.now(UTC).isoformat(),
            "cancelled": stop.requested_at is not None,
            "error": spawn_error,
        },
    )
    if request.get("upload_log"):
        with open(log_path, encoding="utf-8", errors="replace") as log_text:
            store.write_text(job_id, LOG_FILE, log_text.read())
    return exit_code


def _run_child(
    request: dict[str, Any], stop: _Stop, store: JobStore, log: Any, grace_s: float
) -> tuple[int, str | None]:
    job_id = request["job_id"]
    if stop.requested_at is not None:
        return -int(signal.SIGTERM), None
    try:
        child = subprocess.Popen(
            request["argv"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=request.get("env") or None,
            start_new_session=True,
        )
    except OSError as error:
        store.write_json(job_id, PROCESS_FILE, _process_document(None))
        return 127, f"cannot start {request['argv'][0]}: {error}"
    store.write_json(job_id, PROCESS_FILE, _process_document(child.pid))

    signalled = False
    killed = False
    next_look = time.monotonic() + CANCEL_POLL_S
    while child.poll() is None:
        if stop.requested_at is None and time.monotonic() >= next_look:
            next_look = time.monotonic() + CANCEL_POLL_S
            if _cancel_requested(store, job_id):
                stop.requested_at = time.monotonic()
        if stop.requested_at is not None:
            if not signalled:
                processes.signal_group(child.pid, processes.TERMINATE)
                signalled = True
            elif not killed and time.monotonic() - stop.requested_at > grace_s:
                processes.signal_group(child.pid, processes.KILL)
                killed = True
        # Returns the moment spark-submit exits: exit.json is written without a poll's delay.
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(POLL_S)
    # spark-submit is gone; leave no driver or Python worker of its group behind.
    _clear_group(child.pid, grace_s if stop.requested_at is not None else 2.0)
    return child.returncode, None


def _clear_group(pgid: int, grace_s: float) -> None:
    if not processes.group_members(pgid):
        return
    processes.signal_group(pgid, processes.TERMINATE)
    deadline = time.monotonic() + grace_s
    while processes.group_members(pgid) and time.monotonic() < deadline:
        time.sleep(POLL_S)
    processes.signal_group(pgid, processes.KILL)


def _cancel_requested(store: JobStore, job_id: str) -> bool:
    """Whether the job's record asks for a cancel (unreadable or missing: no)."""
    record = store.read_json(job_id, RECORD_FILE) or {}
    return bool(record.get("cancel_requested_at"))


def _process_document(child_pid: int | None) -> dict[str, Any]:
    pid = os.getpid()
    return {
        "pid": pid,
        "pid_start": processes.start_ticks(pid),
        "child_pid": child_pid,
        "child_start": processes.start_ticks(child_pid) if child_pid else None,
        "host": socket.gethostname(),
        "boot_id": processes.boot_id(),
        "started_at": datetime.now(UTC).isoformat(),
    }


def main() -> int:
    """Entry point: install the stop handlers first, then read the request and run it."""
    stop = _Stop()

    def on_stop(_signum: int, _frame: FrameType | None) -> None:
        if stop.requested_at is None:
            stop.requested_at = time.monotonic()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    request = json.loads(sys.stdin.read())
    return 0 if run(request, stop) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
