"""Incremental materialization: states, windows, settling, and the book's registry commits."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from feast_spark.definitions import Entity, Feature, FeatureTable, FileSource
from feast_spark.errors import ArgumentError, FeastSparkError, IncrementalStateError, NotFoundError
from feast_spark.incremental import (
    IncrementalBook,
    IncrementalState,
    JobOutcome,
    joint_window,
)
from feast_spark.registry import Registry
from feast_spark.specs import Window

SOURCE = FileSource(path="/tmp/unused", event_timestamp_column="ts")
NOW = datetime(2024, 3, 1, 12, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def table(max_age: timedelta | None = None, name: str = "t") -> FeatureTable:
    return FeatureTable(name, ["e"], [Feature("f", "DOUBLE")], SOURCE, max_age=max_age)


def at(mark: datetime | None, pending: str | None = None) -> IncrementalState:
    return IncrementalState(mark, pending)


# --- the state on disk ----------------------------------------------------------------------------


def test_states_written_by_the_current_release_read_and_round_trip() -> None:
    # given the documents this release writes: none yet, a mark, a pending job, a purged mark
    written = [
        {},
        {"materialized_until": "2024-03-01T12:00:00+00:00"},
        {"materialized_until": "2024-03-01T12:00:00+00:00", "pending_materialization": "m-1"},
        {"materialized_until": None, "pending_materialization": None},
    ]
    # when parsed, then they read as typed states, and serialize back to the same keys
    states = [IncrementalState.parse(document) for document in written]
    assert states == [at(None), at(NOW), at(NOW, "m-1"), at(None)]
    assert states[2].serialize() == written[2]
    assert all(IncrementalState.parse(s.serialize()) == s for s in states)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"materialized_until": "yesterday"}, "t.materialized_until = 'yesterday'"),
        ({"materialized_until": "2024-03-01T12:00:00"}, "with a time zone"),
        ({"materialized_until": 17}, "t.materialized_until = 17"),
        ({"pending_materialization": ""}, "t.pending_materialization = ''"),
        ({"pending_materialization": 3}, "is not a job id"),
        ({"materialised_until": "2024-03-01"}, "t.materialised_until"),
        ([1], "a table state must be a mapping"),
    ],
)
def test_a_bad_stored_state_is_refused_in_one_line(document: Any, message: str) -> None:
    # when a state that no release writes is read, then the error names the key and the value
    with pytest.raises(IncrementalStateError, match="^incremental state .*") as caught:
        IncrementalState.parse(document, table="t")
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert isinstance(caught.value, FeastSparkError) and isinstance(caught.value, ValueError)


def test_a_state_refuses_a_naive_mark() -> None:
    with pytest.raises(IncrementalStateError, match="aware datetime"):
        IncrementalState(datetime(2024, 1, 1))


# --- the next window ------------------------------------------------------------------------------


def test_first_run_with_max_age_starts_max_age_before_the_end() -> None:
    window = at(None).next_window(table(2 * DAY), NOW)
    assert window == Window(NOW - 2 * DAY, NOW)


def test_first_run_without_max_age_starts_at_the_first_row() -> None:
    assert at(None).next_window(table(), NOW) == Window(None, NOW)


def test_later_runs_start_at_the_mark_and_end_at_the_given_end() -> None:
    mark = NOW - 2 * DAY
    assert at(mark).next_window(table(HOUR), NOW, end=NOW - DAY) == Window(mark, NOW - DAY)


def test_nothing_to_do_when_materialized_up_to_the_end() -> None:
    assert at(NOW).next_window(table(), NOW) is None
    assert at(NOW + HOUR).next_window(table(), NOW, end=NOW) is None


def test_the_end_is_capped_at_now_plus_the_allowance() -> None:
    # given an end far in the future: the job would skip rows dated after now + the allowance
    far = datetime(2099, 1, 1, tzinfo=UTC)
    # when the window is planned, then it stops at now + the allowance, so a row ingested later
    # and dated before 2099 is still ahead of the mark
    window = at(NOW - DAY).next_window(table(), NOW, end=far, allowance=HOUR)
    assert window == Window(NOW - DAY, NOW + HOUR)
    # and a first run's max_age counts back from the capped end
    assert at(None).next_window(table(DAY), NOW, end=far, allowance=HOUR) == Window(
        NOW + HOUR - DAY, NOW + HOUR
    )


def test_a_naive_now_or_end_is_refused() -> None:
    with pytest.raises(ArgumentError, match="^now '2024-01-01T00:00:00': has no time zone"):
        at(None).next_window(table(), datetime(2024, 1, 1))
    with pytest.raises(ArgumentError, match="^end '2024-01-01T00:00:00'"):
        at(None).next_window(table(), NOW, end=datetime(2024, 1, 1))


def test_a_first_run_whose_max_age_reaches_before_year_one_starts_open() -> None:
    end = datetime(2, 1, 1, tzinfo=UTC)  # end - max_age would be before year one
    window = at(None).next_window(table(timedelta(days=800)), NOW, end=end)
    assert window == Window(None, end)


def test_tables_of_one_job_share_the_earliest_start() -> None:
    windows = [Window(NOW - DAY, NOW), None, Window(NOW - 2 * DAY, NOW)]
    assert joint_window(windows) == Window(NOW - 2 * DAY, NOW)
    assert joint_window([Window(NOW - DAY, NOW), Window(None, NOW)]) == Window(None, NOW)
    assert joint_window([None, None]) is None


# --- settling -------------------------------------------------------------------------------------


def test_a_success_moves_the_mark_forward_only() -> None:
    newer_end = datetime(2024, 3, 2, 1, tzinfo=timezone(HOUR))  # any offset
    done = JobOutcome(ended=True, succeeded=True, window=Window(NOW, newer_end))
    assert at(NOW, "m-1").settled("m-1", done) == at(newer_end)
    # an older window (a backfill) keeps the mark, and clears the pending job
    old = JobOutcome(ended=True, succeeded=True, window=Window(NOW - 3 * DAY, NOW - 2 * DAY))
    assert at(NOW, "m-1").settled("m-1", old) == at(NOW)


def test_a_failure_or_an_unknown_job_clears_the_pending_job_only() -> None:
    failed = JobOutcome(ended=True, succeeded=False, window=Window(NOW, NOW + DAY))
    assert at(NOW, "m-1").settled("m-1", failed) == at(NOW)
    assert at(NOW, "m-1").settled("m-1", None) == at(NOW)


def test_a_running_job_or_another_jobs_news_changes_nothing() -> None:
    running = JobOutcome(ended=False, succeeded=False, window=Window(NOW, NOW + DAY))
    assert at(NOW, "m-1").settled("m-1", running) == at(NOW, "m-1")
    done = JobOutcome(ended=True, succeeded=True, window=Window(NOW, NOW + DAY))
    assert at(NOW, "m-2").settled("m-1", done) == at(NOW, "m-2")


# --- the book: one registry commit per write --------------------------------------------------


@pytest.fixture
def book(tmp_path: Path) -> IncrementalBook:
    registry = Registry(str(tmp_path / "registry.json"))
    registry.apply("demo", [Entity("e", "INT64"), table(name="a"), table(name="b")])
    return IncrementalBook(registry, "demo")


def revision(book: IncrementalBook) -> int:
    return int(json.loads(Path(book.registry.uri).read_text())["revision"])


def test_beginning_a_job_marks_every_table_in_one_commit(book: IncrementalBook) -> None:
    # given two tables; when a job over both begins
    before = revision(book)
    book.begin(["a", "b"], "m-1")
    # then both are pending, in one commit, with the keys on disk as every release wrote them
    assert revision(book) == before + 1
    assert book.state("a") == book.state("b") == at(None, "m-1")
    stored = book.registry.table_state("demo", "a")
    assert stored == {"materialized_until": None, "pending_materialization": "m-1"}


def test_settle_asks_the_job_once_and_moves_the_mark(book: IncrementalBook) -> None:
    # given a pending job that succeeded
    book.begin(["a"], "m-1")
    asked: list[str] = []

    def lookup(job_id: str) -> JobOutcome:
        asked.append(job_id)
        return JobOutcome(ended=True, succeeded=True, window=Window(None, NOW))

    # when the table is settled, then the mark is the window's end and nothing is pending
    assert book.settle("a", lookup) == at(NOW)
    assert asked == ["m-1"]
    # and a table with nothing pending is not asked about
    assert book.settle("a", lookup) == at(NOW) and asked == ["m-1"]


def test_a_write_that_meets_a_conflict_is_reapplied_on_the_newer_state(
    book: IncrementalBook, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a job pending on table a, and another writer that commits the mark in between
    book.begin(["a"], "m-1")
    store = book.registry._store
    original = store.write_if_revision
    calls: list[int] = []

    def racing(expected: int, document: dict[str, Any]) -> bool:
        calls.append(expected)
        if len(calls) == 1:  # someone else settles first: the mark moved to NOW - DAY
            monkeypatch.setattr(store, "write_if_revision", original)
            book.registry.update_table_state(
                "demo", "a", materialized_until=(NOW - DAY).isoformat()
            )
            monkeypatch.setattr(store, "write_if_revision", racing)
            return False
        return original(expected, document)

    monkeypatch.setattr(store, "write_if_revision", racing)
    # when the job's success is settled
    done = JobOutcome(ended=True, succeeded=True, window=Window(None, NOW))
    book.settle_job(["a"], "m-1", done)
    # then the change ran again on the newer state: the later mark wins, nothing is pending
    assert len(calls) == 2
    assert book.state("a") == at(NOW)


def test_reset_forgets_the_mark_and_unknown_tables_are_refused(book: IncrementalBook) -> None:
    # given a table with nothing pending: news of another job changes nothing, writes nothing
    before = revision(book)
    book.settle_job(["a"], "x", None)
    assert revision(book) == before
    # when a job succeeds, then the table is reset: its mark is forgotten
    book.begin(["a"], "m-1")
    book.settle_job(["a"], "m-1", JobOutcome(True, True, Window(None, NOW)))
    book.reset("a")
    assert book.state("a") == at(None)
    with pytest.raises(NotFoundError, match="feature table 'nope'"):
        book.begin(["a", "nope"], "m-2")
    assert book.state("a") == at(None)  # the commit is all or nothing


def test_a_purge_resets_a_state_that_does_not_parse(book: IncrementalBook) -> None:
    # given a mark no release writes
    book.registry.update_table_state("demo", "a", materialized_until="yesterday")
    with pytest.raises(IncrementalStateError, match="online purge"):
        book.state("a")
    # when reset (what `online purge` does after emptying the table), then it reads again
    book.reset("a")
    assert book.state("a") == at(None)
