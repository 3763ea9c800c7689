"""``feast-spark push TABLE --file PATH [--to online|both]``: rows straight to the online store.

Waits for the push job by default (``--no-wait`` prints its id), then prints the job's summary
and one line of what went where::

    job push-driver-stats-20240101T000000-a1b2c3 SUCCEEDED in 18.2s: rows_read=3, ...
    driver_stats: 2 rows written online, 1 rejected (see .../driver_stats.rejected), ...

Exit status 1 when the job failed (its error on one line), 2 for a usage error (an unknown
``--to``, a local file that does not exist). See :mod:`feast_spark.client_push`.
"""

from __future__ import annotations

from typing import Any

import click

from feast_spark.cli.context import CliContext, common_options, handle_errors, output_option
from feast_spark.cli.wait import run_or_print, wait_options


@click.command("push")
@click.argument("table")
@click.option(
    "--file",
    "path",
    required=True,
    help="The rows: a parquet file (csv/json by suffix), path or URI, with the batch source's "
    "columns.",
)
@click.option(
    "--to",
    type=click.Choice(["online", "both"]),
    default="online",
    show_default=True,
    help="online: the online store only; both: also append to the Delta offline table.",
)
@wait_options
@common_options
@output_option
@handle_errors
def push(table: str, path: str, to: str, wait: bool, timeout: float | None, output: str) -> None:
    """Push the rows of --file to TABLE's online store (and offline table with --to both)."""
    job = CliContext.current().client().push(table, path, to=to)
    run_or_print(job, wait, timeout=timeout, output=output)
    if wait and output != "json":
        click.echo(describe_push(dict((job.record.result or {}).get("details") or {})))


def describe_push(details: dict[str, Any]) -> str:
    """``driver_stats: 2 rows written online, 1 rejected (see <path>), 3 appended offline``."""
    parts = [f"{details.get('rows_written', 0)} rows written online"]
    if details.get("rows_expired"):
        parts.append(f"{details['rows_expired']} expired (older than max_age)")
    rejected = details.get("rows_rejected", 0)
    parts.append(
        f"{rejected} rejected (see {details.get('rejected_path')})" if rejected else "0 rejected"
    )
    if details.get("to") == "both":
        parts.append(
            f"{details.get('rows_offline', 0)} appended offline "
            f"(version {details.get('offline_version')})"
        )
    return f"{details.get('table', '?')}: " + ", ".join(parts)
