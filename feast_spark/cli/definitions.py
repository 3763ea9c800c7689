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
from feast_spark.cli_types import OutputFormat, as_usage_error, check_project
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


def _checked_project(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    return _store("project")(ctx, param, check_project(ctx, param, value))


def common_options(command: F) -> F:
    """Add ``--config``, ``--project`` and ``--verbose`` (also accepted on the group)."""
    options = [
        click.option(
            "--config",
            "-c",
            type=click.Path(exists=True, dir_okay=True),
            expose_value=False,
            callback=_store("config_path"),
            help="feature_store.yaml (default: $FEAST_SPARK_CONFIG or ./feature_store.yaml).",
        ),
        click.option(
            "--project",
            "-p",
            expose_value=False,
            callback=_checked_project,
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
        type=OutputFormat(),
        default="table",
        show_default=True,
        help="Output format.",
    )(command)


def handle_errors(command: F) -> F:
    """Turn an error into one line on stderr (a traceback with --verbose).

    A bad argument (ArgumentError, a malformed feature reference) exits 2 as a usage error naming
    the option; any other error exits 1: a FeastSparkError as its own message, an OSError (a
    file that cannot be read or written) as its reason and path, anything else as its type and
    message, with a pointer to ``--verbose``.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (click.exceptions.Exit, click.Abort, click.ClickException):
            raise
        except Exception as error:
            ctx = click.get_current_context().find_object(CliContext)
            if ctx is not None and ctx.verbose:
                traceback.print_exc()
            usage = as_usage_error(error)
            if usage is not None:
                raise usage from None
            raise click.ClickException(_one_line(error)) from None

    return wrapper  # type: ignore[return-value]


def _one_line(error: Exception) -> str:
    if isinstance(error, FeastSparkError):
        return str(error)
    if isinstance(error, OSError) and error.strerror:
        where = f": {error.filename}" if error.filename else ""
        return f"{error.strerror}{where}"
    text = " ".join(str(error).split()) or "no message"
    return f"unexpected {type(error).__name__}: {text} (rerun with --verbose for the traceback)"


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


@cli.group()
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


@cli.group("feature-tables")
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


@cli.group()
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


# The job and pipeline commands extend the group defined above.
from feast_spark import cli_jobs, cli_online, cli_pipeline, cli_serve  # noqa: E402, F401


def main() -> None:
    """Console-script entry point."""
    sys.exit(cli.main(prog_name="feast-spark", standalone_mode=True))


if __name__ == "__main__":
    # `python -m feast_spark.cli` runs this file as __main__, a second copy of the module: the
    # job and pipeline commands register on feast_spark.cli's group, so run that one.
    from feast_spark.cli import main as _main

    _main()
