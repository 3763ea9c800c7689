"""``feast-spark jobs ...``: list, describe, follow and cancel Spark jobs; ``--wait/--no-wait``.

Every command reads the job store of ``feature_store.yaml`` (``launcher.job_store``), so it works
from any process and any time after the job was launched:

    feast-spark jobs list [--state S] [--table T] [--type X] [--output json]
    feast-spark jobs describe ID [--output json]
    feast-spark jobs logs ID
    feast-spark jobs cancel ID
    feast-spark jobs abandon ID --reason TEXT
    feast-spark jobs wait ID [--timeout S]
    feast-spark jobs prune --older-than 30d [--dry-run] [--output json]

Commands that launch a job (ingest, materialize, ...) take ``wait_options`` and end with
``run_or_print`` (:mod:`feast_spark.cli.wait`).
"""

from __future__ import annotations

from datetime import timedelta

import click

from feast_spark.cli.context import CliContext, common_options, handle_errors, output_option
from feast_spark.cli.output import emit_json, emit_table
from feast_spark.cli.types import DURATION
from feast_spark.cli.wait import run_or_print
from feast_spark.launcher import JobRecord, JobState, Launcher

STATES = [state.value for state in JobState]


def launcher() -> Launcher:
    """The launcher of the ``feature_store.yaml`` given by ``--config`` (or found as usual)."""
    return CliContext.current().launcher()


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
    for problem in launcher().store.unreadable():  # damaged records are reported, not hidden
        click.echo(f"warning: {problem}", err=True)
    records = launcher().list(
        state=state.upper() if state else None,
        table=table,
        job_type=job_type,
        project=CliContext.current().project,
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
                _state(r),
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


@jobs.command("abandon")
@click.argument("job_id")
@click.option("--reason", required=True, help="Why (kept in the job's record).")
@common_options
@handle_errors
def jobs_abandon(job_id: str, reason: str) -> None:
    """Mark a job lost (ABANDONED) when the machine that ran its driver is gone."""
    record = launcher().abandon(job_id, reason=reason)
    click.echo(f"job {job_id} {record.state.value}: {record.error}")


@jobs.command("wait")
@click.argument("job_id")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    help="Give up waiting after this many seconds (the job keeps running).",
)
@common_options
@output_option
@handle_errors
def jobs_wait(job_id: str, timeout: float | None, output: str) -> None:
    """Follow a job to its end; exit 1 unless it succeeds."""
    run_or_print(launcher().get(job_id), True, timeout=timeout, output=output)


@jobs.command("prune")
@click.option(
    "--older-than",
    required=True,
    type=DURATION,
    help="Delete jobs that ended longer ago than this: 30d, 12h, 45m, 3600s (0: every ended job).",
)
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
@common_options
@output_option
@handle_errors
def jobs_prune(older_than: timedelta, dry_run: bool, output: str) -> None:
    """Delete ended jobs: records, logs, staged inputs (running jobs are kept)."""
    pruned = CliContext.current().client().prune_jobs(older_than, dry_run=dry_run)
    if output == "json":  # the job records `jobs list` prints, with what was removed
        emit_json([{**p.record.to_dict(), "removed": list(p.removed)} for p in pruned])
        return
    emit_table(
        ["id", "type", "state", "ended", "removed"],
        [
            (
                p.record.job_id,
                p.record.job_type,
                p.record.state.value,
                _ended(p.record),
                ", ".join(p.removed),
            )
            for p in pruned
        ],
    )
    verb = "would delete" if dry_run else "deleted"
    click.echo(f"{verb} {len(pruned)} job{'' if len(pruned) == 1 else 's'}", err=True)


def _state(record: JobRecord) -> str:
    """The state; a running stream's also with its last rates and lag (``stream status``)."""
    if record.job_type != "stream_ingestion" or record.state.is_final:
        return record.state.value
    from feast_spark.streams import describe_progress, stream_progress

    progress = stream_progress(launcher().store, record.job_id)
    text = describe_progress(progress) if progress else ""
    return f"{record.state.value} ({text})" if text else record.state.value


def _ended(record: JobRecord) -> str:
    return record.ended_at.strftime("%Y-%m-%d %H:%M:%S") if record.ended_at else "-"


def _window(record: JobRecord) -> str:
    start, end = record.window.start, record.window.end
    if start is None and end is None:
        return "-"
    return f"{start.isoformat() if start else '-inf'} .. {end.isoformat() if end else '+inf'}"
