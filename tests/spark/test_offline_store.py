"""Delta offline tables: idempotent window writes, concurrency, rejected rows, schema, reads."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from delta.exceptions import ConcurrentAppendException
from delta.tables import DeltaTable
from pyspark.testing import assertDataFrameEqual

from feast_spark.definitions import Entity, Feature, FeatureTable, FileSource
from feast_spark.errors import CompatibilityError, JobFailedError
from feast_spark.spark.commit_retry import RetryPolicy, _retrying
from feast_spark.spark.ingest import IngestOutcome, ingest_table
from feast_spark.spark.maintenance import compact, vacuum
from feast_spark.spark.offline_store import read_offline_table, replace_predicate
from feast_spark.spark.rejected_rows import rejected_table_path
from feast_spark.specs import Window

from .plans import scanned_files

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

DRIVER = Entity("driver_id", "INT64")
INGESTED = datetime(2024, 2, 1, tzinfo=UTC)
SOURCE_DDL = "driver_id bigint, ts timestamp, created timestamp, trips bigint"
FAST_RETRY = RetryPolicy(attempts=10, first_delay_s=0.05, max_delay_s=1.0)


def at(day: int, hour: int = 0) -> datetime:
    return datetime(2024, 1, day, hour, tzinfo=UTC)


def assert_frames_equal(actual: DataFrame, expected: DataFrame) -> None:
    """pyspark's assertDataFrameEqual: schema checked, rows in any order."""
    assertDataFrameEqual(actual, expected)


def feature_table(
    path: str, *features: Feature, created_column: str | None = "created"
) -> FeatureTable:
    return FeatureTable(
        name="driver_stats",
        entities=["driver_id"],
        features=list(features) or [Feature("trips", "INT64")],
        batch_source=FileSource(
            path=path, event_timestamp_column="ts", created_timestamp_column=created_column
        ),
    )


class Store:
    """A source folder and an offline table under one tmp_path."""

    def __init__(self, spark: SparkSession, root: Path) -> None:
        self.spark = spark
        self.root = root
        self.table_path = str(root / "offline" / "demo" / "driver_stats")
        self.sources = 0

    def source(self, rows: Sequence[tuple[Any, ...]], ddl: str = SOURCE_DDL) -> str:
        self.sources += 1
        path = str(self.root / f"source{self.sources}")
        self.spark.createDataFrame(list(rows), ddl).write.parquet(path)
        return path

    def ingest(
        self,
        source_path: str,
        window: Window | None,
        job_id: str,
        *features: Feature,
        max_rejected_fraction: float = 1.0,
        created_column: str | None = "created",
        ingested_at: datetime = INGESTED,
        future_allowance: timedelta | None = None,
    ) -> IngestOutcome:
        table = feature_table(source_path, *features, created_column=created_column)
        return ingest_table(
            self.spark,
            table=table,
            entities=[DRIVER],
            source=table.batch_source,
            window=window,
            table_path=self.table_path,
            job_id=job_id,
            ingested_at=ingested_at,
            max_rejected_fraction=max_rejected_fraction,
            future_allowance=future_allowance,
            retry=FAST_RETRY,
        )

    def table(self, version: int | None = None) -> DataFrame:
        return read_offline_table(self.spark, self.table_path, version=version)

    def history(self, path: str | None = None) -> list[tuple[int, str, str | None]]:
        rows = DeltaTable.forPath(self.spark, path or self.table_path).history().collect()
        return sorted((r.version, r.operation, r.userMetadata) for r in rows)

    def triples(self, frame: DataFrame | None = None) -> list[tuple[int, datetime, int]]:
        frame = frame if frame is not None else self.table()
        return sorted(
            (r.driver_id, r.event_timestamp.astimezone(UTC), r.trips) for r in frame.collect()
        )


@pytest.fixture
def store(spark: SparkSession, tmp_path: Path) -> Store:
    return Store(spark, tmp_path)


def rows_by_day(days: Sequence[int], trips: int = 1) -> list[tuple[Any, ...]]:
    return [(d * 10 + k, at(d, 6 * k), at(d, 6 * k), trips) for d in days for k in range(3)]


