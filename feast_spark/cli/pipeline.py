"""Pipeline commands: ingest, get-historical-features, materialize(-incremental), online reads."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import click

from feast_spark.cli.context import CliContext, common_options, handle_errors, output_option
from feast_spark.cli.output import emit_json, emit_table
from feast_spark.cli.types import INSTANT, WINDOW_HELP, entity_row
from feast_spark.cli.wait import run_or_print, wait_options
from feast_spark.columns import EVENT_TIMESTAMP

if TYPE_CHECKING:
    from feast_spark.client import Client


def _client() -> Client:
    return CliContext.current().client()


@click.command()
@click.argument("table")
@click.option("--source", help="Load this path or URI instead of the table's batch source.")
@click.option("--start", type=INSTANT, help=f"Window start, inclusive: {WINDOW_HELP}.")
@click.option("--end", type=INSTANT, help=f"Window end, exclusive: {WINDOW_HELP}.")
@click.option(
    "--max-rejected-fraction",
    type=click.FloatRange(0, 1),
    default=1.0,
    show_default=True,
    help="Fail, committing nothing, when more than this share of rows is rejected.",
)
@wait_options
@common_options
@output_option
@handle_errors
def ingest(
    table: str,
    source: str | None,
    start: datetime | None,
    end: datetime | None,
    max_rejected_fraction: float,
    wait: bool,
    timeout: float | None,
    output: str,
) -> None:
    """Load TABLE's batch source (or --source) into its Delta offline table."""
    job = _client().ingest(
        table, source, start=start, end=end, max_rejected_fraction=max_rejected_fraction
    )
    run_or_print(job, wait, timeout=timeout, output=output)


@click.command("get-historical-features")
@click.option("--features", required=True, help="Comma-separated refs: t:f1,t:f2,u:*")
@click.option("--entities", required=True, help="Entity rows: parquet, csv, json or Delta path.")
@click.option(
    "--timestamp-column",
    default=EVENT_TIMESTAMP,
    show_default=True,
    help="The entity rows' timestamp column.",
)
@click.option(
    "--output-path",
    "output_path",
    required=True,
    help="Where to write the dataset (a path or URI; it must not exist yet).",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["parquet", "delta"]),
    default="parquet",
    show_default=True,
)
@wait_options
@common_options
@output_option
@handle_errors
def get_historical_features(
    features: str,
    entities: str,
    timestamp_column: str,
    output_path: str,
    output_format: str,
    wait: bool,
    timeout: float | None,
    output: str,
) -> None:
    """Build a point-in-time correct training dataset."""
    retrieval = _client().get_historical_features(
        features,
        entities,
        timestamp_column=timestamp_column,
        output_path=output_path,
        output_format=output_format,
    )
    run_or_print(retrieval.job, wait, timeout=timeout, output=output)


@click.command()
@click.argument("tables", nargs=-1, required=True)
@click.option(
    "--start", type=INSTANT, required=True, help=f"Window start, inclusive: {WINDOW_HELP}."
)
@click.option("--end", type=INSTANT, required=True, help=f"Window end, exclusive: {WINDOW_HELP}.")
@wait_options
@common_options
@output_option
@handle_errors
def materialize(
    tables: tuple[str, ...],
    start: datetime,
    end: datetime,
    wait: bool,
    timeout: float | None,
    output: str,
) -> None:
    """Push the latest values of TABLES in [start, end) to the online store."""
    run_or_print(
        _client().materialize(list(tables), start, end), wait, timeout=timeout, output=output
    )


@click.command("materialize-incremental")
@click.argument("tables", nargs=-1, required=True)
@click.option("--end", type=INSTANT, help=f"Window end, exclusive (default: now): {WINDOW_HELP}.")
@wait_options
@common_options
@output_option
@handle_errors
def materialize_incremental(
    tables: tuple[str, ...], end: datetime | None, wait: bool, timeout: float | None, output: str
) -> None:
    """Materialize TABLES from their high-water marks up to --end (at most now + the allowance)."""
    client = _client()
    job = client.materialize_incremental(list(tables), end)
    if job is None:
        message = "nothing to do: every table is materialized up to the end already"
        if output == "json":
            click.echo(message, err=True)
            emit_json(None)
        else:
            click.echo(message)
        return
    run_or_print(job, wait, timeout=timeout, output=output)  # waiting settles the marks


@click.command("get-online-features")
@click.option("--features", required=True, help="Comma-separated refs: t:f1,t:f2,u:*")
@click.option(
    "--entity",
    "entities",
    multiple=True,
    required=True,
    help="One entity row as name=value[,name=value]; repeat for more rows.",
)
@common_options
@output_option
@handle_errors
def get_online_features(features: str, entities: tuple[str, ...], output: str) -> None:
    """Read the latest feature values and their statuses."""
    client = _client()
    rows = [entity_row(text, client) for text in entities]
    try:
        response = client.get_online_features(features, rows)
    finally:
        client.close()
    data = response.to_dict()
    if output == "json":
        emit_json(data)
        return
    columns = list(data)
    emit_table(columns, list(zip(*(data[c] for c in columns), strict=True)))
