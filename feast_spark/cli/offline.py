"""``feast-spark offline ...``: maintain the Delta offline tables (compact, vacuum)."""

from __future__ import annotations

import click

from feast_spark.cli.context import CliContext, common_options, handle_errors, output_option
from feast_spark.cli.wait import run_or_print, wait_options


@click.group()
def offline() -> None:
    """Maintain the Delta offline tables."""


@offline.command("compact")
@click.argument("table")
@wait_options
@common_options
@output_option
@handle_errors
def offline_compact(table: str, wait: bool, timeout: float | None, output: str) -> None:
    """Rewrite TABLE's files in event-time order (Delta OPTIMIZE); data and readers undisturbed."""
    run_or_print(CliContext.current().client().compact(table), wait, timeout=timeout, output=output)


@offline.command("vacuum")
@click.argument("table")
@click.option(
    "--force",
    is_flag=True,
    help="Vacuum even if it deletes versions that kept training datasets read.",
)
@wait_options
@common_options
@output_option
@handle_errors
def offline_vacuum(table: str, force: bool, wait: bool, timeout: float | None, output: str) -> None:
    """Delete TABLE's files that no version within its retention needs (Delta VACUUM).

    The retention is the table's delta.deletedFileRetentionDuration (7 days by default). The
    job fails, deleting nothing, if a version a kept dataset read would lose files (see
    'feast-spark datasets list'), unless --force.
    """
    job = CliContext.current().client().vacuum(table, force=force)
    run_or_print(job, wait, timeout=timeout, output=output)
