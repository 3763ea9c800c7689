"""``feast-spark jobs ...``: list, describe, follow and cancel Spark jobs; ``--wait/--no-wait``.

Every command reads the job store of ``feature_store.yaml`` (``launcher.job_store``), so it works
from any process and any time after the job was launched:

    feast-spark jobs list [--state S] [--table T] [--type X] [--output json]
    feast-spark jobs describe ID [--output json]
    feast-spark jobs logs ID
    feast-spark jobs cancel ID
    feast-spark jobs wait ID [--timeout S]

Commands that launch a job (ingest, materialize, ...) take :func:`wait_options` and end with
:func:`run_or_print`: by default they wait, show progress on stderr and exit 1 unless the job
SUCCEEDED (what an Airflow task expects); ``--no-wait`` prints the job id and returns.

Importing this module adds the ``jobs`` group to :data:`feast_spark.cli.cli`. It imports the shared
options from :mod:`feast_spark.cli`, and ``cli.py`` imports this module at its end; either may be
imported first.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, TypeVar

import click

from feast_spark.cli import CliContext, cli, common_options, handle_errors, output_option
from feast_spark.cli_output import emit_json, emit_table
from feast_spark.errors import JobFailedError
from feast_spark.launcher import Job, JobRecord, JobState, Launcher, Progress

F = TypeVar("F", bound=Callable[..., Any])
STATES = [state.value for state in JobState]


def _context() -> CliContext:
    return click.get_current_context().ensure_object(CliContext)


def launcher() -> Launcher:
    """The launcher of the ``feature_store.yaml`` given by ``--config`` (or found as usual)."""
    from feast_spark.config import load_config

    context = _context()
    return Launcher.from_config(load_config(context.config_path).with_project(context.project))


# --- --wait/--no-wait ---------------------------------------------------------------------------


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


def run_or_print(job: Job, wait: bool, *, timeout: float | None = None) -> None:
    """Finish a command that launched ``job``: print its id, or follow it to its end.

    Waiting shows the state and Spark's progress on stderr and prints a summary on stdout. A
    SIGTERM or Ctrl-C while waiting (Airflow stopping the task) cancels the job first.

    Args:
        job: The launched job.
        wait: False prints the job id and returns at once.
        timeout: Seconds to wait at most (None: until the job ends).

    Raises:
        JobFailedError: The job FAILED or was CANCELLED (the message is the job's own error);
            the CLI turns it into one line on stderr and exit status 1.
        JobTimeoutError: ``timeout`` passed (exit status 1; the job keeps running).
        TrackingError: The job's state could not be learnt (exit status 1).
    """
    if not wait:
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
    if state is not JobState.SUCCEEDED:
        raise JobFailedError(job.id, state.value, record.error or "no error message recorded")
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
            click.echo(f"\r{text:<100}", nl=False, err=True)
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


def progress_line(record: JobRecord, progress: Progress | None, elapsed_s: float) -> str:
    """``<id>: RUNNING, stages 3/5, tasks 40/60 (2 running) [01:02]``."""
    minutes, seconds = divmod(int(elapsed_s), 60)
    parts = [f"{record.job_id}: {record.state.value}"]
    if progress is not None:
        parts.append(progress.describe())
    return ", ".join(parts) + f" [{minutes:02d}:{seconds:02d}]"


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
        for key in ("rows_read", "rows_written", "rows_rejected", "delta_version")
    }
    shown = ", ".join(f"{k}={v}" for k, v in counts.items() if v is not None)
    return f"{text}: {shown}" if shown else text


# --- the jobs group -------------------------------------------------------------------------------


@click.group("jobs")
@common_options
def jobs() -> None:
    """List, describe, follow and cancel Spark jobs."""


@jobs.command("list")
@click.option("--state", type=click.Choice(STATES, case_sensitive=False), help="Only this state.")
@click.option("--table", help="Only jobs that read or write this feature table.")
@click.option("--type", "job_type", help="Only this job type (ingest, materialize, ...).")
@common_options
@output_option
@handle_errors
def jobs_list(state: str | None, table: str | None, job_type: str | None, output: str) -> None:
    """List jobs, newest first (all projects unless --project is given)."""
    records = launcher().list(
        state=state.upper() if state else None,
        table=table,
        job_type=job_type,
        project=_context().project,
    )
    if output == "json":
        emit_json([r.to_dict() for r in records])
        return
    emit_table(
        ["id", "type", "state", "tables", "window", "submitted", "duration", "target"],
        [
            (
                r.job_id,
                r.job_type,
                r.state.value,
                ",".join(r.tables) or "-",
                _window(r),
                r.submitted_at.strftime("%Y-%m-%d %H:%M:%S"),
                f"{r.duration_s:.0f}s" if r.duration_s is not None else "-",
                f"{r.target}/{r.deploy_mode}",
            )
            for r in records
        ],
    )


@jobs.command("describe")
@click.argument("job_id")
@common_options
@output_option
@handle_errors
def jobs_describe(job_id: str, output: str) -> None:
    """Show one job: state, times, Spark ids and UI, command, result and error."""
    record = launcher().get(job_id).refresh()
    document = record.to_dict()
    if output == "json":
        emit_json(document)
        return
    import yaml

    click.echo(yaml.safe_dump(document, sort_keys=False, width=100).rstrip())


@jobs.command("logs")
@click.argument("job_id")
@click.option("--tail", "tail_lines", type=click.IntRange(min=1), help="Only the last N lines.")
@common_options
@handle_errors
def jobs_logs(job_id: str, tail_lines: int | None) -> None:
    """Print the driver's log."""
    text = launcher().get(job_id).logs()
    if tail_lines is not None:
        text = "\n".join(text.splitlines()[-tail_lines:])
    click.echo(text.rstrip("\n"))


@jobs.command("cancel")
@click.argument("job_id")
@common_options
@handle_errors
def jobs_cancel(job_id: str) -> None:
    """Stop a job and wait until its driver is gone."""
    job = launcher().get(job_id)
    before = job.record.state
    state = job.cancel()
    if before.is_final:
        click.echo(f"job {job_id} had already ended: {state.value}")
    else:
        click.echo(f"job {job_id} {state.value}")


@jobs.command("wait")
@click.argument("job_id")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    help="Give up waiting after this many seconds (the job keeps running).",
)
@common_options
@handle_errors
def jobs_wait(job_id: str, timeout: float | None) -> None:
    """Follow a job to its end; exit 1 unless it succeeds."""
    run_or_print(launcher().get(job_id), True, timeout=timeout)


def _window(record: JobRecord) -> str:
    start, end = record.window.start, record.window.end
    if start is None and end is None:
        return "-"
    return f"{start.isoformat() if start else '-inf'} .. {end.isoformat() if end else '+inf'}"


cli.add_command(jobs)

if __name__ == "__main__":
    sys.exit(cli.main(prog_name="feast-spark"))
