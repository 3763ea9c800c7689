"""Online store repair: ``online delete`` (keys) and ``online purge`` (a table).

A value that must go whatever its event time (a row dated in the future, a key that must not be
served) is removed here, then the table is materialized again; README "Repairing a bad online
value" says when to use which.
"""

from __future__ import annotations

import click

from feast_spark.cli.context import CliContext, common_options, handle_errors
from feast_spark.cli.types import entity_row


@click.group()
def online() -> None:
    """Repair the online store: remove keys' or a table's rows whatever their event times."""


@online.command("delete")
@click.argument("table")
@click.option(
    "--entity",
    "entities",
    multiple=True,
    required=True,
    help="One key as name=value[,name=value]; repeat for more keys.",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@common_options
@handle_errors
def online_delete(table: str, entities: tuple[str, ...], yes: bool) -> None:
    """Remove the online rows of some keys of TABLE (then materialize to rewrite them)."""
    client = CliContext.current().client()
    try:
        rows = [entity_row(text, client) for text in entities]
        if not yes:
            click.confirm(
                f"Delete the online rows of {len(rows)} key(s) of '{table}' in project "
                f"'{client.project}'?",
                abort=True,
            )
        deleted = client.delete_online_keys(table, rows)
    finally:
        client.close()
    click.echo(
        f"deleted the online rows of {deleted} of {len(rows)} key(s) of '{table}' "
        f"({len(rows) - deleted} had none); materialize '{table}' to write their latest values"
    )


@online.command("purge")
@click.argument("table")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@common_options
@handle_errors
def online_purge(table: str, yes: bool) -> None:
    """Remove every online row of TABLE and reset its high-water mark (then materialize)."""
    client = CliContext.current().client()
    try:
        client.get_feature_table(table)  # fail on a wrong name before asking
        if not yes:
            click.confirm(
                f"Remove every online row of '{table}' in project '{client.project}'?",
                abort=True,
            )
        client.purge_online_table(table)
    finally:
        client.close()
    click.echo(
        f"purged the online rows of '{table}' and reset its high-water mark; rebuild them with "
        f"'feast-spark materialize-incremental {table}' (or materialize a window)"
    )
