"""kill -9 of a job's driver at a known phase, then a rerun: nothing lost, nothing doubled.

Jobs are launched as a user launches them (``Client`` -> launcher -> supervisor -> spark-submit,
local master, SQLite online store, a few rows). The test-only hook of
:mod:`feast_spark.spark.job_entry` (``FEAST_SPARK_TEST_PAUSE_AT``) makes the job print
``feast-spark: paused at <phase>`` and wait there, so the SIGKILL lands deterministically:

- ``session``: the driver is up, nothing read or written yet;
- ``committed``: the job's Delta commit (ingest), online writes (materialize) or dataset
  (retrieval) are done, its result record is not written yet.

The kill hits spark-submit's whole process group (the JVM and the Python driver), as an OOM
killer or an operator would; the launcher's supervisor survives and records the exit. Then:
the job record says FAILED and why, the Delta log is readable with no partial commit, a rerun
gives exactly the rows of a clean run (no duplicates), and a killed incremental materialization
leaves the high-water mark where it was.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from feast_spark.client import Client
from feast_spark.definitions import Entity, Feature, FeatureTable, FileSource
from feast_spark.launcher import Job, JobState
from feast_spark.spark.job_entry import PAUSE_AT_ENV, PAUSE_S_ENV
from feast_spark.types import ValueType

pytestmark = pytest.mark.fault

T0 = datetime(2024, 1, 1, tzinfo=UTC)
KEYS = 4
HOURS = 6
CONFIG = """\
project: faults
registry: data/registry.json
offline_store: {path: data/offline}
spark:
  master: "local[1]"
  conf:
    spark.ui.enabled: "false"
    spark.ui.showConsoleProgress: "false"
    spark.sql.shuffle.partitions: "1"
    spark.default.parallelism: "1"
    spark.databricks.delta.snapshotPartitions: "1"