# --- layout -------------------------------------------------------------------------------------


def test_ingest_creates_an_unpartitioned_table_with_time_statistics(store: Store) -> None:
    # given a source over three days
    source = store.source(rows_by_day([1, 2, 3]))

    # when the whole source is ingested
    outcome = store.ingest(source, None, "job-1")

    # then the table has the layout and every row
    assert (outcome.rows_read, outcome.rows_written, outcome.rows_rejected) == (9, 9, 0)
    detail = DeltaTable.forPath(store.spark, store.table_path).detail().first()
    assert detail is not None and list(detail.partitionColumns) == []
    assert detail.properties["delta.dataSkippingStatsColumns"] == (
        "driver_id,event_timestamp,created_timestamp"
    )
    assert store.table().schema.simpleString() == (
        "struct<driver_id:bigint,event_timestamp:timestamp,created_timestamp:timestamp,"
        "trips:bigint>"
    )
    assert len(store.triples()) == 9
    # and the commit is attributed to the job
    assert store.history()[-1] == (outcome.delta_version, "WRITE", "job-1")


def test_replace_predicate_cuts_by_instant() -> None:
    window = Window(at(1, 12), at(3))
    assert replace_predicate(window) == (
        "event_timestamp >= timestamp_micros(1704110400000000) "
        "AND event_timestamp < timestamp_micros(1704240000000000)"
    )
    assert replace_predicate(Window()) is None
    assert replace_predicate(None) is None


# --- idempotency ----------------------------------------------------------------------------------


def test_rerunning_a_window_leaves_the_table_as_after_the_first_run(store: Store) -> None:
    # given a table with days 1-3 and a source for day 2
    store.ingest(store.source(rows_by_day([1, 2, 3])), None, "job-1")
    day2 = store.source(rows_by_day([2], trips=7))
    window = Window(at(2), at(3))
    first = store.ingest(day2, window, "job-2")
    after_first = store.table(first.delta_version)

    # when the same window is ingested again from the same source
    second = store.ingest(day2, window, "job-3")

    # then the rows are exactly those after the first run: same count, same content
    assert second.delta_version == first.delta_version + 1
    assert store.table().count() == after_first.count() == 9
    assert_frames_equal(store.table(), after_first)


def test_without_a_created_column_reruns_are_identical_and_corrections_newer(
    store: Store,
) -> None:
    # given a source without a created column, ingested once
    source = store.source([(1, at(1, 6), 3)], "driver_id bigint, ts timestamp, trips bigint")
    first = store.ingest(source, None, "job-1", created_column=None)
    after_first = store.table(first.delta_version)

    # when the same files are ingested again by a job that starts later
    later = INGESTED + timedelta(hours=5)
    store.ingest(source, None, "job-2", created_column=None, ingested_at=later)

    # then the table is identical, created_timestamp included: it is when the file landed
    assert_frames_equal(store.table(), after_first)
    (landed,) = [r.created_timestamp.astimezone(UTC) for r in store.table().collect()]
    file_time = max(p.stat().st_mtime for p in Path(source).glob("*.parquet"))
    assert abs(landed.timestamp() - file_time) < 1.0
    assert landed not in (INGESTED, later)

    # when the file is corrected (rewritten later) and ingested again
    time.sleep(1.1)
    store.spark.createDataFrame(
        [(1, at(1, 6), 4)], "driver_id bigint, ts timestamp, trips bigint"
    ).write.mode("overwrite").parquet(source)
    store.ingest(source, None, "job-3", created_column=None, ingested_at=later)

    # then (no window: rows are added, none deleted) the corrected row is there beside the one
    # it corrects, with a later created time, so it wins every read of that event
    rows = sorted(store.table().collect(), key=lambda r: r.created_timestamp)
    assert [r.trips for r in rows] == [3, 4]
    assert rows[1].created_timestamp.astimezone(UTC) > landed


