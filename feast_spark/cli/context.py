"""What every ``feast-spark`` command shares: its context, its common options, its error mapping.

Exit codes: 0 success, 1 an error (one clear line on stderr; the traceback only with
``--verbose``), 2 a usage error. Every command takes ``--config``, ``--project`` and, where it
prints objects, ``--output table|json``.

The client and the launcher are imported only when a command asks for them (and for the type
checker), so ``--help`` and usage errors neither read a configuration nor load their libraries.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click

from feast_spark.cli.types import OutputFormat, as_usage_error, check_project
from feast_spark.errors import FeastSparkError

if TYPE_CHECKING:
    from feast_spark.client import Client
    from feast_spark.launcher import Launcher

F = TypeVar("F", bound=Callable[..., Any])
# The launcher says here why a job does not run in the warm driver (shown with --verbose).
_LAUNCHER_LOG = logging.getLogger("feast_spark.launcher")


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

    def client(self) -> Client:
        """Build the Client lazily, so ``--help`` and usage errors never read a config."""
        from feast_spark.client import Client

        return Client(self.config_path, project=self.project)

    def launcher(self) -> Launcher:
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


def _verbose(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value and not _LAUNCHER_LOG.handlers:  # once, though the flag may be given twice
        handler = logging.StreamHandler()  # stderr
        handler.setFormatter(logging.Formatter("feast-spark: %(message)s"))
        _LAUNCHER_LOG.addHandler(handler)
        _LAUNCHER_LOG.setLevel(logging.INFO)
    return _store("verbose")(ctx, param, value)


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
            callback=_verbose,
            help="Show tracebacks on errors, and why a job does not run in the warm driver.",
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
        except BrokenPipeError:
            # The reader of stdout left (`feast-spark jobs list | head`): stop quietly, as
            # shell tools do, instead of reporting an error nobody asked about.
            _quiet_stdout()
            sys.exit(141)  # 128 + SIGPIPE
        except Exception as error:
            ctx = click.get_current_context().find_object(CliContext)
            if ctx is not None and ctx.verbose:
                traceback.print_exc()
            usage = as_usage_error(error)
            if usage is not None:
                raise usage from None
            raise click.ClickException(_one_line(error)) from None

    return wrapper  # type: ignore[return-value]


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that the flush at exit does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _one_line(error: Exception) -> str:
    if isinstance(error, FeastSparkError):
        return str(error)
    if isinstance(error, OSError) and error.strerror:
        where = f": {error.filename}" if error.filename else ""
        return f"{error.strerror}{where}"
    text = " ".join(str(error).split()) or "no message"
    return f"unexpected {type(error).__name__}: {text} (rerun with --verbose for the traceback)"
