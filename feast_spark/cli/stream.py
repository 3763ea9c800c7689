"""``feast-spark stream ...``: start and stop a feature table's Kafka stream ingestion job.

    feast-spark stream start TABLE [--to online|both] [--trigger-interval S]
    feast-spark stream stop TABLE [--timeout S]
    feast-spark stream status TABLE

A stream runs until it is stopped: ``start`` prints the job id and returns (follow it with
``jobs list``/``jobs describe``). See :mod:`feast_spark.streams`.
"""

from __future__ import annotations

import click

from feast_spark.cli.context import CliContext, common_options, handle_errors, output_option
from feast_spark.cli.output import cell, emit_json, emit_table


@click.group("stream")
@common_options
def stream() -> None:
    """Start and stop stream ingestion from a table's Kafka stream_source."""


@stream.command("start")
@click.argument("table")
@click.option(
    "--to",
    type=click.Choice(["online", "both"]),
    default="online",
    show_default=True,
    help="online: the online store only; both: also append to the Delta offline table.",
)
@click.option(
    "--trigger-interval",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Seconds between micro-batches (default: each starts when the previous ends).",
)
@common_options
@output_option
@handle_errors
def stream_start(table: str, to: str, trigger_interval: float | None, output: str) -> None:
    """Launch TABLE's stream ingestion job; it runs until 'stream stop' or 'jobs cancel'."""
    from feast_spark.streams import start_stream

    job = start_stream(
        CliContext.current().client(), table, to=to, trigger_interval_s=trigger_interval
    )
    if output == "json":
        emit_json(job.record.to_dict())
    else:
        click.echo(job.id)


@stream.command("stop")
@click.argument("table")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=120.0,
    show_default=True,
    help="Seconds to let the job finish its micro-batch before it is cancelled.",
)
@common_options
@handle_errors
def stream_stop(table: str, timeout: float) -> None:
    """Stop TABLE's stream after its current micro-batch (cancel it after --timeout)."""
    from feast_spark.streams import stop_stream

    stopped = stop_stream(CliContext.current().client(), table, timeout_s=timeout)
    if not stopped:
        click.echo(f"no stream of table '{table}' is running")
    for done in stopped:
        click.echo(f"job {done.job_id} {done.state.value}")


@stream.command("status")
@click.argument("table")
@common_options
@output_option
@handle_errors
def stream_status(table: str, output: str) -> None:
    """Show TABLE's running stream: its job and its last progress (rates, lag, totals)."""
    from feast_spark.streams import running_streams, stream_progress

    client = CliContext.current().client()
    rows = []
    for job in running_streams(client, table):
        progress = stream_progress(client.launcher.store, job.id) or {}
        rows.append({"job_id": job.id, "state": job.record.state.value, **progress})
    if output == "json":
        emit_json(rows)
        return
    if not rows:
        click.echo(f"no stream of table '{table}' is running")
        return
    columns = ["job_id", "state", "messages", "rows_written", "rows_rejected",
               "input_rows_per_s", "processed_rows_per_s", "last_batch_s", "kafka_lag"]  # fmt: skip
    emit_table(columns, [tuple(cell(row.get(c)) for c in columns) for row in rows])