def test_a_corrected_source_replaces_only_its_window(store: Store) -> None:
    # given days 1-3
    store.ingest(store.source(rows_by_day([1, 2, 3], trips=1)), None, "job-1")
    before = store.table()

    # when day 2 is ingested again from a corrected source with one row fewer
    corrected = store.source(rows_by_day([2], trips=5)[:2])
    store.ingest(corrected, Window(at(2), at(3)), "job-2")

    # then day 2 holds exactly the corrected rows and days 1 and 3 are untouched
    day2 = [(20, at(2, 0), 5), (21, at(2, 6), 5)]
    assert [k for k in store.triples() if k[1].day == 2] == day2
    not_day2 = "to_date(event_timestamp) != DATE'2024-01-02'"
    assert_frames_equal(store.table().where(not_day2), before.where(not_day2))


def test_a_window_cut_inside_a_day_keeps_the_rest_of_that_day(store: Store) -> None:
    store.ingest(store.source(rows_by_day([1])), None, "job-1")  # 00:00, 06:00, 12:00
    store.ingest(store.source([(99, at(1, 7), at(1, 7), 9)]), Window(at(1, 6), at(1, 12)), "job-2")
    assert store.triples() == [(10, at(1, 0), 1), (12, at(1, 12), 1), (99, at(1, 7), 9)]


def test_without_both_bounds_an_ingest_adds_rows_and_deletes_none(store: Store) -> None:
    # given a table holding January 1 (3 rows)
    store.ingest(store.source(rows_by_day([1])), None, "job-1")
    day1 = store.triples()

    # when a source holding only January 2 is ingested without a window, then with --start only
    jan2 = store.source([(7, at(2, 5), at(2, 5), 70)])
    added = store.ingest(jan2, None, "job-2")
    later = store.source([(8, at(3, 5), at(3, 5), 80)])
    from_start = store.ingest(later, Window(at(2), None), "job-3")

    # then January 1 is untouched and each source's rows were added; nothing was deleted
    assert store.triples() == sorted([*day1, (7, at(2, 5), 70), (8, at(3, 5), 80)])
    assert (added.mode, added.rows_written, added.rows_deleted, added.committed) == (
        "add",
        1,
        0,
        True,
    )
    assert (from_start.rows_written, from_start.rows_deleted) == (1, 0)
    assert store.history()[-1][2] == "job-3"  # the merge commit is attributed to its job

    # when the same source is ingested again, and then an empty source
    version = store.history()[-1][0]
    rerun = store.ingest(jan2, None, "job-4")
    empty = store.ingest(store.source([]), None, "job-5")

    # then neither changes the table nor commits, and both succeed saying so
    assert store.triples() == sorted([*day1, (7, at(2, 5), 70), (8, at(3, 5), 80)])
    assert (rerun.rows_read, rerun.rows_written, rerun.rows_present, rerun.committed) == (
        1,
        0,
        1,
        False,
    )
    assert (empty.rows_read, empty.rows_written, empty.committed) == (0, 0, False)
    assert rerun.delta_version == empty.delta_version == version
    assert store.history()[-1][0] == version


def test_a_named_window_replaces_its_rows_and_counts_those_it_deleted(store: Store) -> None:
    # given days 1-3, three rows each
    store.ingest(store.source(rows_by_day([1, 2, 3])), None, "job-1")

    # when day 2 is replaced by a source holding one row
    outcome = store.ingest(store.source([(9, at(2, 1), at(2, 1), 9)]), Window(at(2), at(3)), "j2")

    # then day 2 holds that row, and the outcome counts the three rows it replaced
    assert [k for k in store.triples() if k[1].day == 2] == [(9, at(2, 1), 9)]
    assert (outcome.mode, outcome.rows_written, outcome.rows_deleted) == ("replace", 1, 3)


def test_an_empty_window_over_an_empty_window_succeeds_without_a_commit(store: Store) -> None:
    # given a table holding day 1
    first = store.ingest(store.source(rows_by_day([1])), None, "job-1")

    # when a quiet interval (no rows in the source, none in the table) is ingested
    outcome = store.ingest(store.source(rows_by_day([1])), Window(at(5), at(6)), "job-2")

    # then it succeeds with 0 rows; Delta recorded no empty commit, the table is as it was
    assert (outcome.rows_read, outcome.rows_written, outcome.rows_deleted) == (0, 0, 0)
    assert (outcome.committed, outcome.delta_version) == (False, first.delta_version)
    assert len(store.triples()) == 3


