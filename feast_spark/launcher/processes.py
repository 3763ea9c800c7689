"""Processes on this machine: is a pid still the process we started, and stopping a group.

A pid alone can be reused by an unrelated process after ours ended, and a child that ended but was
not reaped (a zombie) still answers ``kill(pid, 0)``. So a process is taken for a job's only when
everything that can be checked agrees:

- its start time is the one recorded: on Linux the ``starttime`` field of ``/proc/<pid>/stat``
  (clock ticks since boot) together with the boot id (``/proc/sys/kernel/random/boot_id``: ticks
  restart at each boot); elsewhere ``ps -o lstart=``, the start time to the second;
- it carries the job's id in its environment (``FEAST_SPARK_JOB_ID``, set by the launcher for the
  supervisor and inherited by spark-submit, the JVM and the Python workers), where
  ``/proc/<pid>/environ`` can be read (same user, Linux);
- it is not a zombie.

Process ids mean something only on the machine that started them: callers compare the recorded
host first (:mod:`feast_spark.launcher.local`).
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

JOB_ID_ENV = "FEAST_SPARK_JOB_ID"
_PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name, or None when there is no process."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid pgrp ..."; comm may contain spaces and parentheses.
    return text[text.rindex(")") + 2 :].split()


def boot_id() -> str | None:
    """This boot of this machine (Linux), or None where it is not known."""
    try:
        return (_PROC / "sys" / "kernel" / "random" / "boot_id").read_text().strip() or None
    except OSError:
        return None


def start_ticks(pid: int) -> str | None:
    """When the process started, as an opaque token to compare, or None without a process.

    Linux: ``/proc`` clock ticks since boot. Elsewhere: ``ps -o lstart=`` (to the second).
    """
    if _PROC.is_dir():
        fields = _stat_fields(pid)
        return fields[19] if fields is not None and len(fields) > 19 else None
    try:
        done = subprocess.run(
            ["ps", "-o", "lstart=", "-p", str(pid)],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


def _carries_job(pid: int, job_id: str | None) -> bool:
    """False only when the process's environment is readable and names another job (or none)."""
    if job_id is None:
        return True
    try:
        environ = (_PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return True  # not readable (another user, no /proc): the start time decides
    return f"{JOB_ID_ENV}={job_id}".encode() in environ.split(b"\0")


def is_alive(pid: int, started: str | None = None, job_id: str | None = None) -> bool:
    """Whether ``pid`` is a live process (not a zombie) and, as far as can be told, ours.

    Args:
        pid: The process id.
        started: Its start token (:func:`start_ticks`) when it was recorded; a process with the
            same pid that started at another time is not it.
        job_id: The job it runs for; a process whose readable environment names no such job is
            not it.
    """
    if _PROC.is_dir():
        fields = _stat_fields(pid)
        if fields is None or fields[0] in ("Z", "X", "x"):
            return False
        if started is not None and (len(fields) <= 19 or fields[19] != started):
            return False
        return _carries_job(pid, job_id)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return started is None or start_ticks(pid) == started


def group_members(pgid: int, job_id: str | None = None) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid`` (Linux; else the group leader).

    With ``job_id``, only those whose readable environment carries it: a group id reused by an
    unrelated session is not the job's.
    """
    if not _PROC.is_dir():
        return [pgid] if is_alive(pgid) else []
    members = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if (
            fields is not None
            and len(fields) > 2
            and fields[2] == str(pgid)
            and fields[0] not in "ZXx"
            and _carries_job(int(entry.name), job_id)
        ):
            members.append(int(entry.name))
    return sorted(members)


def signal_group(pgid: int, signum: int) -> bool:
    """Send ``signum`` to process group ``pgid``; False when it is gone (or not ours to signal)."""
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def signal_process(pid: int, signum: int) -> bool:
    """Send ``signum`` to ``pid``; False when it is gone (or not ours to signal)."""
    try:
        os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True


TERMINATE = signal.SIGTERM
KILL = signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM
