"""The warm driver's wire: one JSON object per line over a Unix socket, and where that socket is.

A warm driver (:mod:`feast_spark.spark.warm_driver`) is one long-lived local Spark driver that
runs a project's small local jobs in its own JVM: a job then skips the JVM start, the
SparkContext and Delta's first use. Which jobs the launcher sends there:
:mod:`feast_spark.launcher.warm`. Messages:

- ``{"op": "ping"}`` → ``{"ok": true, "pid": …, "started_at": …, "jobs_run": n, "running": […]}``
- ``{"op": "check", "session_conf": {…}, "env": {…}}`` → ``{"ok": true}``, or ``{"ok": false,
  "reason": …}`` when a setting cannot be set on a session (a static one) or one of the
  environment variables the job's spec names (``env``: name → value, None when unset) has
  another value in the driver;
- ``{"op": "run", "job_id", "job_type", "job_file", "args": […], "session_conf": {…},
  "env": {…}}`` → ``{"refused": reason}`` when the driver will not run it (then the client runs
  the job in its own spark-submit), else ``{"started": true, "ui_url": …}``, ``{"log": text}``
  lines, then ``{"exit": status}``. Meanwhile the client may send
  ``{"op": "cancel"}``; a connection closed before the exit line cancels the job too.

Pure Python (sockets and JSON): the launcher's side imports it without pyspark.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

# Batch jobs that read a spec and end; a stream runs for ever and keeps a driver of its own.
WARM_JOB_TYPES = frozenset(
    {"ingest", "historical_retrieval", "materialize", "audit", "maintenance", "push"}
)
# What the supervisor runs for a job of a warm driver (a job record's command names it).
CLIENT_MODULE = "feast_spark.launcher.warm_client"
# A ping or a check is answered at once by a driver that is up; a slower one is not used.
ASK_TIMEOUT_S = 3.0


def socket_path(driver_job_id: str) -> Path:
    """Where the warm driver of job ``driver_job_id`` listens.

    Short (a Unix socket path is at most 107 bytes), in a folder only this user can enter.
    """
    digest = hashlib.sha256(driver_job_id.encode("utf-8")).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"feast-spark-{os.getuid()}" / f"{digest}.sock"


def private_folder(path: Path) -> Path:
    """Create the socket folder ``path`` if needed and check that only this user can enter it.

    Raises:
        PermissionError: It is a link, or another user's, or others may enter it (another user
            could then answer in the driver's place): the message says which and what to do.
    """
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700, parents=True)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise PermissionError(
            f"warm driver folder {path}: not a folder of this user's that only it can enter "
            f"(owner uid {info.st_uid}, mode {stat.filemode(info.st_mode)}); remove it"
        )
    return path


def send(connection: socket.socket, message: dict[str, Any]) -> None:
    """Send one message (one line of JSON)."""
    connection.sendall(json.dumps(message, sort_keys=True).encode("utf-8") + b"\n")


def receive(stream: BinaryIO) -> Iterator[dict[str, Any]]:
    """The messages read from ``stream`` until it ends; a line that is not a JSON object ends it."""
    for line in stream:
        try:
            message = json.loads(line)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        yield message


def connect(path: str | Path, timeout_s: float = ASK_TIMEOUT_S) -> socket.socket:
    """A connection to the driver at ``path``.

    Raises:
        OSError: Nobody listens there (no file, a stale file, a driver that does not accept), or
            its folder is not private (:func:`private_folder`).
    """
    private_folder(Path(path).parent)
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.settimeout(timeout_s)
    try:
        connection.connect(str(path))
    except OSError:
        connection.close()
        raise
    return connection


def ask(
    path: str | Path, message: dict[str, Any], timeout_s: float = ASK_TIMEOUT_S
) -> dict[str, Any]:
    """Send one request and return its one answer.

    Raises:
        OSError: The driver cannot be reached, does not answer in time, or closed without an answer.
    """
    with connect(path, timeout_s) as connection:
        send(connection, message)
        with connection.makefile("rb") as stream:
            for answer in receive(stream):
                return answer
    raise ConnectionError(f"the warm driver at {path} closed the connection without an answer")
