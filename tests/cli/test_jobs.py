"""``feast-spark jobs ...`` and ``--wait/--no-wait``, with a stand-in spark-submit (no JVM).

``FEAST_SPARK_SPARK_HOME`` points the launcher at a folder whose ``bin/spark-submit`` runs the
job file with this Python; ``FEAST_SPARK_JOBS_DIR`` at job files that read the spec they are
given and write a result record, as jobs/ingest.py does.
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from feast_spark.cli import cli
from feast_spark.cli.context import handle_errors
from feast_spark.cli.wait import progress_line, run_or_print, wait_options
from feast_spark.config import load_config
from feast_spark.definitions import Entity, Feature, FeatureTable, FileSource
from feast_spark.errors import ArgumentError
from feast_spark.launcher import JobConflictError, JobRecord, JobState, Launcher, Progress
from feast_spark.specs import JobSpec, Window

from ..launcher.test_process_jobs import FAKE_SPARK_SUBMIT

SPEC_JOB = """
    import argparse, json, sys, time
    from datetime import UTC, datetime
    from feast_spark.job_results import FAILED, SUCCEEDED, JobResult, write_result
    from feast_spark.specs import JobSpec
    from feast_spark.storage import read_text
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", required=True)
    spec = JobSpec.from_json(read_text(parser.parse_args().spec))
    now = datetime.now(UTC)
    table = spec.feature_tables[0].name
    if table == "slow":
        time.sleep(120)
    if table == "broken":
        write_result(spec.result_path, JobResult(spec.job_id, spec.job_type, FAILED, now, now,
                     window=spec.window, error=f"source of {table} has no column 'trip_count'"))
        sys.exit(1)
    write_result(spec.result_path, JobResult(spec.job_id, spec.job_type, SUCCEEDED, now, now,
                 window=spec.window, rows_read=10, rows_written=9, rows_rejected=1, delta_version=3))
