"""``feast-spark quickstart``: create a sample project and run the whole pipeline on it."""

from __future__ import annotations

import click

from feast_spark.cli.context import CliContext, handle_errors


@click.command()
@click.argument("folder", default="feast-spark-quickstart", type=click.Path(file_okay=False))
@click.option(
    "--online",
    type=click.Choice(["sqlite", "cassandra"]),
    default="sqlite",
    show_default=True,
    help="Online store: embedded SQLite, or the local Cassandra node.",
)
@click.option("--verbose", "-v", is_flag=True, help="Show tracebacks on errors.")
@handle_errors
def quickstart(folder: str, online: str, verbose: bool) -> None:
    """Create a sample project in FOLDER and run the whole pipeline on it."""
    from pathlib import Path

    from feast_spark.quickstart import run_quickstart

    CliContext.current().verbose = verbose
    run_quickstart(Path(folder).resolve(), online=online, echo=click.echo)
