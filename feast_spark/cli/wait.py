"""``--wait/--no-wait`` for commands that launch a job, and following a job on the terminal.

    @click.command()
    @wait_options
    @handle_errors
    def materialize(..., wait: bool, timeout: float | None) -> None:
        run_or_print(client.materialize(...), wait, timeout=timeout)

By default such a command waits, shows progress on stderr and exits 1 unless the job SUCCEEDED
(what an Airflow task expects); ``--no-wait`` prints the job id and returns.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, TypeVar

import click

from feast_spark.cli.output import emit_json
from feast_spark.errors import JobFailedError
from feast_spark.launcher import Job, JobRecord, JobState, Progress

F = TypeVar("F", bound=Callable[..., Any])


def wait_options(command: F) -> F:
    """Add ``--wait/--no-wait`` (default: wait) and ``--timeout SECONDS`` to a command."""
    command = click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=None,
        help="With --wait: give up waiting after this many seconds (the job keeps running).",
    )(command)
    return click.option(
        "--wait/--no-wait",
        default=True,
        show_default=True,
        help="Wait for the job, showing progress, and fail unless it succeeds; "
        "--no-wait prints the job id and returns.",
    )(command)


def run_or_print(
    job: Job, wait: bool, *, timeout: float | None = None, output: str = "table"
) -> None:
    """Finish a command that launched ``job``: print its id, or follow it to its end.

    Waiting shows the state and Spark's progress on stderr and prints a summary on stdout. A
    SIGTERM or Ctrl-C while waiting (Airflow stopping the task) cancels the job first. With
    ``output="json"`` stdout gets the job's record instead (what ``jobs describe -o json``
    prints): as submitted with ``--no-wait``, as ended otherwise, a failed job's included.

    Args:
        job: The launched job.
        wait: False prints the job id (or record) and returns at once.
        timeout: Seconds to wait at most (None: until the job ends).
        output: ``table`` (the id, or a summary line) or ``json`` (the job's record).

    Raises:
        JobFailedError: The job FAILED or was CANCELLED (the message is the job's own error);
            the CLI turns it into one line on stderr and exit status 1.
        JobTimeoutError: ``timeout`` passed (exit status 1; the job keeps running).
        TrackingError: The job's state could not be learnt (exit status 1).
    """
    if not wait:
        if output == "json":
            emit_json(job.record.to_dict())
        else:
            click.echo(job.id)
        return
    click.echo(f"job {job.id} submitted; following it (Ctrl-C cancels it)", err=True)
    printer = ProgressPrinter(job.id)
    try:
        with _interrupts_raise():
            state = job.wait(timeout, on_progress=printer)
    except KeyboardInterrupt:
        printer.close()
        click.echo(f"interrupted: cancelling job {job.id}", err=True)
        state = job.cancel()
        raise JobFailedError(
            job.id, state.value, "interrupted while waiting; the job was cancelled"
        ) from None
    printer.close()
    record = job.record
    if output == "json":
        emit_json(record.to_dict())
    if state is not JobState.SUCCEEDED:
        raise JobFailedError(job.id, state.value, record.error or "no error message recorded")
    if output != "json":
        click.echo(_summary(record))


class ProgressPrinter:
    """Shows a job's state and Spark progress on stderr.

    On a terminal one line is rewritten in place. Elsewhere (CI, Airflow logs) a line is printed
    when the state or the counts change, at most every ``min_interval_s`` seconds, and at least
    every ``heartbeat_s`` seconds.
    """

    def __init__(
        self, job_id: str, *, min_interval_s: float = 5.0, heartbeat_s: float = 60.0
    ) -> None:
        self.job_id = job_id
        self.started = time.monotonic()
        self.tty = sys.stderr.isatty()
        self.min_interval_s = min_interval_s
        self.heartbeat_s = heartbeat_s
        self._last_key: str | None = None
        self._last_time = 0.0
        self._shown = False

    def __call__(self, record: JobRecord, progress: Progress | None) -> None:
        """Show one look at the job."""
        now = time.monotonic()
        text = progress_line(record, progress, now - self.started)
        if self.tty:
            # One column short of the terminal: writing the last column wraps on some terminals.
            width = max(terminal_width() - 1, 20)
            text = progress_line(record, progress, now - self.started, width=width)
            click.echo(f"\r{text:<{width}}", nl=False, err=True)
            self._shown = True
            return
        key = text.rsplit(" [", 1)[0]  # without the elapsed time
        since = now - self._last_time
        if (
            record.state.is_final
            or (key != self._last_key and since >= self.min_interval_s)
            or since >= self.heartbeat_s
        ):
            click.echo(text, err=True)
            self._last_key = key
            self._last_time = now

    def close(self) -> None:
        """End the rewritten line."""
        if self.tty and self._shown:
            click.echo("", err=True)
            self._shown = False


def progress_line(
    record: JobRecord, progress: Progress | None, elapsed_s: float, *, width: int | None = None
) -> str:
    """``<id>: RUNNING, stages 3/5, tasks 40/60 (2 running) [01:02]``, at most ``width`` long.

    A line too long for ``width`` shortens the job id first (its head stays, with ``…``; the
    state, counts and time matter more while waiting), then is cut at the end.
    """
    minutes, seconds = divmod(int(elapsed_s), 60)
    parts = [f": {record.state.value}"]
    if progress is not None:
        parts.append(progress.describe())
    rest = ", ".join(parts) + f" [{minutes:02d}:{seconds:02d}]"
    job_id = record.job_id
    if width is None or len(job_id) + len(rest) <= width:
        return job_id + rest
    room = width - len(rest)
    if room >= 8:
        return job_id[: room - 1] + "…" + rest
    return (job_id + rest)[: width - 1] + "…"


def terminal_width() -> int:
    """Columns of the terminal stderr is on ($COLUMNS first; 80 when unknown).

    Asks stderr, where the progress goes: stdout may be a pipe (``-o json | jq``).
    """
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns or 80
    except (OSError, ValueError, AttributeError):
        return 80


@contextmanager
def _interrupts_raise() -> Iterator[None]:
    """Make SIGTERM raise KeyboardInterrupt, like Ctrl-C, while waiting (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _summary(record: JobRecord) -> str:
    text = f"job {record.job_id} {record.state.value} in {record.duration_s or 0:.1f}s"
    counts = {
        key: (record.result or {}).get(key)
        for key in ("rows_read", "rows_written", "rows_rejected", "rows_deleted", "delta_version")
    }
    shown = ", ".join(f"{k}={v}" for k, v in counts.items() if v is not None)
    return f"{text}: {shown}" if shown else text
