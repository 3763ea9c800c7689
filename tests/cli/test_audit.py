"""``feast-spark audit TABLE``: prints the audit job's report and exits 1 when anything differs.

Uses the stand-in spark-submit of ``test_jobs`` (no JVM): the stand-in audit job writes a result
record whose report is consistent for table ``clean`` and lists findings for table ``drifted``.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from feast_spark.cli import cli

from .test_jobs import repo  # noqa: F401 - the fixture

AUDIT_JOB = """
    import argparse
    from datetime import UTC, datetime
    from feast_spark.audit import AuditReport, Finding, Tally
    from feast_spark.job_results import SUCCEEDED, JobResult, read_text, write_result
    from feast_spark.specs import JobSpec
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", required=True)
    spec = JobSpec.from_json(read_text(parser.parse_args().spec))
    now = datetime.now(UTC)
    table = spec.feature_tables[0].name
    tally = Tally(spec.options.examples)
    for key in range(10):
        tally.add(None)
    if table == "drifted":
        tally.add(Finding("missing_online", {"driver_id": 1},
                          offline={"event_timestamp": "2024-01-01T00:00:00.000000+00:00"}))
        tally.add(Finding("differs", {"driver_id": 2}, ("rate",), {"rate": 0.5}, {"rate": 0.7}))
    report = AuditReport.from_records(
        tally.records(), table=table, online_table="demo__" + table, store="sqlite",
        audited_at=now, sample=spec.options.sample, examples=spec.options.examples)
    write_result(spec.result_path, JobResult(spec.job_id, spec.job_type, SUCCEEDED, now, now,
                 rows_read=report.keys_checked, details=report.to_dict()))
"""
DEFINITIONS = """
kind: Entity
name: driver_id
value_type: INT64
---
kind: FeatureTable
name: {name}
entities: [driver_id]
features: [{{name: rate, dtype: DOUBLE}}]
batch_source: {{type: file, path: data/{name}.parquet, event_timestamp_column: ts}}
"""


ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:  # noqa: F811 - the fixture
    # the stand-in job imports feast_spark from this checkout (not another installed copy)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    for name in ("clean", "drifted"):
        (repo / f"{name}.yaml").write_text(DEFINITIONS.format(name=name))
        assert invoke(repo, "apply", "-f", str(repo / f"{name}.yaml")).exit_code == 0
    (repo / "jobs_dir" / "audit.py").write_text(textwrap.dedent(AUDIT_JOB))
    return repo


def invoke(folder: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--config", str(folder)])


def test_a_consistent_table_prints_its_counts_and_exits_0(project: Path) -> None:
    result = invoke(project, "audit", "clean")
    assert result.exit_code == 0, result.output
    assert "all keys, 10 checked" in result.stdout
    assert result.stdout.splitlines()[-1] == "consistent"


def test_differences_print_counts_cells_and_examples_and_exit_1(project: Path) -> None:
    # when a drifted table is audited
    result = invoke(project, "audit", "drifted")

    # then it exits 1 and shows the counts, the differing cells and the examples
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert ["missing_online", "1"] in [line.split() for line in lines]
    assert ["differs", "1"] in [line.split() for line in lines]
    assert any(line.split()[:3] == ["differs", "driver_id=2", "rate"] for line in lines)
    assert "rate=0.5" in result.stdout and "rate=0.7" in result.stdout
    assert lines[-1] == "INCONSISTENT (exit status 1)"


def test_json_output_is_the_report_and_the_exit_status_still_says_it(project: Path) -> None:
    result = invoke(project, "audit", "drifted", "--sample", "10", "--examples", "1", "-o", "json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["consistent"] is False and report["sample"] == 10
    assert report["counts"] == {"missing_online": 1, "online_only": 0, "differs": 1}
    assert [e["key"] for e in report["examples"]["differs"]] == [{"driver_id": 2}]


def test_sample_and_all_together_are_a_usage_error(project: Path) -> None:
    result = invoke(project, "audit", "clean", "--sample", "5", "--all")
    assert result.exit_code == 2
    assert "--sample" in result.output
