import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from feast_spark.cli import cli

REPO = Path(__file__).parents[2]
EXAMPLE = REPO / "conf" / "example"
CONFIG = "project: demo\nregistry: data/registry.json\noffline_store: {path: data/offline}\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "feature_store.yaml").write_text(CONFIG)
    return tmp_path


def run(project: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--config", str(project), *args])
    return result.exit_code, result.stdout, result.stderr


def test_apply_reports_created_then_unchanged(project: Path) -> None:
    code, out, _ = run(project, "apply", "-f", str(EXAMPLE / "definitions"))
    assert code == 0
    assert "created   feature table 'driver_stats' in project 'demo'" in out
    code, out, _ = run(project, "apply", "-f", str(EXAMPLE / "definitions"))
    assert code == 0 and "created" not in out and out.count("unchanged") == 4


def test_the_example_definitions_round_trip_through_describe(project: Path) -> None:
    # given the shipped example definitions applied
    run(project, "apply", "-f", str(EXAMPLE / "definitions"))
    from feast_spark.definitions.yaml_files import load_definitions

    for definition in load_definitions([EXAMPLE / "definitions"]):
        kind = "entities" if type(definition).__name__ == "Entity" else "feature-tables"
        # when described as JSON
        code, out, _ = run(project, kind, "describe", definition.name, "--output", "json")
        assert code == 0
        described = json.loads(out)
        # then every field of the definition is there, unchanged
        assert {k: described[k] for k in definition.to_dict()} == definition.to_dict()
        assert described["created_at"] and described["updated_at"]


def test_lists_show_tables_and_json(project: Path) -> None:
    run(project, "apply", "-f", str(EXAMPLE / "definitions"))
    code, out, _ = run(project, "feature-tables", "list")
    assert code == 0
    assert out.splitlines()[0].split() == ["NAME", "ENTITIES", "FEATURES", "MAX", "AGE", "SOURCE"]
    assert "driver_stats" in out
    code, out, _ = run(project, "entities", "list", "-o", "json")
    assert sorted(e["name"] for e in json.loads(out)) == ["customer_id", "driver_id"]


def test_options_work_after_the_command_too(project: Path) -> None:
    result = CliRunner().invoke(cli, ["projects", "create", "extra", "--config", str(project)])
    assert result.exit_code == 0 and "created project 'extra'" in result.stdout
    result = CliRunner().invoke(cli, ["projects", "list", "-c", str(project), "-o", "json"])
    assert [p["name"] for p in json.loads(result.stdout)] == ["extra"]


def test_project_flag_switches_namespace(project: Path) -> None:
    run(project, "apply", "-f", str(EXAMPLE / "definitions"))
    code, _, err = run(project, "--project", "other", "entities", "list")
    assert code == 1 and "project 'other' not found" in err


def test_user_errors_are_one_line_without_traceback(project: Path) -> None:
    code, out, err = run(project, "feature-tables", "describe", "nope")
    assert code == 1
    assert err.strip() == "Error: project 'demo' not found: apply definitions to create it"
    assert "Traceback" not in out + err


def test_verbose_shows_the_traceback(project: Path) -> None:
    code, _, err = run(project, "--verbose", "feature-tables", "describe", "nope")
    assert code == 1 and "Traceback" in err


def test_bad_definitions_name_the_file(project: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: Entity\nname: Driver\nvalue_type: INT64\n")
    code, _, err = run(project, "apply", "-f", str(bad))
    assert code == 1 and f"{bad}:1: entity 'Driver'" in err


def test_a_bad_config_is_named(tmp_path: Path) -> None:
    (tmp_path / "feature_store.yaml").write_text(CONFIG + "colour: blue\n")
    code, _, err = run(tmp_path, "projects", "list")
    assert code == 1 and "key 'colour'" in err and "unknown key" in err


def test_usage_errors_exit_2(project: Path) -> None:
    assert run(project, "apply")[0] == 2
    assert run(project, "no-such-command")[0] == 2
    assert run(project, "entities", "list", "--output", "xml")[0] == 2


def test_delete_says_what_data_is_left(project: Path) -> None:
    run(project, "apply", "-f", str(EXAMPLE / "definitions"))
    code, out, _ = run(project, "feature-tables", "delete", "driver_stats", "--yes")
    assert code == 0
    assert f"delta table {project}/data/offline/demo/driver_stats" in out
    assert "sqlite table demo__driver_stats" in out
    code, out, _ = run(project, "feature-tables", "list", "-o", "json")
    assert [t["name"] for t in json.loads(out)] == ["customer_profile"]


def test_delete_asks_first(project: Path) -> None:
    run(project, "apply", "-f", str(EXAMPLE / "definitions"))
    result = CliRunner().invoke(
        cli, ["-c", str(project), "feature-tables", "delete", "driver_stats"], input="n\n"
    )
    assert result.exit_code == 1  # aborted
    assert "driver_stats" in run(project, "feature-tables", "list")[1]


def test_the_installed_command_runs(project: Path) -> None:
    # given the console script installed in the environment running the tests
    command = shutil.which("feast-spark", path=str(Path(sys.executable).parent)) or shutil.which(
        "feast-spark"
    )
    assert command, "feast-spark is not installed: pip install -e ."
    env = {**os.environ, "FEAST_SPARK_CONFIG": str(project / "feature_store.yaml")}
    applied = subprocess.run(
        [command, "apply", "-f", str(EXAMPLE / "definitions")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert applied.returncode == 0, applied.stderr
    listed = subprocess.run(
        [command, "feature-tables", "list", "-o", "json"], capture_output=True, text=True, env=env
    )
    assert {t["name"] for t in json.loads(listed.stdout)} == {"driver_stats", "customer_profile"}
    missing = subprocess.run(
        [command, "entities", "describe", "nope"], capture_output=True, text=True, env=env
    )
    assert missing.returncode == 1 and missing.stderr.startswith("Error: entity 'nope' not found")
