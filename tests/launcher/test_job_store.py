"""The job store: records round-trip, survive the process that wrote them, and filter."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from feast_spark.errors import NotFoundError
from feast_spark.launcher.job_store import JobStore, JobStoreError
from feast_spark.launcher.records import JobRecord, JobState, describe_window, overlaps
from feast_spark.specs import Window

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def record(job_id: str, **changes: object) -> JobRecord:
    base = JobRecord(
        job_id=job_id,
        job_type="materialize",
        state=JobState.RUNNING,
        target="standalone",
        deploy_mode="cluster",
        master="spark://m:7077",
        submitted_at=T0,
        project="demo",
        tables=("driver_stats",),
        window=Window(T0, T0 + timedelta(days=1)),
        command=("POST", "http://m:6066/v1/submissions/create", "{}"),
        submission_id="driver-20240101000000-0001",
        rest_url="http://m:6066",
        result={"rows_written": 3},
    )
    return JobRecord(**{**base.__dict__, **changes})  # type: ignore[arg-type]


def test_a_record_round_trips_through_json(tmp_path: Path) -> None:
    # given a store and a record with every kind of field set
    store = JobStore(str(tmp_path / "jobs"))
    original = record("materialize-a-1", ended_at=T0 + timedelta(hours=1), error="boom")

    # when it is written and read back
    written = store.create(original)
    read = store.get("materialize-a-1")

    # then it is the same record, stamped with the time it was written
    assert read == written
    assert read.updated_at is not None
    assert JobRecord.from_dict(read.to_dict()) == read
    assert read.to_dict()["duration_s"] == 3600.0


def test_create_refuses_an_existing_id(tmp_path: Path) -> None:
    store = JobStore(str(tmp_path))
    store.create(record("j-1"))
    with pytest.raises(JobStoreError, match="exists already"):
        store.create(record("j-1"))


def test_unknown_job_is_not_found_and_bad_ids_are_refused(tmp_path: Path) -> None:
    store = JobStore(str(tmp_path))
    with pytest.raises(NotFoundError, match="job 'nope' not found"):
        store.get("nope")
    with pytest.raises(JobStoreError, match="job id"):
        store.get("../escape")


def test_list_filters_and_sorts_newest_first(tmp_path: Path) -> None:
    # given three records of different types, tables and states, and one broken folder
    store = JobStore(str(tmp_path))
    store.put(record("a", submitted_at=T0, state=JobState.SUCCEEDED))
    store.put(record("b", submitted_at=T0 + timedelta(minutes=1), tables=("other",)))
    store.put(record("c", submitted_at=T0 + timedelta(minutes=2), job_type="ingest"))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "job.json").write_text("{not json")

    # then listing skips the broken one, sorts newest first, and filters
    assert [r.job_id for r in store.list()] == ["c", "b", "a"]
    assert [r.job_id for r in store.list(state="RUNNING")] == ["c", "b"]
    assert [r.job_id for r in store.list(table="driver_stats")] == ["c", "a"]
    assert [r.job_id for r in store.list(job_type="materialize")] == ["b", "a"]
    assert store.list(project="elsewhere") == []


def test_a_new_process_lists_and_reads_what_this_one_wrote(tmp_path: Path) -> None:
    # given a record written by this process
    store = JobStore(str(tmp_path))
    store.create(record("materialize-a-1"))

    # when a fresh interpreter opens the same store
    probe = (
        "import json, sys\n"
        "from feast_spark.launcher.job_store import JobStore\n"
        "store = JobStore(sys.argv[1])\n"
        "print(json.dumps([r.to_dict() for r in store.list()]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    # then it sees the same record
    assert done.returncode == 0, done.stderr
    (seen,) = json.loads(done.stdout)
    assert JobRecord.from_dict(seen) == store.get("materialize-a-1")


def test_a_file_uri_names_the_same_folder(tmp_path: Path) -> None:
    JobStore(str(tmp_path)).create(record("j-1"))
    assert JobStore(f"file://{tmp_path}").get("j-1").job_id == "j-1"


def test_a_uri_store_goes_through_pyarrow_fs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a "fake://" URI that pyarrow.fs serves from a local folder (as it would S3 or HDFS)
    import pyarrow.fs

    from feast_spark import storage

    def filesystem(uri: str) -> tuple[pyarrow.fs.FileSystem, str]:
        return pyarrow.fs.LocalFileSystem(), f"{tmp_path}/{uri.removeprefix('fake://')}".rstrip("/")

    monkeypatch.setattr(storage, "filesystem", filesystem)
    store = JobStore("fake://bucket/jobs")
    assert not store.is_local

    # when records are written, listed and deleted through it
    store.create(record("j-2"))
    store.write_json("j-2", "exit.json", {"exit_code": 0})

    # then they land in the folder behind the URI
    assert [r.job_id for r in store.list()] == ["j-2"]
    assert store.read_json("j-2", "exit.json") == {"exit_code": 0}
    assert (tmp_path / "bucket" / "jobs" / "j-2" / "job.json").is_file()
    store.delete("j-2")
    assert store.list() == []


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((0, 2), (1, 3), True),
        ((0, 1), (1, 2), False),  # half-open: [0, 1) and [1, 2) share nothing
        ((None, 1), (0, None), True),
        ((None, None), (5, 6), True),
        ((2, 3), (0, 2), False),
    ],
)
def test_window_overlap(
    a: tuple[int | None, int | None], b: tuple[int | None, int | None], expected: bool
) -> None:
    def window(bounds: tuple[int | None, int | None]) -> Window:
        start, end = bounds
        return Window(
            None if start is None else T0 + timedelta(days=start),
            None if end is None else T0 + timedelta(days=end),
        )

    assert overlaps(window(a), window(b)) is expected
    assert overlaps(window(b), window(a)) is expected


def test_describe_window() -> None:
    assert describe_window(Window(T0, None)) == "[2024-01-01T00:00:00+00:00, +inf)"


def test_an_unreadable_record_is_reported_not_taken_for_absent(tmp_path: Path) -> None:
    # given a good record, a truncated one and an empty one (issue 18, defect 9)
    store = JobStore(str(tmp_path))
    store.put(record("good"))
    text = json.dumps(record("cut").to_dict())
    for job_id, content in (("cut", text[: len(text) // 2]), ("empty", "")):
        (tmp_path / job_id).mkdir()
        (tmp_path / job_id / "job.json").write_text(content)

    # then list() shows the readable ones, unreadable() names each damaged file and why,
    # and get() and create() refuse them rather than treat them as no job
    assert [r.job_id for r in store.list()] == ["good"]
    problems = store.unreadable()
    assert [p.location for p in problems] == [
        store.path("cut", "job.json"),
        store.path("empty", "job.json"),
    ]
    assert all("not a readable job record" in str(p) for p in problems)
    with pytest.raises(JobStoreError, match="not a readable job record"):
        store.get("empty")
    with pytest.raises(JobStoreError, match="exists already"):
        store.create(record("empty"))
