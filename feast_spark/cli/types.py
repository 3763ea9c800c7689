"""Option types and error mapping of the CLI: usage errors exit 2 and speak the CLI's words.

Values the CLI can check without reading a configuration (instants, durations, project names,
``--entity`` and ``--features`` syntax) are checked by click as it parses, so a bad one is a
usage error (exit 2) naming the option. An :class:`~feast_spark.errors.ArgumentError` raised
deeper (by the client) is a usage error too; its Python argument name is translated back into
the option that carried the value. Every other failure exits 1 (see ``handle_errors``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

from feast_spark.definitions.durations import parse_duration
from feast_spark.errors import ArgumentError, DefinitionError

if TYPE_CHECKING:
    from feast_spark.client import Client

# Python argument names whose option is not simply --<name with dashes>.
_OPTION_NAMES = {
    "feature_refs": "--features",
    "feature reference": "--features",
    "entity_rows": "--entity",
    "entity_source": "--entities",
    "output_path": "--output",
    "output_format": "--format",
    "project": "--project",
    "rows": "--file",
    "table": "TABLE",
}


def option_name(argument: str) -> str:
    """The CLI option for a Python argument name (``older_than`` -> ``--older-than``)."""
    if argument.startswith("-"):
        return argument
    return _OPTION_NAMES.get(argument, "--" + argument.replace("_", "-"))


class InstantType(click.ParamType):  # type: ignore[type-arg]
    """An ISO-8601 date (midnight UTC) or instant (no offset: UTC), as an aware datetime."""

    name = "instant"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        """Parse ``value``, or fail as a usage error naming the option."""
        from feast_spark.specs import parse_instant

        if isinstance(value, datetime):
            return value
        try:
            return parse_instant(value)
        except ArgumentError as error:
            self.fail(f"{value!r} {error.reason}", param, ctx)


class DurationType(click.ParamType):  # type: ignore[type-arg]
    """A duration: ``30d``, ``12h``, ``45m``, ``3600s`` or plain seconds; never negative."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> timedelta:
        """Parse ``value``, or fail as a usage error naming the option."""
        if isinstance(value, timedelta):
            return value
        try:
            parsed = parse_duration(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)
        if parsed < timedelta(0):
            self.fail(f"{value!r} is negative; give a duration >= 0", param, ctx)
        return parsed


INSTANT = InstantType()
DURATION = DurationType()

# The end of the help of an option that takes an INSTANT.
WINDOW_HELP = "ISO-8601 date or instant (no offset means UTC)"


def check_project(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``--project``: a valid project name, else a usage error (not one of feature_store.yaml)."""
    if value is None:
        return None
    from feast_spark.definitions.names import check_name

    try:
        return check_name("project", value)
    except DefinitionError as error:
        raise click.BadParameter(f"{value!r}: {error.reason}", ctx, param) from None


def entity_row(text: str, client: Client) -> dict[str, Any]:
    """``driver_id=1001,customer_id=abc`` with each value typed as its entity declares."""
    from feast_spark.online.service import parse_entity_value

    row: dict[str, Any] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(
                f"{text!r}: write name=value[,name=value], e.g. driver_id=1001",
                param_hint="'--entity'",
            )
        entity = client.get_entity(name.strip())
        try:
            row[entity.name] = parse_entity_value(value.strip(), entity)
        except DefinitionError as error:
            raise click.BadParameter(f"{text!r}: {error}", param_hint="'--entity'") from None
    return row


def as_usage_error(error: Exception) -> click.UsageError | None:
    """The usage error (exit 2) an exception stands for, or None when it is not one."""
    if isinstance(error, ArgumentError):
        return click.UsageError(f"{option_name(error.name)} {error.value!r}: {error.reason}")
    if isinstance(error, DefinitionError) and error.kind == "feature reference":
        return click.UsageError(f"--features {error.name!r}: {error.reason}")
    return None


class OutputFormat(click.Choice):  # type: ignore[type-arg]
    """``--output table|json``; a path there is answered with where a dataset location goes."""

    def __init__(self) -> None:
        super().__init__(["table", "json"])

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Check the choice; explain a path given as the pre-0.1 dataset ``--output``."""
        if isinstance(value, str) and value not in self.choices and ("/" in value or "." in value):
            self.fail(
                f"{value!r} is not table or json: --output picks how the result is printed; "
                "get-historical-features writes its dataset to --output-path",
                param,
                ctx,
            )
        return super().convert(value, param, ctx)