launcher: {type: local}
"""
WAIT_S = 1200.0  # a loaded CI machine runs a tiny job in minutes
TIMINGS: list[str] = []


def source_rows() -> pd.DataFrame:
    """KEYS drivers x HOURS hourly rows; the rate says which (key, hour) it is."""
    rows = [
        {"driver_id": key, "event_timestamp": T0 + timedelta(hours=hour), "rate": key + hour / 100}
        for key in range(1, KEYS + 1)
        for hour in range(HOURS)
    ]
    frame = pd.DataFrame(rows)
    frame["event_timestamp"] = frame["event_timestamp"].astype("datetime64[us, UTC]")
    return frame


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("faults")
    (folder / "feature_store.yaml").write_text(CONFIG)
    (folder / "data").mkdir()
    pq.write_table(pa.Table.from_pandas(source_rows(), preserve_index=False),
                   folder / "data" / "trips.parquet")  # fmt: skip
    client = Client(folder / "feature_store.yaml")
    client.apply(
        Entity("driver_id", ValueType.INT64),
        FeatureTable(
            "trips", ["driver_id"], [Feature("rate", "DOUBLE")],
            FileSource(path=str(folder / "data" / "trips.parquet"),
                       event_timestamp_column="event_timestamp"),
        ),
    )  # fmt: skip
    yield folder
    for record in client.launcher.list():  # stop anything a failed test left running
        if not record.state.is_final:
            client.launcher.get(record.job_id).cancel(timeout=60)
    client.close()


def client_of(repo: Path) -> Client:
    return Client(repo / "feature_store.yaml")


def kill_driver_at(job: Job, phase: str, marker: str | None = None) -> float:
    """SIGKILL spark-submit's group once the log shows ``marker`` (default: the pause at
    ``phase``); return the seconds from launch to the kill."""
    text = marker or f"feast-spark: paused at {phase}"
    started = time.monotonic()
    deadline = started + WAIT_S
    while text not in job.logs():
        assert not job.status().is_final, f"ended before {phase}: {job.record.error}"
        assert time.monotonic() < deadline, f"never reached {phase}:\n{job.logs()[-2000:]}"
        time.sleep(0.2)
    process = job._store.read_json(job.id, "process.json") or {}
    os.killpg(int(process["child_pid"]), signal.SIGKILL)
    return time.monotonic() - started


def launch_paused(monkeypatch: pytest.MonkeyPatch, phase: str | None, launch: object) -> Job:
    if phase is None:  # killed on a log line, not paused
        return launch()  # type: ignore[operator,no-any-return]
    monkeypatch.setenv(PAUSE_AT_ENV, phase)
    monkeypatch.setenv(PAUSE_S_ENV, "600")
    try:
        return launch()  # type: ignore[operator,no-any-return]
    finally:
        monkeypatch.delenv(PAUSE_AT_ENV)


def check_killed(job: Job, phase: str, to_kill_s: float) -> None:
    """The record says FAILED, killed by SIGKILL; the supervisor recorded the exit."""
    before = time.monotonic()
    state = job.wait(120, poll_interval=0.5)
    record = job.record
    assert state is JobState.FAILED, record.error
    assert record.exit_code == -signal.SIGKILL
    assert "killed by signal SIGKILL" in (record.error or "")
    TIMINGS.append(
        f"{record.job_type} killed at '{phase}' {to_kill_s:.1f}s after launch, "
        f"recorded FAILED {time.monotonic() - before:.1f}s later"
    )


def delta_log(table_path: Path) -> list[dict[str, object]]:
    """Every action of every commit; each file must be whole JSON lines (no partial commit)."""
    actions = []
    commits = sorted((table_path / "_delta_log").glob("*.json"))
    assert commits, f"no Delta log at {table_path}"
    for number, commit in enumerate(commits):
        assert commit.name == f"{number:020d}.json"  # versions without a gap
        for line in commit.read_text().splitlines():
            actions.append(json.loads(line))  # whole JSON lines: no half-written commit
    return actions


def offline_rows(repo: Path) -> pd.DataFrame:
    """The table's rows as Delta's log says (live files only), sorted."""
    table = repo / "data" / "offline" / "faults" / "trips"
    actions = delta_log(table)
    live: dict[str, bool] = {}
    for action in actions:
        if "add" in action:
            live[action["add"]["path"]] = True  # type: ignore[index]
        if "remove" in action:
            live.pop(action["remove"]["path"], None)  # type: ignore[index]
    frames = [pq.read_table(table / unquote(path)).to_pandas() for path in live]
    rows = pd.concat(frames) if frames else pd.DataFrame()
    return (
        rows[["driver_id", "event_timestamp", "rate"]]
        .sort_values(["driver_id", "event_timestamp"])
        .reset_index(drop=True)
    )


# --- ingest ---------------------------------------------------------------------------------------


# (phase, log line that triggers the kill; None: the job pauses at the phase)
INGEST_PHASES = [
    ("session", None),  # driver up, nothing read
    ("write", "(save at NativeMethodAccessorImpl.java:0) with"),  # the Delta write runs
    ("commit", "Attempting to commit version"),  # Delta is writing its commit file
    ("committed", None),  # the commit is done, the result record is not
]


@pytest.mark.parametrize(("phase", "marker"), INGEST_PHASES, ids=[p for p, _ in INGEST_PHASES])
def test_ingest_killed_then_rerun_gives_the_clean_rows(
    repo: Path, monkeypatch: pytest.MonkeyPatch, phase: str, marker: str | None
) -> None:
    client = client_of(repo)
    window = {"start": T0, "end": T0 + timedelta(hours=HOURS)}

    # given an ingest whose driver is killed at the phase
    job = launch_paused(
        monkeypatch, None if marker else phase, lambda: client.ingest("trips", **window)
    )
    check_killed(job, phase, kill_driver_at(job, phase, marker))

    # then the Delta log is whole (the commit is there entirely, or not at all)
    table = repo / "data" / "offline" / "faults" / "trips"
    if list(table.glob("_delta_log/*.json")):  # killed before the table's first commit: none
        delta_log(table)

    # when it is rerun, then the table holds exactly the source's rows, once
    rerun = client.ingest("trips", **window)
    assert rerun.wait(WAIT_S, poll_interval=1) is JobState.SUCCEEDED, rerun.record.error
    rows = offline_rows(repo)
    expected = source_rows().sort_values(["driver_id", "event_timestamp"]).reset_index(drop=True)
    assert not rows.duplicated(["driver_id", "event_timestamp"]).any()
    pd.testing.assert_frame_equal(rows, expected, check_dtype=False)


# --- materialize ----------------------------------------------------------------------------------


def test_materialize_killed_after_its_writes_leaves_the_mark_and_a_rerun_is_exact(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = client_of(repo)
    end = T0 + timedelta(hours=HOURS)
    if not (repo / "data" / "offline" / "faults" / "trips" / "_delta_log").exists():
        done = client.ingest("trips", start=T0, end=end)
        assert done.wait(WAIT_S, poll_interval=1) is JobState.SUCCEEDED, done.record.error
    mark_before = client.incremental.state("trips").materialized_until

    # given an incremental materialization killed once its online writes are done
    job = launch_paused(
        monkeypatch, "committed", lambda: client.materialize_incremental(["trips"], end)
    )
    assert job is not None
    check_killed(job, "committed", kill_driver_at(job, "committed"))

    # then the high-water mark did not move
    state = client.settle_incremental("trips")
    assert state.materialized_until == mark_before
    assert state.pending_job is None

    # when it is rerun, it succeeds, moves the mark to the end and serves the latest values
    rerun = client.materialize_incremental(["trips"], end)
    assert rerun is not None
    assert rerun.wait(WAIT_S, poll_interval=1) is JobState.SUCCEEDED, rerun.record.error
    assert client.settle_incremental("trips").materialized_until == end
    online = client.get_online_features(
        "trips:rate", [{"driver_id": key} for key in range(1, KEYS + 1)]
    ).to_dict()
    assert online["trips:rate"] == [key + (HOURS - 1) / 100 for key in range(1, KEYS + 1)]


# --- historical retrieval -------------------------------------------------------------------------


def test_retrieval_killed_after_writing_then_rerun_gives_the_clean_dataset(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = client_of(repo)
    end = T0 + timedelta(hours=HOURS)
    if not (repo / "data" / "offline" / "faults" / "trips" / "_delta_log").exists():
        done = client.ingest("trips", start=T0, end=end)
        assert done.wait(WAIT_S, poll_interval=1) is JobState.SUCCEEDED, done.record.error
    entity_rows = pd.DataFrame(
        {"driver_id": [1, 2, 3, 4, 9],
         "event_timestamp": [T0 + timedelta(hours=h, minutes=30) for h in (0, 2, 4, 5, 3)]}
    )  # fmt: skip
    entity_rows["event_timestamp"] = entity_rows["event_timestamp"].astype("datetime64[us, UTC]")
    output = repo / "datasets"

    # given a retrieval killed once its dataset is written, its record not yet
    killed = launch_paused(
        monkeypatch, "committed",
        lambda: client.get_historical_features("trips:rate", entity_rows,
                                               output_path=str(output / "killed")),
    )  # fmt: skip
    check_killed(killed.job, "committed", kill_driver_at(killed.job, "committed"))

    # when it is rerun (to a new output: datasets are never overwritten, a rerun to the same
    # output fails naming it), then the dataset holds the expected rows, once each
    rerun = client.get_historical_features(
        "trips:rate", entity_rows, output_path=str(output / "rerun")
    )
    frame = rerun.to_pandas().sort_values(["driver_id"]).reset_index(drop=True)
    assert list(frame["driver_id"]) == [1, 2, 3, 4, 9]
    assert frame["trips__rate"].tolist()[:4] == [1.0, 2.02, 3.04, 4.05]
    assert pd.isna(frame["trips__rate"].tolist()[4])
    # and what the killed job wrote before the kill is whole and the same
    assert (output / "killed" / "_SUCCESS").exists()
    before_kill = pq.read_table(output / "killed").to_pandas()
    before_kill = before_kill.sort_values(["driver_id"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(before_kill[frame.columns], frame)


def test_zz_report_timings() -> None:
    """Print what was killed when (pytest -s shows it; CI keeps the log)."""
    print("\n".join(["", "kill -9 timings:", *TIMINGS]))
