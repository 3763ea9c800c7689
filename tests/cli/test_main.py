"""The root group: every command module's commands are on it, however the CLI is started.

The command modules never import the group (only ``feast_spark.cli`` imports ``main``), so
there is no import loop, and ``python -m feast_spark.cli`` runs the one group there is.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from feast_spark.cli import cli

CLI_PACKAGE = Path(__file__).resolve().parents[2] / "feast_spark" / "cli"

COMMANDS = {
    "apply": set(),
    "entities": {"list", "describe"},
    "feature-tables": {"list", "describe", "delete"},
    "projects": {"list", "create"},
    "ingest": set(),
    "get-historical-features": set(),
    "materialize": set(),
    "materialize-incremental": set(),
    "get-online-features": set(),
    "datasets": {"list", "describe", "rebuild", "delete"},
    "audit": set(),
    "stream": {"start", "stop", "status"},
    "push": set(),
    "offline": {"compact", "vacuum"},
    "stats": set(),
    "online": {"delete", "purge"},
    "jobs": {"list", "describe", "logs", "cancel", "abandon", "wait", "prune"},
    "driver": {"start", "status", "stop"},
    "serve": set(),
    "quickstart": set(),
}


def listed_commands(help_text: str) -> set[str]:
    """The names under ``Commands:`` in a click help text."""
    section = help_text.split("Commands:\n", 1)[1]
    return {line.split()[0] for line in section.splitlines() if line.startswith("  ")}


def test_the_group_holds_every_command_and_subcommand() -> None:
    # when the group's commands are read, then each command and subcommand is there
    assert set(cli.commands) == set(COMMANDS)
    for name, subcommands in COMMANDS.items():
        assert set(getattr(cli.commands[name], "commands", {})) == subcommands, name


def test_python_dash_m_lists_every_command_and_every_jobs_command() -> None:
    # when `python -m feast_spark.cli --help` and `... jobs --help` run in a fresh interpreter
    runs = [
        subprocess.run(
            [sys.executable, "-m", "feast_spark.cli", *args, "--help"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        for args in ([], ["jobs"])
    ]
    # then both succeed and list every command
    assert [run.returncode for run in runs] == [0, 0], [run.stderr for run in runs]
    assert runs[0].stdout.startswith("Usage: feast-spark [OPTIONS] COMMAND [ARGS]...")
    assert listed_commands(runs[0].stdout) == set(COMMANDS)
    assert listed_commands(runs[1].stdout) == COMMANDS["jobs"]


def test_short_help_option_reaches_the_subcommands() -> None:
    # -h is set on the root group's context: the commands added to it inherit it
    result = CliRunner().invoke(cli, ["jobs", "list", "-h"], prog_name="feast-spark")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: feast-spark jobs list [OPTIONS]")


def test_no_command_module_imports_the_group() -> None:
    # given the imports of every module of feast_spark.cli but the package and its entry points
    offenders = {}
    for path in sorted(CLI_PACKAGE.glob("*.py")):
        if path.name in {"__init__.py", "__main__.py", "main.py"}:
            continue
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
                imported.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
        wrong = imported & {"feast_spark.cli", "feast_spark.cli.main", "feast_spark.cli.cli"}
        if wrong:
            offenders[path.name] = sorted(wrong)
    # then none imports the group or the package (which imports the group)
    assert offenders == {}
