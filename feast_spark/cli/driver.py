"""``feast-spark driver ...``: a warm local driver that runs the project's small jobs.

    feast-spark driver start [--timeout S] [--idle-timeout 2h]
    feast-spark driver status
    feast-spark driver stop

While it runs, each local batch job of the project (ingest, training sets, materialize, audit,
maintenance) runs in it instead of in a spark-submit of its own: no JVM to start, no Spark
session to build, Delta already loaded. See :mod:`feast_spark.warm_drivers`.
"""

from __future__ import annotations

from datetime import timedelta

import click

from feast_spark.cli.context import CliContext, common_options, handle_errors, output_option
from feast_spark.cli.output import cell, emit_json, emit_table
from feast_spark.cli.types import DURATION


@click.group("driver")
@common_options
def driver() -> None:
    """A warm local Spark driver that runs this project's small jobs (no start-up per job)."""


@driver.command("start")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=300.0,
    show_default=True,
    help="Seconds to wait for the driver to serve.",
)
@click.option(
    "--idle-timeout",
    type=DURATION,
    default=None,
    help="Stop after this long without a job: 2h, 30m, 600s (default: run until stopped).",
)
@common_options
@handle_errors
def driver_start(timeout: float, idle_timeout: timedelta | None) -> None:
    """Start the warm driver (once: a running one is kept) and wait until it serves."""
    from feast_spark.warm_drivers import start_driver

    status, started = start_driver(
        CliContext.current().client().launcher,
        timeout_s=timeout,
        idle_timeout_s=idle_timeout.total_seconds() if idle_timeout else None,
    )
    if not started:
        click.echo(f"warm driver {status.job_id} is already running (pid {status.pid})")
        return
    click.echo(
        f"warm driver {status.job_id} serves (pid {status.pid}): this project's local jobs now "
        "run in it; 'feast-spark driver stop' ends it"
    )


@driver.command("status")
@common_options
@output_option
@handle_errors
def driver_status(output: str) -> None:
    """Show the warm driver: its job, whether it answers, the jobs it ran and runs."""
    from feast_spark.warm_drivers import driver_status as status_of

    status = status_of(CliContext.current().client().launcher)
    if output == "json":
        emit_json(None if status is None else {**vars(status), "running": list(status.running)})
        return
    if status is None:
        click.echo("no warm driver: jobs run in a spark-submit each ('feast-spark driver start')")
        return
    columns = ["job_id", "answering", "pid", "started_at", "jobs_run", "running"]
    row = (
        status.job_id,
        "yes" if status.answering else "no (stopped, killed or starting)",
        cell(status.pid),
        cell(status.started_at),
        cell(status.jobs_run),
        ", ".join(status.running) or "-",
    )
    emit_table(columns, [row])
    if status.runs_cold:
        click.echo(f"jobs started from here run in their own spark-submit: {status.runs_cold}")


@driver.command("stop")
@common_options
@handle_errors
def driver_stop() -> None:
    """Stop the warm driver; jobs it runs are cancelled, later jobs start their own driver."""
    from feast_spark.warm_drivers import stop_driver

    stopped = stop_driver(CliContext.current().client().launcher)
    if not stopped:
        click.echo("no warm driver is running")
    for job_id in stopped:
        click.echo(f"warm driver {job_id} stopped")
