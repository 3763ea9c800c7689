"""Definition commands: ``apply``, ``entities``, ``feature-tables`` and ``projects``."""

from __future__ import annotations

from typing import Any

import click

from feast_spark.cli.context import CliContext, common_options, handle_errors, output_option
from feast_spark.cli.output import emit_json, emit_table

# --- apply --------------------------------------------------------------------------------------


@click.command()
@click.option(
    "--file",
    "-f",
    "paths",
    multiple=True,
    required=True,
    type=click.Path(exists=True),
    help="A YAML definitions file or folder; repeat for more.",
)
@common_options
@output_option
@handle_errors
def apply(paths: tuple[str, ...], output: str) -> None:
    """Create or update entities and feature tables from YAML definitions."""
    client = CliContext.current().client()
    results = client.apply_files(paths)
    if output == "json":
        emit_json(
            [
                {"kind": r.kind, "name": r.name, "action": r.action, "project": client.project}
                for r in results
            ]
        )
        return
    for result in results:
        click.echo(
            f"{result.action:<9} {result.kind} '{result.name}' in project '{client.project}'"
        )


# --- entities -----------------------------------------------------------------------------------


@click.group()
def entities() -> None:
    """List and describe entities."""


@entities.command("list")
@common_options
@output_option
@handle_errors
def entities_list(output: str) -> None:
    """List the project's entities."""
    client = CliContext.current().client()
    if output == "json":  # the objects `entities describe` prints
        emit_json(client.registry.describe_all(client.project, "entity"))
        return
    emit_table(
        ["name", "type", "description"],
        [(e.name, e.value_type.value, e.description) for e in client.list_entities()],
    )


@entities.command("describe")
@click.argument("name")
@common_options
@output_option
@handle_errors
def entities_describe(name: str, output: str) -> None:
    """Show one entity."""
    client = CliContext.current().client()
    _describe(client.registry.describe(client.project, "entity", name), output)


# --- feature tables -----------------------------------------------------------------------------


@click.group("feature-tables")
def feature_tables() -> None:
    """List, describe and delete feature tables."""


@feature_tables.command("list")
@common_options
@output_option
@handle_errors
def feature_tables_list(output: str) -> None:
    """List the project's feature tables."""
    client = CliContext.current().client()
    if output == "json":  # the objects `feature-tables describe` prints
        emit_json(client.registry.describe_all(client.project, "feature table"))
        return
    found = client.list_feature_tables()
    emit_table(
        ["name", "entities", "features", "max age", "source"],
        [
            (
                t.name,
                ",".join(t.entities),
                len(t.features),
                t.to_dict()["max_age"] or "-",
                t.batch_source.path,
            )
            for t in found
        ],
    )


@feature_tables.command("describe")
@click.argument("name")
@common_options
@output_option
@handle_errors
def feature_tables_describe(name: str, output: str) -> None:
    """Show one feature table with its features and source."""
    client = CliContext.current().client()
    _describe(client.registry.describe(client.project, "feature table", name), output)


@feature_tables.command("delete")
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@common_options
@handle_errors
def feature_tables_delete(name: str, yes: bool) -> None:
    """Remove a feature table's definition (its data is left in place and listed)."""
    client = CliContext.current().client()
    client.get_feature_table(name)  # fail on a wrong name before asking
    if not yes:
        click.confirm(f"Delete feature table '{name}' from project '{client.project}'?", abort=True)
    deleted = client.delete_feature_table(name)
    click.echo(f"deleted feature table '{name}' from project '{client.project}'")
    click.echo("its data is left in place:")
    for location in deleted.left_behind:
        click.echo(f"  {location}")


# --- projects -----------------------------------------------------------------------------------


@click.group()
def projects() -> None:
    """List and create projects."""


@projects.command("list")
@common_options
@output_option
@handle_errors
def projects_list(output: str) -> None:
    """List the projects in the registry."""
    projects = CliContext.current().client().registry.describe_projects()
    if output == "json":
        emit_json(projects)
        return
    emit_table(
        ["name", "entities", "feature tables", "created"],
        [(p["name"], p["entities"], p["feature_tables"], p["created_at"]) for p in projects],
    )


@projects.command("create")
@click.argument("name")
@common_options
@handle_errors
def projects_create(name: str) -> None:
    """Create an empty project."""
    created = CliContext.current().client().create_project(name)
    click.echo(f"{'created' if created else 'exists  '} project '{name}'")


def _describe(record: dict[str, Any], output: str) -> None:
    if output == "json":
        emit_json(record)
        return
    import yaml

    click.echo(yaml.safe_dump(record, sort_keys=False).rstrip())