# --- concurrency ----------------------------------------------------------------------------------


def test_concurrent_windows_of_one_table_all_land(store: Store) -> None:
    # given a table and three sources: two halves of day 1 and day 2 (every pair conflicts in
    # Delta, which checks conflicts per partition, and the table has none)
    store.ingest(store.source(rows_by_day([1, 2], trips=0)), None, "job-0")
    plans = [
        (store.source([(1, at(1, 3), at(1, 3), 1)]), Window(at(1), at(1, 12)), "job-a"),
        (store.source([(2, at(1, 15), at(1, 15), 2)]), Window(at(1, 12), at(2)), "job-b"),
        (store.source([(3, at(2, 9), at(2, 9), 3)]), Window(at(2), at(3)), "job-c"),
    ]
    barrier = threading.Barrier(len(plans))
    errors: list[BaseException] = []

    def run(source: str, window: Window, job_id: str) -> None:
        try:
            barrier.wait()
            store.ingest(source, window, job_id)
        except BaseException as error:  # reported below
            errors.append(error)

    # when the three jobs run at the same time on the same SparkSession
    threads = [threading.Thread(target=run, args=plan) for plan in plans]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)

    # then all three land, each window holds exactly its job's rows, and history is linear
    assert errors == []
    assert store.triples() == [(1, at(1, 3), 1), (2, at(1, 15), 2), (3, at(2, 9), 3)]
    writes = [meta for _, operation, meta in store.history() if operation == "WRITE"]
    assert sorted(writes) == ["job-0", "job-a", "job-b", "job-c"]


def test_conflicts_are_retried_and_then_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("time.sleep", lambda _: None)
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConcurrentAppendException(message="files were added to partition [day=1]")
        return "committed"

    assert (
        _retrying(flaky, what="write t", job_id="j", retry=RetryPolicy(attempts=3)) == "committed"
    )

    def always() -> str:
        raise ConcurrentAppendException(message="files were added")

    with pytest.raises(JobFailedError, match="conflicted with each of 3 attempts"):
        _retrying(always, what="write t", job_id="j", retry=RetryPolicy(attempts=3))


# --- rejected rows --------------------------------------------------------------------------------


def test_rejected_rows_go_to_the_rejected_table_with_reason_and_job(store: Store) -> None:
    # given a source with one string that is not a number (trips read as strings)
    ddl = "driver_id bigint, ts timestamp, created timestamp, trips string"
    source = store.source([(1, at(1), at(1), "3"), (2, at(1, 1), at(1, 1), "three")], ddl)

    # when ingested
    outcome = store.ingest(source, Window(at(1), at(2)), "job-1")

    # then the good row is in the table and the bad one in <table>.rejected
    assert (outcome.rows_read, outcome.rows_written, outcome.rows_rejected) == (2, 1, 1)
    assert outcome.rejected_path == store.table_path + ".rejected"
    assert store.triples() == [(1, at(1), 3)]
    rejected = store.spark.read.format("delta").load(outcome.rejected_path).collect()
    assert [(r.ingestion_job_id, r.reason) for r in rejected] == [
        ("job-1", "trips: three is not a valid INT64")
    ]
    assert rejected[0].window_start.astimezone(UTC) == at(1)
    assert '"trips":"three"' in rejected[0].source_row

    # and a rerun of the same job id replaces its rejected rows instead of adding them again
    store.ingest(source, Window(at(1), at(2)), "job-1")
    assert store.spark.read.format("delta").load(outcome.rejected_path).count() == 1


