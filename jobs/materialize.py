"""Materialize job: push the latest offline row of every key in a window to the online store.

    ./spark-submit.sh --master 'local[2]' materialize --spec /path/or/uri/of/spec.json

The spec (feast_spark.specs.JobSpec, job_type "materialize") names the feature tables, their
entities, the offline store root, the event-time window [start, end) (open bounds allowed) and
the online store's settings (``options.online_store``, as in feature_store.yaml). For each table, in
order: create or extend the online table, read the window of its Delta table, skip rows dated
after the job's start plus the spec's future_event_time_allowance_s (counted: rows_future), keep
the latest row per key and write it from the executors (feast_spark.spark.materialize). The
result record (feast_spark.job_results) goes to the spec's result_path: SUCCEEDED with the rows
written per table, or FAILED with the error (and the tables finished before it). It is also
printed as one JSON line.

Exit status and records: feast_spark.spark.job_entry.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

from feast_spark.errors import JobSpecError, NotFoundError
from feast_spark.job_results import JobResult
from feast_spark.online.base import OnlineTableSchema
from feast_spark.online_store_config import serialize_online_store
from feast_spark.spark.job_entry import JobProgress, run_job, succeeded
from feast_spark.specs import JobSpec, MaterializeOptions

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from feast_spark.spark.materialize import TableOutcome

_log = logging.getLogger("feast_spark.jobs.materialize")


def run(
    spark: SparkSession, spec: JobSpec, started_at: datetime, progress: JobProgress
) -> JobResult:
    """Materialize every table of the spec; return the SUCCEEDED record (errors propagate).

    ``progress`` records each finished table, so a failure can report them.
    """
    from delta.tables import DeltaTable

    from feast_spark.spark.materialize import materialize_table
    from feast_spark.spark.offline_store import read_offline_table

    if not isinstance(spec.options, MaterializeOptions):  # JobSpec checks it: for mypy
        raise JobSpecError("options", "a materialize job needs its options (online_store)")
    # The writers on the executors get the plain mapping: it ships in a closure unchanged.
    store = serialize_online_store(spec.options.online_store)
    done: list[TableOutcome] = []
    progress.rows_written, progress.details = 0, _details(store, done)
    schemas = [OnlineTableSchema.of(spec.project, t, spec.entities) for t in spec.feature_tables]

    for table, schema in zip(spec.feature_tables, schemas, strict=True):
        path = spec.offline_table_path(table.name)
        if not DeltaTable.isDeltaTable(spark, path):
            raise NotFoundError(
                "offline table", path, spec.project,
                f"feature table '{table.name}' has no Delta table yet; ingest it first",
            )  # fmt: skip
        offline = read_offline_table(spark, path, spec.window.start, spec.window.end)
        outcome = materialize_table(
            offline, schema, table, spec.window, store,
            latest_event=started_at + spec.future_allowance,
        )  # fmt: skip
        _log.info(
            "materialized %s: %d rows written, %d expired, %d future skipped", table.name,
            outcome.rows_written, outcome.rows_expired, outcome.rows_future,
        )  # fmt: skip
        done.append(outcome)
        progress.rows_written = sum(o.rows_written for o in done)
        progress.details = _details(store, done)
    return succeeded(spec, started_at, rows_written=progress.rows_written, details=progress.details)


def main(argv: list[str] | None = None, *, spark: SparkSession | None = None) -> int:
    """Run the job; ``spark`` is for tests (a given session is used and left running)."""
    return run_job("materialize", run, argv, spark=spark)


def _details(store: dict[str, Any], done: list[TableOutcome]) -> dict[str, Any]:
    return {
        "online_store": store.get("type"),
        "tables": [outcome.to_dict() for outcome in done],
        "rows_expired": sum(o.rows_expired for o in done),
        "rows_future": sum(o.rows_future for o in done),
    }


if __name__ == "__main__":
    sys.exit(main())
