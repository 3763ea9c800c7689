"""Processes on this machine: is a pid still the process we started, and stopping a group.

A pid alone can be reused by an unrelated process after ours ended, and a child that ended but was
not reaped (a zombie) still answers ``kill(pid, 0)``. On Linux, ``/proc/<pid>/stat`` gives the
process state and its start time (clock ticks since boot): a pid is our process only if the start
time matches the one recorded, and a zombie counts as ended. Elsewhere ``kill(pid, 0)`` is used.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

_PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name, or None when there is no process."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return None
    # "pid (comm) state ppid pgrp ..."; comm may contain spaces and parentheses.
    return text[text.rindex(")") + 2 :].split()


def start_ticks(pid: int) -> str | None:
    """When the process started (``/proc`` clock ticks), or None without ``/proc``/process."""
    fields = _stat_fields(pid)
    return fields[19] if fields is not None and len(fields) > 19 else None


def is_alive(pid: int, started: str | None = None) -> bool:
    """Whether ``pid`` is a live process (not a zombie).

    With ``started`` (from :func:`start_ticks`), also whether it is the process that started then
    and not a later one that got the same pid.
    """
    if _PROC.is_dir():
        fields = _stat_fields(pid)
        if fields is None or fields[0] in ("Z", "X", "x"):
            return False
        return started is None or (len(fields) > 19 and fields[19] == started)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid`` (Linux; else the group leader)."""
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
        ):
            members.append(int(entry.name))
    return sorted(members)


def signal_group(pgid: int, signum: int) -> bool:
    """Send ``signum`` to process group ``pgid``; False when the group is gone."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    return True


def signal_process(pid: int, signum: int) -> bool:
    """Send ``signum`` to ``pid``; False when it is gone."""
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        return False
    return True


TERMINATE = signal.SIGTERM
KILL = signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM
