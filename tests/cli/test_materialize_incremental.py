"""``feast-spark materialize-incremental``: where the high-water mark moves.

Uses the stand-in spark-submit of ``test_jobs`` (no JVM): the job succeeds with the spec's window.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from feast_spark.client import Client

from .test_job_output import invoke, project  # noqa: F401 - the fixture
from .test_jobs import repo  # noqa: F401 - the fixture under it

ALLOWANCE = timedelta(hours=1)  # future_event_time_allowance's default


def stored_mark(folder: Path) -> datetime | None:
    """The table's mark as the registry holds it (the key every release writes)."""
    value = Client(folder).registry.table_state("demo", "trips").get("materialized_until")
    return None if value is None else datetime.fromisoformat(value)


def test_an_end_in_2099_moves_the_mark_no_further_than_now_plus_the_allowance(
    project: Path,  # noqa: F811 - the imported fixture
) -> None:
    # given a table never materialized
    before = datetime.now(UTC)

    # when it is materialized incrementally up to 2099, waiting for the job
    result = invoke(project, "materialize-incremental", "trips", "--end", "2099-01-01", "--wait")

    # then the mark stops at now + the allowance: the job skipped rows dated later, and a row
    # ingested later but dated before 2099 must still be in the next run's window
    assert result.exit_code == 0, result.output
    mark = stored_mark(project)
    assert mark is not None
    assert before + ALLOWANCE <= mark <= datetime.now(UTC) + ALLOWANCE


def test_waiting_for_the_job_moves_the_mark_and_the_next_run_starts_there(
    project: Path,  # noqa: F811 - the imported fixture
) -> None:
    # given a first incremental run up to a day in 2024, waited for
    first = invoke(project, "materialize-incremental", "trips", "--end", "2024-01-02", "--wait")
    assert first.exit_code == 0, first.output
    assert stored_mark(project) == datetime(2024, 1, 2, tzinfo=UTC)

    # when the next run goes one day further, without waiting
    client = Client(project)
    job = client.materialize_incremental(["trips"], "2024-01-03")

    # then its window starts at the mark; once it is seen to end, the mark is at its end
    assert job is not None
    assert job.record.window.start == datetime(2024, 1, 2, tzinfo=UTC)
    assert client.incremental.state("trips").pending_job == job.id
    job.wait(60, poll_interval=0.2)
    state = client.incremental.state("trips")
    assert (state.materialized_until, state.pending_job) == (datetime(2024, 1, 3, tzinfo=UTC), None)
    # and a run up to the mark again has nothing to do
    assert client.materialize_incremental(["trips"], "2024-01-03") is None
