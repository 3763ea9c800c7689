"""The ``feast-spark`` command.

Exit codes: 0 success, 1 an error (one clear line on stderr; the traceback only with
``--verbose``), 2 a usage error. Every command takes ``--config``, ``--project`` and, where it
prints objects, ``--output table|json``.
"""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from feast_spark.cli_output import emit_json, emit_table
from feast_spark.errors import FeastSparkError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class CliContext:
    """Options every command shares, collected from the group and the command."""

    config_path: str | None = None
    project: str | None = None
    verbose: bool = False

    @classmethod
    def current(cls) -> CliContext:
        """The context of the command being run."""
        return click.get_current_context().ensure_object(cls)

    def client(self) -> Any:
        """Build the Client lazily, so ``--help`` and usage errors never read a config."""
        from feast_spark.client import Client

        return Client(self.config_path, project=self.project)

    def launcher(self) -> Any:
        """The launcher of the configured project (no registry or online store opened)."""
        from feast_spark.config import load_config
        from feast_spark.launcher import Launcher

        return Launcher.from_config(load_config(self.config_path).with_project(self.project))


def _store(name: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        if value is not None and value is not False:
            setattr(ctx.ensure_object(CliContext), name, value)
        return value

    return callback


def common_options(command: F) -> F:
    """Add ``--config``, ``--project`` and ``--verbose`` (also accepted on the group)."""
    options = [
        click.option(
            "--config",
            "-c",
            type=click.Path(dir_okay=True),
            expose_value=False,
            callback=_store("config_path"),
            help="feature_store.yaml (default: $FEAST_SPARK_CONFIG or ./feature_store.yaml).",
        ),
        click.option(
            "--project",
            "-p",
            expose_value=False,
            callback=_store("project"),
            help="Project to use instead of the configured one.",
        ),
        click.option(
            "--verbose",
            "-v",
            is_flag=True,
            expose_value=False,
            callback=_store("verbose"),
            help="Show tracebacks on errors.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def output_option(command: F) -> F:
    """Add ``--output table|json``."""
    return click.option(
        "--output",
        "-o",
        type=click.Choice(["table", "json"]),
        default="table",
        show_default=True,
        help="Output format.",
    )(command)


def handle_errors(command: F) -> F:
    """Turn a FeastSparkError into one line on stderr and exit 1 (a traceback with --verbose)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except FeastSparkError as error:
            ctx = click.get_current_context().find_object(CliContext)
            if ctx is not None and ctx.verbose:
                traceback.print_exc()
            raise click.ClickException(str(error)) from None

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@common_options
@click.version_option(package_name="feast-spark")
def cli() -> None:
    """feast-spark: a feature store on Apache Spark, Delta Lake and Apache Cassandra."""


# --- apply --------------------------------------------------------------------------------------


@cli.command()
@click.option(
    "--file",
    "-f",
    "paths",
    multiple=True,
    required=True,
    type=click.Path(),
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
        emit_json([{"kind": r.kind, "name": r.name, "action": r.action} for r in results])
        return
    for result in results:
        click.echo(
            f"{result.action:<9} {result.kind} '{result.name}' in project '{client.project}'"
        )


# --- entities -----------------------------------------------------------------------------------


@cli.group()
def entities() -> None:
    """List and describe entities."""


@entities.command("list")
@common_options
@output_option
@handle_errors
def entities_list(output: str) -> None:
    """List the project's entities."""
    found = CliContext.current().client().list_entities()
    if output == "json":
        emit_json([e.to_dict() for e in found])
    else:
        emit_table(
            ["name", "type", "description"],
            [(e.name, e.value_type.value, e.description) for e in found],
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


@cli.group("feature-tables")
def feature_tables() -> None:
    """List, describe and delete feature tables."""


@feature_tables.command("list")
@common_options
@output_option
@handle_errors
def feature_tables_list(output: str) -> None:
    """List the project's feature tables."""
    found = CliContext.current().client().list_feature_tables()
    if output == "json":
        emit_json([t.to_dict() for t in found])
        return
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


@cli.group()
def projects() -> None:
    """List and create projects."""


@projects.command("list")
@common_options
@output_option
@handle_errors
def projects_list(output: str) -> None:
    """List the projects in the registry."""
    names = CliContext.current().client().list_projects()
    if output == "json":
        emit_json(names)
    else:
        emit_table(["name"], [(n,) for n in names])


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


# The job and pipeline commands extend the group defined above.
from feast_spark import cli_jobs, cli_online, cli_pipeline  # noqa: E402, F401


def main() -> None:
    """Console-script entry point."""
    sys.exit(cli.main(prog_name="feast-spark", standalone_mode=True))


if __name__ == "__main__":
    main()