def test_above_the_rejected_fraction_nothing_is_committed(store: Store) -> None:
    # given a table at some version and a source with 2 bad rows out of 4
    store.ingest(store.source(rows_by_day([1])), None, "job-1")
    history = store.history()
    ddl = "driver_id bigint, ts timestamp, created timestamp, trips string"
    bad = store.source([(i, at(1, i), at(1, i), "x" if i % 2 else str(i)) for i in range(4)], ddl)

    # when ingested with max_rejected_fraction 0.25
    with pytest.raises(JobFailedError, match="2 of 4 rows rejected \\(50.00%\\)"):
        store.ingest(bad, Window(at(1), at(2)), "job-2", max_rejected_fraction=0.25)

    # then neither the offline table nor the rejected table got a commit
    assert store.history() == history
    assert not DeltaTable.isDeltaTable(store.spark, rejected_table_path(store.table_path))

    # while at 0.5 the same job commits both
    outcome = store.ingest(bad, Window(at(1), at(2)), "job-2", max_rejected_fraction=0.5)
    assert (outcome.rows_written, outcome.rows_rejected) == (2, 2)
    assert outcome.rejected_version is not None


# --- schema evolution -----------------------------------------------------------------------------


def test_a_new_feature_becomes_a_column_without_rewriting_files(store: Store) -> None:
    # given a table written with one feature
    store.ingest(store.source(rows_by_day([1])), None, "job-1")
    files_before = set(store.spark.read.format("delta").load(store.table_path).inputFiles())

    # when a window is ingested after 'rating' was added to the definition
    ddl = "driver_id bigint, ts timestamp, created timestamp, trips bigint, rating double"
    source = store.source([(50, at(2), at(2), 1, 4.5)], ddl)
    store.ingest(source, Window(at(2), at(3)), "job-2", Feature("trips", "INT64"),
                 Feature("rating", "DOUBLE"))  # fmt: skip

    # then the column was added by a metadata-only commit; old rows read null, files untouched
    operations = [operation for _, operation, _ in store.history()]
    assert operations[-2:] == ["ADD COLUMNS", "WRITE"]
    table = store.table()
    assert table.columns[-1] == "rating"
    assert sorted((r.driver_id, r.rating) for r in table.collect()) == [
        (10, None), (11, None), (12, None), (50, 4.5)
    ]  # fmt: skip
    assert files_before <= set(table.inputFiles())


def test_a_changed_feature_type_is_refused_before_any_commit(store: Store) -> None:
    store.ingest(store.source(rows_by_day([1])), None, "job-1")
    history = store.history()
    with pytest.raises(CompatibilityError, match="column 'trips' type cannot change from bigint"):
        store.ingest(store.source(rows_by_day([1])), None, "job-2", Feature("trips", "DOUBLE"))
    assert store.history() == history


# --- reads and maintenance --------------------------------------------------------------------------


def test_range_reads_open_only_the_files_of_the_range(store: Store) -> None:
    # given five days, each ingested as its own window
    files_by_day = {}
    for day in range(1, 6):
        before = set(store.table().inputFiles()) if day > 1 else set()
        store.ingest(store.source(rows_by_day([day])), Window(at(day), at(day + 1)), f"job-{day}")
        files_by_day[day] = set(store.table().inputFiles()) - before

    # when day 3 is read
    frame = read_offline_table(store.spark, store.table_path, at(3), at(4))

    # then only day 3's files are scanned
    assert [k[0] for k in store.triples(frame)] == [30, 31, 32]
    assert (
        scanned_files(frame, store.table_path)
        == len(files_by_day[3])
        < len(store.table().inputFiles())
    )
    # and a cut inside the day is exact
    frame = read_offline_table(store.spark, store.table_path, at(3, 6), at(4))
    assert [k[0] for k in store.triples(frame)] == [31, 32]


