"""A user's mistakes on the command line: one line, no traceback, exit 2 for usage, 1 otherwise.

Every message names the option or key in the user's words (``--older-than``, not ``older_than``)
and blames the value on where it came from: the option, an environment override, or the file.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from feast_spark.cli import cli

EXAMPLE = Path(__file__).parents[2] / "conf" / "example" / "definitions"
CONFIG = "project: demo\nregistry: data/registry.json\noffline_store: {path: data/offline}\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "feature_store.yaml").write_text(CONFIG)
    assert invoke(tmp_path, "apply", "-f", str(EXAMPLE)).exit_code == 0
    return tmp_path


def invoke(project: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, ["--config", str(project), *args], env=env)


def error_line(result: Result) -> str:
    """The one ``Error:`` line, after checking there is no traceback."""
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.mark.parametrize(
    ("args", "option", "words"),
    [
        (["jobs", "prune", "--older-than", "9999999999d"], "--older-than", "at most 999999999 days"),
        (["jobs", "prune", "--older-than", ".inf"], "--older-than", "is not a duration"),
        (["jobs", "prune", "--older-than", "soon"], "--older-than", "write e.g. 7d"),
        (["ingest", "driver_stats", "--start", "2024-13-01", "--no-wait"], "--start", "ISO-8601"),
        (["materialize", "driver_stats", "--start", "2024-01-01", "--end", "yesterday"], "--end",
         "ISO-8601"),
        (["materialize-incremental", "driver_stats", "--end", "x"], "--end", "ISO-8601"),
        (["get-online-features", "--features", "driver_stats:conv_rate", "--entity", "driver_id"],
         "--entity", "name=value"),
        (["get-online-features", "--features", "driver_stats:conv_rate", "--entity",
          "driver_id=abc"], "--entity", "INT64"),
        (["get-online-features", "--features", "conv_rate", "--entity", "driver_id=1"],
         "--features", "name its table: 'driver_stats:conv_rate'"),
        (["get-historical-features", "--features", "conv_rate", "--entities", "e.parquet",
          "--output-path", "out"], "--features", "name its table: 'driver_stats:conv_rate'"),
        (["materialize", "driver_stats", "--start", "2024-01-02", "--end", "2024-01-01"],
         "--start", "must be before end 2024-01-01T00:00:00+00:00"),
        (["ingest", "driver_stats", "--start", "0001-01-01T00:00+01:00"], "--start",
         "outside years 1 to 9999"),
        (["materialize", "driver_stats", "--start", "2024-01-01", "--end",
          "9999-12-31T23:59:59-05:00"], "--end", "outside years 1 to 9999"),
        (["apply", "-f", "no-such-definitions.yaml"], "--file", "does not exist"),
        (["--config", "/no/such/config.yaml", "entities", "list"], "--config",
         "does not exist"),
        (["--project", "Bad-Name", "entities", "list"], "--project", "must match"),
        (["entities", "list", "-p", "Bad-Name"], "--project", "must match"),
    ],
)  # fmt: skip
def test_usage_errors_exit_2_and_name_the_option(
    project: Path, args: list[str], option: str, words: str
) -> None:
    # when a command gets a malformed value
    result = invoke(project, *args)
    # then it is a usage error (exit 2), one line naming the option in the CLI's words
    assert result.exit_code == 2, result.output
    line = error_line(result)
    assert option in line and words in line, line
    assert "older_than" not in line and "feature_refs" not in line
    assert "feature_store.yaml" not in line  # a flag's value is never blamed on the file


@pytest.mark.parametrize(
    ("config", "words"),
    [
        (
            "project: demo\nregistry: foo://bucket/registry.json\noffline_store: {path: o}\n",
            "key 'registry' = 'foo://bucket/registry.json': unknown file system 'foo://'",
        ),
        (
            "project: demo\nregistry: {path: 'foo://b/r.json'}\noffline_store: {path: o}\n",
            "key 'registry.path' = 'foo://b/r.json': unknown file system 'foo://'; use a local",
        ),
        (
            "project: demo\nregistry: .\noffline_store: {path: o}\n",
            "key 'registry' = '.': is a folder; name a file in it",
        ),
        (
            "project: demo\nregistry: r.json\noffline_store: {path: o}\n"
            "launcher: {job_store: feature_store.yaml}\n",
            "key 'launcher.job_store' = 'feature_store.yaml': is a file; name a folder",
        ),
        (
            "project: demo\nregistry: r.json\noffline_store: {path: o}\n"
            "online_store: {type: sqlite, path: .}\n",
            "key 'online_store.path' = '.': is a folder; name a file in it",
        ),
        (
            "project: demo\nregistry: {path: r.json, cache_ttl_seconds: .inf}\n"
            "offline_store: {path: o}\n",
            "key 'registry.cache_ttl_seconds' = inf: must be a number of seconds",
        ),
        (
            "project: demo\nregistry: r.json\noffline_store: {path: o}\nproject: other\n",
            "feature_store.yaml:4: key 'project' = 'other': set twice (first at line 1); keep one",
        ),
        (
            "project: demo\nregistry: r.json\noffline_store: {path: o}\n"
            "online_store:\n  type: cassandra\n  port: 9042\n  port: 9043\n",
            "feature_store.yaml:7: key 'online_store.port' = '9043': set twice (first at line 6)",
        ),
    ],
)
def test_bad_config_values_are_one_line_naming_key_value_and_fix(
    tmp_path: Path, config: str, words: str
) -> None:
    # given a feature_store.yaml with one mistake
    (tmp_path / "feature_store.yaml").write_text(config)
    # when any command loads it
    result = invoke(tmp_path, "entities", "list")
    # then one line names the file, the key, the value and the fix; exit 1
    assert result.exit_code == 1
    line = error_line(result)
    assert str(tmp_path / "feature_store.yaml") in line and words in line, line


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("FEAST_SPARK__PROJECT", "Bad", "FEAST_SPARK__PROJECT: key 'project' = 'Bad': name must"),
        (
            "FEAST_SPARK__REGISTRY",
            "foo://x/r.json",
            "FEAST_SPARK__REGISTRY: key 'registry' = 'foo://x/r.json': unknown file system",
        ),
        (
            "FEAST_SPARK__ONLINE_STORE__PORT",
            "abc",
            "FEAST_SPARK__ONLINE_STORE__PORT (section 'online_store' is not in "
            "feature_store.yaml): key 'online_store.type' = None: required key is missing",
        ),
    ],
)
def test_an_environment_override_is_blamed_on_its_variable(
    project: Path, variable: str, value: str, words: str
) -> None:
    # when a FEAST_SPARK__ variable overrides a key with a bad value
    result = invoke(project, "entities", "list", env={variable: value})
    # then the error names the variable, not the file
    assert result.exit_code == 1
    line = error_line(result)
    assert words in line, line
    assert str(project / "feature_store.yaml") not in line


def test_a_bad_override_of_a_key_the_file_has_names_the_variable(project: Path) -> None:
    config = CONFIG + "online_store: {type: cassandra, port: 9042}\n"
    (project / "feature_store.yaml").write_text(config)
    result = invoke(project, "entities", "list", env={"FEAST_SPARK__ONLINE_STORE__PORT": "abc"})
    assert error_line(result) == (
        "Error: FEAST_SPARK__ONLINE_STORE__PORT: key 'online_store.port' = 'abc': "
        "must be a whole number"
    )


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("max_age: 7d\nmax_age: 8d", "driver_stats.yaml:9: key 'max_age' is set twice"),
        ("max_age: .inf", "max_age: inf is not a finite duration of at most 999999999 days"),
        ("max_age: 9999999999d", "'9999999999d' is not a finite duration"),
    ],
)
def test_bad_definitions_are_one_line_naming_file_line_and_key(
    project: Path, text: str, words: str
) -> None:
    # given the example's driver_stats.yaml with max_age replaced by a mistake
    definition = (EXAMPLE / "driver_stats.yaml").read_text().replace("max_age: 7d", text, 1)
    (project / "driver_stats.yaml").write_text(definition)
    # when applied
    result = invoke(project, "apply", "-f", str(project / "driver_stats.yaml"))
    # then one line names the file and the problem, exit 1, and nothing was applied
    assert result.exit_code == 1
    line = error_line(result)
    assert words in line and "driver_stats.yaml" in line, line


def test_duplicate_keys_inside_a_list_item_are_refused_with_their_path(project: Path) -> None:
    definition = (EXAMPLE / "driver_stats.yaml").read_text()
    definition = definition.replace(
        "{name: conv_rate, dtype: DOUBLE}", "{name: conv_rate, dtype: DOUBLE, dtype: FLOAT}"
    )
    (project / "d.yaml").write_text(definition)
    line = error_line(invoke(project, "apply", "-f", str(project / "d.yaml")))
    assert "d.yaml:5: key 'features[0].dtype' is set twice (first at line 5)" in line


def test_unreadable_files_are_one_line(project: Path, tmp_path: Path) -> None:
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00")
    line = error_line(invoke(project, "apply", "-f", str(tmp_path / "binary.yaml")))
    assert "binary.yaml: cannot be read" in line
    (project / "feature_store.yaml").write_bytes(b"\xff\xfe\x00")
    line = error_line(invoke(project, "entities", "list"))
    assert "feature_store.yaml" in line and "cannot be read" in line


def test_an_unexpected_error_is_one_line_pointing_at_verbose(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a failure that is no FeastSparkError (a bug, or a library's own error)
    from feast_spark.client import Client

    def broken(self: Client) -> None:
        raise KeyError("boom")

    monkeypatch.setattr(Client, "list_entities", broken)
    result = invoke(project, "entities", "list")
    assert result.exit_code == 1
    assert error_line(result) == (
        "Error: unexpected KeyError: 'boom' (rerun with --verbose for the traceback)"
    )
    assert "Traceback" in invoke(project, "entities", "list", "--verbose").output


def test_python_dash_m_runs_every_command(project: Path) -> None:
    # `python -m feast_spark.cli` once lost the jobs and pipeline commands (a second module copy)
    result = subprocess.run(
        [sys.executable, "-m", "feast_spark.cli", "--config", str(project), "jobs", "list"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:3] == ["ID", "TYPE", "STATE"]


def test_a_reader_that_leaves_the_pipe_ends_the_command_quietly() -> None:
    # given a command whose output nobody reads any more (`feast-spark ... | head`)
    script = (
        "import click\n"
        "from feast_spark.cli.context import handle_errors\n"
        "@click.command()\n"
        "@handle_errors\n"
        "def command():\n"
        "    raise BrokenPipeError(32, 'Broken pipe')\n"
        "command()\n"
    )
    # when it runs, then it stops with SIGPIPE's status and prints no error
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 141
    assert result.stderr == ""