"""

T0 = datetime(2024, 1, 1, tzinfo=UTC)
T1 = datetime(2024, 1, 2, tzinfo=UTC)


@pytest.fixture()
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A feature_store.yaml (local launcher), a stand-in Spark and a jobs/ folder."""
    spark_home = tmp_path / "spark"
    (spark_home / "bin").mkdir(parents=True)
    fake = spark_home / "bin" / "spark-submit"
    fake.write_text(FAKE_SPARK_SUBMIT)
    fake.chmod(0o755)
    jobs = tmp_path / "jobs_dir"
    jobs.mkdir()
    for job_type in ("ingest", "materialize"):
        (jobs / f"{job_type}.py").write_text(textwrap.dedent(SPEC_JOB))
    monkeypatch.setenv("FEAST_SPARK_SPARK_HOME", str(spark_home))
    monkeypatch.setenv("FEAST_SPARK_JOBS_DIR", str(jobs))
    monkeypatch.setenv("FEAST_SPARK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)
    config = {
        "project": "demo",
        "registry": "registry.json",
        "offline_store": {"path": "offline"},
        "launcher": {"type": "local", "job_store": "job_store"},
    }
    (tmp_path / "feature_store.yaml").write_text(yaml.safe_dump(config))
    yield tmp_path
    launcher = Launcher.from_config(load_config(tmp_path))
    for record in launcher.store.list():
        if not record.state.is_final:
            launcher.get(record.job_id).cancel(timeout=30)


def spec(job_id: str, table: str, job_type: str = "ingest") -> JobSpec:
    driver = Entity("driver_id", "INT64")
    source = FileSource(path="/data/x.parquet", file_format="parquet", event_timestamp_column="ts")
    feature_table = FeatureTable(table, ("driver_id",), (Feature("trips", "INT64"),), source)
    return JobSpec(
        job_id, job_type, "demo", (driver,), (feature_table,), "/offline", Window(T0, T1)
    )


def invoke(repo: Path, *args: str) -> click.testing.Result:
    return CliRunner().invoke(cli, [*args, "--config", str(repo)], catch_exceptions=False)


def test_submit_writes_the_spec_and_the_job_reads_it(repo: Path) -> None:
    # given the launcher of the config
    launcher = Launcher.from_config(load_config(repo))

    # when a spec is submitted
    job = launcher.submit(spec("ingest-trips-1", "trips"))

    # then the job got --spec <store>/<id>/spec.json and wrote its result where the spec said
    assert job.wait(60, poll_interval=0.2) is JobState.SUCCEEDED, job.logs()
    record = job.record
    assert record.command[-2:] == ("--spec", launcher.store.path("ingest-trips-1", "spec.json"))
    assert record.result_path == launcher.store.path("ingest-trips-1", "result.json")
    assert JobSpec.from_json(launcher.store.read_text(job.id, "spec.json") or "").job_id == job.id
    assert record.result is not None and record.result["rows_written"] == 9
    assert (record.tables, record.project, record.window) == (("trips",), "demo", Window(T0, T1))
    # and the command ships the feast_spark zip, the Delta jars and the defaults as --conf
    command = list(record.command)
    assert command[command.index("--py-files") + 1].endswith(".zip")
    assert "--jars" in command or "--packages" in command
    assert "spark.sql.session.timeZone=UTC" in command


def test_jobs_list_describe_logs(repo: Path) -> None:
    launcher = Launcher.from_config(load_config(repo))
    ok = launcher.submit(spec("ingest-trips-2", "trips"))
    bad = launcher.submit(spec("ingest-broken-1", "broken"))
    ok.wait(60, poll_interval=0.2)
    bad.wait(60, poll_interval=0.2)

    listed = invoke(repo, "jobs", "list", "--output", "json")
    assert listed.exit_code == 0, listed.output
    assert {j["job_id"]: j["state"] for j in json.loads(listed.output)} == {
        "ingest-trips-2": "SUCCEEDED",
        "ingest-broken-1": "FAILED",
    }
    failed = invoke(repo, "jobs", "list", "--state", "failed", "--table", "broken")
    assert failed.output.splitlines()[1].split()[:3] == ["ingest-broken-1", "ingest", "FAILED"]
    assert len(failed.output.splitlines()) == 2

    described = invoke(repo, "jobs", "describe", "ingest-broken-1", "--output", "json")
    assert json.loads(described.output)["error"] == "source of broken has no column 'trip_count'"
    assert (
        "error: source of broken has no column"
        in invoke(repo, "jobs", "describe", "ingest-broken-1").output
    )

    logs = invoke(repo, "jobs", "logs", "ingest-trips-2", "--tail", "1")
    assert logs.exit_code == 0 and len(logs.output.splitlines()) == 1


def test_unknown_job_is_one_line_and_exit_1(repo: Path) -> None:
    result = CliRunner().invoke(cli, ["jobs", "describe", "nope", "--config", str(repo)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: job 'nope' not found: no record in {repo / 'job_store'}; see 'feast-spark jobs list'"
    ]


def test_wait_and_cancel_commands(repo: Path) -> None:
    launcher = Launcher.from_config(load_config(repo))
    slow = launcher.submit(spec("ingest-slow-1", "slow"))
    broken = launcher.submit(spec("ingest-broken-2", "broken"))

    # wait on a failing job: exit 1 with the job's own error on one line
    waited = CliRunner().invoke(cli, ["jobs", "wait", "ingest-broken-2", "--config", str(repo)])
    assert waited.exit_code == 1
    assert waited.output.splitlines()[-1] == (
        "Error: job 'ingest-broken-2' FAILED: source of broken has no column 'trip_count'"
    )

    # wait with a timeout on a slow job: exit 1, the job keeps running
    timed = CliRunner().invoke(
        cli, ["jobs", "wait", "ingest-slow-1", "--timeout", "1", "--config", str(repo)]
    )
    assert timed.exit_code == 1
    assert "is still RUNNING after waiting 1s" in timed.output
    assert slow.status() is JobState.RUNNING

    # cancel it
    cancelled = invoke(repo, "jobs", "cancel", "ingest-slow-1")
    assert cancelled.output.strip() == "job ingest-slow-1 CANCELLED"
    assert invoke(repo, "jobs", "cancel", "ingest-slow-1").output.strip() == (
        "job ingest-slow-1 had already ended: CANCELLED"
    )
    assert broken.status() is JobState.FAILED


@click.command()
@click.argument("table")
@wait_options
@handle_errors
def fake_ingest(table: str, wait: bool, timeout: float | None) -> None:
    """How a launching command uses wait_options and run_or_print."""
    import os

    launcher = Launcher.from_config(load_config(os.environ["TEST_REPO"]))
    run_or_print(launcher.submit(spec(f"ingest-{table}-cli", table)), wait, timeout=timeout)


def test_run_or_print_waits_by_default_and_fails_the_command(repo: Path) -> None:
    env = {"TEST_REPO": str(repo)}
    ok = CliRunner().invoke(fake_ingest, ["trips"], env=env)
    assert ok.exit_code == 0, ok.output
    assert ok.output.splitlines()[-1].startswith("job ingest-trips-cli SUCCEEDED in ")
    assert ok.output.splitlines()[-1].endswith(
        ": rows_read=10, rows_written=9, rows_rejected=1, delta_version=3"
    )

    bad = CliRunner().invoke(fake_ingest, ["broken"], env=env)
    assert bad.exit_code == 1
    assert bad.output.splitlines()[-1] == (
        "Error: job 'ingest-broken-cli' FAILED: source of broken has no column 'trip_count'"
    )

    no_wait = CliRunner().invoke(fake_ingest, ["slow", "--no-wait"], env=env)
    assert no_wait.exit_code == 0
    assert no_wait.output.strip() == "ingest-slow-cli"


def test_an_overlapping_ingest_is_refused_by_the_cli(repo: Path) -> None:
    env = {"TEST_REPO": str(repo)}
    first = CliRunner().invoke(fake_ingest, ["slow", "--no-wait"], env=env)
    assert first.exit_code == 0
    launcher = Launcher.from_config(load_config(repo))
    with pytest.raises(JobConflictError, match="already writes table .slow."):
        launcher.submit(spec("ingest-slow-again", "slow"))


def test_progress_line() -> None:
    record = JobRecord(
        job_id="m-1", job_type="materialize", state=JobState.RUNNING, target="local",
        deploy_mode="client", master="local[2]", submitted_at=T0,
    )  # fmt: skip
    progress = Progress(
        "app-1", stages_done=1, stages_total=3, tasks_done=5, tasks_total=9, tasks_active=2
    )
    assert (
        progress_line(record, progress, 75)
        == "m-1: RUNNING, stages 1/3, tasks 5/9 (2 running) [01:15]"
    )
    assert progress_line(record, None, 5) == "m-1: RUNNING [00:05]"


def test_prune_deletes_ended_jobs_with_their_staged_inputs_and_keeps_running_ones(
    repo: Path,
) -> None:
    # given two ended jobs, one with staged inputs, and a running one
    launcher = Launcher.from_config(load_config(repo))
    ok = launcher.submit(spec("ingest-trips-9", "trips"))
    bad = launcher.submit(spec("ingest-broken-9", "broken"))
    slow = launcher.submit(spec("ingest-slow-9", "slow"))
    assert ok.wait(60, poll_interval=0.2) is JobState.SUCCEEDED
    assert bad.wait(60, poll_interval=0.2) is JobState.FAILED
    staged = repo / "staging" / "ingest-trips-9"
    staged.mkdir(parents=True)
    (staged / "source.parquet").write_bytes(b"PAR1")

    # when jobs older than an hour are pruned, then none is
    assert invoke(repo, "jobs", "prune", "--older-than", "1h", "--output", "json").output == "[]\n"

    # when every ended job is pruned in a dry run, then both are listed and nothing is deleted
    dry = invoke(repo, "jobs", "prune", "--older-than", "0", "--dry-run", "--output", "json")
    listed = {j["job_id"]: j for j in json.loads(dry.output)}
    assert sorted(listed) == ["ingest-broken-9", "ingest-trips-9"]
    assert listed["ingest-trips-9"]["removed"] == [
        launcher.store.path("ingest-trips-9", "").rstrip("/"), f"{repo}/staging/ingest-trips-9"
    ]  # fmt: skip
    assert staged.exists() and launcher.store.exists("ingest-trips-9")

    # when they are pruned for real
    pruned = invoke(repo, "jobs", "prune", "--older-than", "0s")

    # then the ended jobs and their staged inputs are gone; the running job is untouched
    assert pruned.exit_code == 0, pruned.output
    lines = pruned.output.splitlines()
    assert lines[0].split() == ["ID", "TYPE", "STATE", "ENDED", "REMOVED"]
    assert sorted(line.split()[:3] for line in lines[1:3]) == [
        ["ingest-broken-9", "ingest", "FAILED"], ["ingest-trips-9", "ingest", "SUCCEEDED"]
    ]  # fmt: skip
    assert lines[3:] == ["deleted 2 jobs"]
    assert not staged.exists()
    assert [r.job_id for r in launcher.store.list()] == ["ingest-slow-9"]
    assert slow.status() is JobState.RUNNING
    # and a bad duration is a usage error naming the option, exit 2
    bad_age = CliRunner().invoke(
        cli, ["jobs", "prune", "--older-than", "soon", "--config", str(repo)]
    )
    assert bad_age.exit_code == 2
    assert "Error: Invalid value for '--older-than': 'soon' is not a duration" in bad_age.output


def test_prune_counts_age_from_the_end_of_the_job(repo: Path) -> None:
    launcher = Launcher.from_config(load_config(repo))
    job = launcher.submit(spec("ingest-trips-10", "trips"))
    job.wait(60, poll_interval=0.2)
    ended = launcher.store.get("ingest-trips-10").ended_at
    assert ended is not None
    hour = timedelta(hours=1)
    assert launcher.prune(hour, now=ended + hour - timedelta(seconds=1)) == []
    assert [p.record.job_id for p in launcher.prune(hour, now=ended + hour)] == ["ingest-trips-10"]
    with pytest.raises(ArgumentError, match="must not be negative"):
        launcher.prune(-hour)


def test_abandon_marks_a_job_of_a_gone_host_and_list_reports_damaged_records(repo: Path) -> None:
    # given a RUNNING job recorded on a machine that is gone, and a damaged record
    from datetime import UTC, datetime

    from feast_spark.launcher import JobRecord, JobState, JobStore

    store = JobStore(str(repo / "job_store"))
    store.create(JobRecord(job_id="ingest-far-1", job_type="ingest", state=JobState.RUNNING,
                           target="local", deploy_mode="client", master="local[1]",
                           submitted_at=datetime.now(UTC), host="gone-host"))  # fmt: skip
    (repo / "job_store" / "cut-1").mkdir()
    (repo / "job_store" / "cut-1" / "job.json").write_text("{")

    # when it is abandoned, then listed
    abandoned = invoke(repo, "jobs", "abandon", "ingest-far-1", "--reason", "host decommissioned")
    listed = CliRunner().invoke(cli, ["jobs", "list", "--config", str(repo)])

    # then it is ABANDONED with the reason, and the listing warns about the damaged record
    assert "ABANDONED" in abandoned.output and "host decommissioned" in abandoned.output
    assert store.get("ingest-far-1").state is JobState.ABANDONED
    assert listed.exit_code == 0
    assert "cut-1/job.json" in listed.stderr and "not a readable job record" in listed.stderr
