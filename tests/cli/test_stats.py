"""``feast-spark stats``: the last ingests side by side, flags, JSON and an HTML report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from feast_spark.cli import cli
from feast_spark.client import Client
from feast_spark.statistics import write_statistics

from ..test_statistics import ingest

REPO = Path(__file__).parents[2]
EXAMPLE = REPO / "conf" / "example"
CONFIG = "project: demo\nregistry: data/registry.json\noffline_store: {path: data/offline}\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project with the example definitions and three ingests of driver_stats recorded."""
    (tmp_path / "feature_store.yaml").write_text(CONFIG)
    assert run(tmp_path, "apply", "-f", str(EXAMPLE / "definitions"))[0] == 0
    client = Client(str(tmp_path))
    table_path = f"{client.config.offline_store.path}/demo/driver_stats"
    for record in [ingest(0), ingest(1, nulls=3), ingest(2, nulls=30, quartiles=(50, 60, 70))]:
        write_statistics(table_path, record)
    return tmp_path


def run(project: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--config", str(project), *args])
    return result.exit_code, result.stdout, result.stderr


def test_stats_shows_the_last_ingests_side_by_side_and_flags(project: Path) -> None:
    code, out, _ = run(project, "stats", "driver_stats", "--versions", "2")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["FEATURE", "FIGURE", "V1", "V2"]
    assert lines[1].split() == ["job", "job-1", "job-2"]
    assert ["trips", "nulls", "3", "(3.0%)", "30", "(30.0%)"] in [line.split() for line in lines]
    assert ["trips", "q25/50/75", "10/20/30", "50/60/70"] in [line.split() for line in lines]
    assert "FLAG trips v2 (against v1): null fraction 3.0% -> 30.0%" in out
    assert "FLAG trips v2 (against v1): median 60 outside the previous" in out


def test_stats_json_and_fail_on_drift(project: Path) -> None:
    code, out, _ = run(project, "stats", "driver_stats", "-o", "json", "--fail-on-drift")
    assert code == 1  # flagged: a scheduler can alert
    document = json.loads(out)
    assert [i["version"] for i in document["ingests"]] == [0, 1, 2]
    assert document["ingests"][0]["features"][0]["quantiles"][3] == 20.0
    assert {(f["feature"], f["rule"]) for f in document["flags"]} == {
        ("trips", "nulls"),
        ("trips", "median"),
    }
    code, _, _ = run(project, "stats", "driver_stats", "--null-threshold", "0.5", "-k", "2")
    assert code == 0


def test_stats_html_report_has_a_plot_per_feature(project: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    code, _, _ = run(project, "stats", "driver_stats", "--html", str(report))
    assert code == 0
    page = report.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 2
    assert "<h2>trips</h2>" in page and "<h2>label</h2>" in page and "#c0392b" in page
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org", "")


def test_stats_of_a_table_without_statistics_and_of_an_unknown_table(project: Path) -> None:
    code, out, _ = run(project, "stats", "customer_profile")
    assert (code, out.strip()) == (0, "customer_profile: no ingest recorded feature statistics yet")
    code, _, err = run(project, "stats", "nope")
    assert code == 1 and "nope" in err and "Traceback" not in err


def test_stats_html_to_a_path_that_cannot_be_written_is_a_usage_error(
    project: Path, tmp_path: Path
) -> None:
    # given an --html path in a folder that does not exist
    report = tmp_path / "no-such-folder" / "report.html"
    # when the report is asked for
    code, out, err = run(project, "stats", "driver_stats", "--html", str(report))
    # then it is a usage error (exit 2, as an --html directory is) naming the option, the path,
    # the reason and the fix, in one line of its own; no table is printed as if all went well
    assert code == 2, (code, out, err)
    error_lines = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1
    assert "'--html'" in error_lines[0] and str(report) in error_lines[0]
    assert "No such file or directory" in error_lines[0] and "writable" in error_lines[0]
    assert out == "" and not report.exists()