@pytest.mark.slow  # OPTIMIZE into 300-byte files; the quick run compacts in test_maintenance_job
def test_compact_orders_a_backfill_by_time_and_vacuum_keeps_the_retention_check(
    store: Store,
) -> None:
    # given five days loaded in one backfill whose files each span every day
    shuffled = store.spark.createDataFrame(rows_by_day([1, 2, 3, 4, 5]), SOURCE_DDL)
    path = str(store.root / "shuffled")
    shuffled.repartition(4, "driver_id").write.parquet(path)
    store.ingest(path, None, "job-1")
    before = store.table().collect()
    day3 = read_offline_table(store.spark, store.table_path, at(3), at(4))
    assert len(store.triples(day3)) == 3
    files = len(store.table().inputFiles())
    assert scanned_files(day3, store.table_path) == files >= 2

    # when compacted into small files (a tiny target size stands in for a big table)
    store.spark.conf.set("spark.databricks.delta.optimize.maxFileSize", "300")
    try:
        metrics = compact(store.spark, store.table_path)
    finally:
        store.spark.conf.unset("spark.databricks.delta.optimize.maxFileSize")

    # then the files hold disjoint time ranges: a day's read skips most of them; data unchanged
    assert metrics["files_removed"] == files and metrics["files_added"] > files
    day3 = read_offline_table(store.spark, store.table_path, at(3), at(4))
    assert [k[0] for k in store.triples(day3)] == [30, 31, 32]
    assert scanned_files(day3, store.table_path) < metrics["files_added"] / 2
    assert sorted(store.table().collect()) == sorted(before)
    assert store.history()[-1][1] == "OPTIMIZE"

    # and vacuum refuses a retention below Delta's safety limit, and works with the default
    with pytest.raises(Exception, match="retention"):
        vacuum(store.spark, store.table_path, retention_hours=0)
    vacuum(store.spark, store.table_path)
    assert store.table().count() == len(before)


def test_the_table_is_not_touched_when_the_job_is_refused(store: Store) -> None:
    table = feature_table("unused")
    assert rejected_table_path(store.table_path).endswith("driver_stats.rejected")
    assert "." not in table.name  # so no feature table can sit at the rejected path
    with pytest.raises(Exception, match="max_rejected_fraction"):
        store.ingest(store.source(rows_by_day([1])), None, "job-1", max_rejected_fraction=1.5)
    assert not DeltaTable.isDeltaTable(store.spark, store.table_path)


# --- windows at the edges of the calendar ---------------------------------------------------------


def test_a_year_1_window_lands_exactly(store: Store) -> None:
    # given rows one microsecond either side of both bounds of a one-day window in year 1, where
    # a Julian-calendar literal lands two days off (every edge is in tests/spark/test_sources.py)
    start, end = datetime(1, 1, 2, tzinfo=UTC), datetime(1, 1, 3, tzinfo=UTC)
    micro = timedelta(microseconds=1)
    instants = [start - micro, start, end - micro, end]
    source = store.source([(i, t, t, i) for i, t in enumerate(instants)])

    # when the window is ingested (the source filter and Delta's replaceWhere must agree)
    outcome = store.ingest(source, Window(start, end), "job-edge")

    # then exactly the rows within [start, end) are in the table, at their exact instants
    assert (outcome.rows_read, outcome.rows_written) == (2, 2)
    assert store.triples() == [(1, start, 1), (2, end - micro, 2)]


def test_event_times_beyond_the_future_allowance_are_rejected_with_a_reason(store: Store) -> None:
    # given a source with one row an hour ahead of the job's start and one dated 2099
    soon, far = INGESTED + timedelta(minutes=59), datetime(2099, 1, 1, tzinfo=UTC)
    source = store.source([(1, soon, soon, 1), (2, far, far, 2)])

    # when it is ingested with a one-hour allowance
    outcome = store.ingest(source, None, "job-future", future_allowance=timedelta(hours=1))

    # then the 2099 row goes to the rejected rows with the reason; the other is kept
    assert (outcome.rows_read, outcome.rows_written, outcome.rows_rejected) == (2, 1, 1)
    assert [k[0] for k in store.triples()] == [1]
    (rejected,) = store.spark.read.format("delta").load(outcome.rejected_path).collect()
    assert rejected.reason.startswith(
        "event_timestamp (source column ts): 2099-01-01 00:00:00 is later than "
        "2024-02-01 01:00:00 UTC (the job's start plus future_event_time_allowance)"
    )
