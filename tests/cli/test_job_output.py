"""Commands that start jobs print JSON on request; the Python client lists and finds jobs.

Uses the stand-in spark-submit of ``test_jobs`` (no JVM): each job writes a result record.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from feast_spark.cli import cli
from feast_spark.client import Client
from feast_spark.errors import NotFoundError
from feast_spark.launcher import JobState

from .test_jobs import SPEC_JOB, repo  # noqa: F401 - the fixture

DEFINITIONS = """
kind: Entity
name: driver_id
value_type: INT64
---
kind: FeatureTable
name: {name}
entities: [driver_id]
features: [{{name: trips, dtype: INT64}}]
batch_source: {{type: file, path: data/{name}.parquet, event_timestamp_column: ts}}
"""
INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00$")


@pytest.fixture
def project(repo: Path) -> Path:  # noqa: F811 - the imported fixture
    """The stand-in repo with tables ``trips`` (its jobs succeed) and ``broken`` (they fail)."""
    for name in ("trips", "broken"):
        (repo / f"{name}.yaml").write_text(DEFINITIONS.format(name=name))
        assert invoke(repo, "apply", "-f", str(repo / f"{name}.yaml")).exit_code == 0
    jobs = repo / "jobs_dir"
    for job_type in ("historical_retrieval", "maintenance"):
        (jobs / f"{job_type}.py").write_text(textwrap.dedent(SPEC_JOB))
    return repo


def invoke(folder: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--config", str(folder)])


def instants(document: dict[str, object]) -> list[str]:
    found = [v for k, v in document.items() if k.endswith("_at") and v is not None]
    window = document.get("window")
    if isinstance(window, dict):
        found += [v for v in window.values() if v is not None]
    return [str(v) for v in found]


COMMANDS = [
    ["ingest", "trips", "--start", "2024-01-01", "--end", "2024-01-02"],
    ["materialize", "trips", "--start", "2024-01-01", "--end", "2024-01-02"],
    ["materialize-incremental", "trips", "--end", "2024-01-02"],
    ["offline", "compact", "trips"],
    ["offline", "vacuum", "trips"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a[:2]))
@pytest.mark.parametrize("wait", ["--wait", "--no-wait"])
def test_commands_that_start_jobs_print_the_job_record_as_json(
    project: Path, args: list[str], wait: str
) -> None:
    # when a job-starting command is asked for JSON
    result = invoke(project, *args, wait, "--output", "json")
    # then stdout is one JSON object: the job's record, as `jobs describe -o json` prints it
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert isinstance(record, dict)
    assert record["tables"] == ["trips"]
    if wait == "--wait":
        assert record["state"] == "SUCCEEDED"
        assert record["result"]["rows_written"] == 9
    else:
        assert record["state"] in ("PENDING", "RUNNING", "SUCCEEDED")
    assert all(INSTANT.match(value) for value in instants(record)), instants(record)
    described = invoke(project, "jobs", "wait", record["job_id"], "--output", "json")
    assert json.loads(described.stdout).keys() == record.keys()


def test_get_historical_features_prints_json_and_writes_to_output_path(project: Path) -> None:
    entities = project / "entities.parquet"
    import pandas as pd

    # microseconds: Spark cannot read pandas' default nanosecond timestamps (refused up front)
    pd.DataFrame({"driver_id": [1], "event_timestamp": [pd.Timestamp("2024-01-01", tz="UTC")]}
                 ).to_parquet(entities, coerce_timestamps="us")  # fmt: skip
    args = ["get-historical-features", "--features", "trips:trips", "--entities", str(entities)]
    result = invoke(project, *args, "--output-path", str(project / "out"), "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["job_type"] == "historical_retrieval"
    # a dataset location given as --output (its name before --output-path) is explained
    old = invoke(project, *args, "--output", str(project / "out2"))
    assert old.exit_code == 2
    assert "get-historical-features writes its dataset to --output-path" in old.output


def test_a_failed_job_prints_its_record_then_fails(project: Path) -> None:
    result = invoke(project, "ingest", "broken", "--output", "json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["state"] == "FAILED"
    assert result.stderr.splitlines()[-1] == (
        f"Error: job '{json.loads(result.stdout)['job_id']}' FAILED: "
        "source of broken has no column 'trip_count'"
    )


def test_listings_and_describes_have_one_shape(project: Path) -> None:
    # given a finished job
    assert invoke(project, "ingest", "trips").exit_code == 0
    # then every listing is a list of the objects its describe prints, instants alike
    for listing, describe in (
        (["entities", "list"], ["entities", "describe", "driver_id"]),
        (["feature-tables", "list"], ["feature-tables", "describe", "trips"]),
        (["jobs", "list"], None),
        (["projects", "list"], None),
    ):
        items = json.loads(invoke(project, *listing, "-o", "json").stdout)
        assert isinstance(items, list) and all(isinstance(i, dict) for i in items), listing
        assert all(INSTANT.match(v) for item in items for v in instants(item)), listing
        if describe is not None:
            one = json.loads(invoke(project, *describe, "-o", "json").stdout)
            assert one in items
    job = json.loads(invoke(project, "jobs", "list", "-o", "json").stdout)[0]
    described = json.loads(invoke(project, "jobs", "describe", job["job_id"], "-o", "json").stdout)
    assert described["submitted_at"] == job["submitted_at"]
    (listed,) = json.loads(invoke(project, "projects", "list", "-o", "json").stdout)
    assert listed == {
        "name": "demo", "created_at": listed["created_at"], "entities": 1, "feature_tables": 2
    }  # fmt: skip


def test_client_lists_and_gets_jobs_as_feast_spark_0_2_did(project: Path) -> None:
    # given a finished and a running job of this project
    client = Client(project / "feature_store.yaml")
    done = client.ingest("trips")
    assert done.wait(60) is JobState.SUCCEEDED
    running = client.ingest("broken")
    # when listed and fetched through the client
    listed = client.list_jobs()
    # then both are there, newest first, as job handles; get_job finds one by id
    assert [job.id for job in listed] == [running.id, done.id]
    assert client.get_job(done.id).status() is JobState.SUCCEEDED
    assert [job.id for job in client.list_jobs(table_name="trips")] == [done.id]
    running.wait(60)
    assert client.list_jobs(include_terminated=False) == []
    with pytest.raises(NotFoundError, match="job 'nope' not found"):
        client.get_job("nope")


def test_the_progress_line_fits_an_80_column_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    from datetime import UTC, datetime

    from feast_spark.cli import wait as cli_wait
    from feast_spark.launcher import JobRecord, Progress

    # given a job with a long id, far into a big Spark job, on an 80-column terminal
    record = JobRecord(
        job_id="historical_retrieval-driver-stats-20240201T000000-a1b2c3d4",
        job_type="historical_retrieval", state=JobState.RUNNING, target="local",
        deploy_mode="client", master="local[2]", submitted_at=datetime(2024, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    progress = Progress(
        "app-1", stages_done=118, stages_total=240, tasks_done=15_000, tasks_total=40_000,
        tasks_active=128,
    )  # fmt: skip
    monkeypatch.setenv("COLUMNS", "80")
    stderr = io.StringIO()
    stderr.isatty = lambda: True  # type: ignore[method-assign]
    monkeypatch.setattr(cli_wait.sys, "stderr", stderr)
    printer = cli_wait.ProgressPrinter(record.job_id)
    # when progress is shown, twice (the line is rewritten in place)
    printer(record, progress)
    printer(record, None)
    printer.close()
    # then every rewrite fits in 79 columns, keeps the counts and time, and shortens the id
    shown = stderr.getvalue().split("\r")[1:]
    assert all(len(line.rstrip("\n")) <= 79 for line in shown), [len(x) for x in shown]
    assert (
        shown[0]
        .rstrip()
        .endswith(": RUNNING, stages 118/240, tasks 15000/40000 (128 running) [00:00]")
    )
    assert shown[0].startswith("historical_r…: RUNNING")
    # and a wide terminal shows it whole
    assert cli_wait.progress_line(record, progress, 0, width=200).startswith(record.job_id + ":")
    assert len(cli_wait.progress_line(record, progress, 0, width=30)) == 30
