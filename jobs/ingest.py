"""Ingest job: load one feature table's batch source into its Delta offline table.

    ./spark-submit.sh --master 'local[2]' ingest --spec /path/or/uri/of/spec.json

The spec (feast_spark.specs.JobSpec, job_type "ingest") names one feature table, its entities,
the offline store root, the event-time window, the future event-time allowance and the options
(a replacement source, max_rejected_fraction). The work is feast_spark.spark.ingest.ingest_table
(both bounds: the window is replaced; otherwise rows are added, none deleted); this file only
wires it up and writes the result record (feast_spark.job_results) to the spec's result_path:
SUCCEEDED with the counts (rows deleted included) and the Delta version, or FAILED with the
error. The record is also printed as one JSON line.

Exit status and records: feast_spark.spark.job_entry.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import TYPE_CHECKING

from feast_spark.errors import JobSpecError
from feast_spark.job_results import JobResult
from feast_spark.spark.job_entry import JobProgress, run_job, succeeded
from feast_spark.specs import IngestOptions, JobSpec

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def run(
    spark: SparkSession, spec: JobSpec, started_at: datetime, _progress: JobProgress
) -> JobResult:
    """Ingest the spec's table and return its SUCCEEDED record (errors propagate)."""
    from feast_spark.spark.ingest import ingest_table

    if len(spec.feature_tables) != 1:
        raise JobSpecError(
            "feature_tables",
            f"an ingest job loads exactly one table, got {len(spec.feature_tables)}",
        )
    table = spec.feature_tables[0]
    known = {entity.name: entity for entity in spec.entities}
    missing = [name for name in table.entities if name not in known]
    if missing:
        raise JobSpecError(
            "entities", f"no definition of {', '.join(missing)} (used by {table.name})"
        )
    if spec.options is not None and not isinstance(spec.options, IngestOptions):
        raise JobSpecError("options", "an ingest job takes ingest options")
    options = spec.options or IngestOptions()

    outcome = ingest_table(
        spark,
        table=table,
        entities=[known[name] for name in table.entities],
        source=options.source or table.batch_source,
        window=spec.window,
        table_path=spec.offline_table_path(table.name),
        job_id=spec.job_id,
        ingested_at=started_at,
        max_rejected_fraction=options.max_rejected_fraction,
        future_allowance=spec.future_allowance,
    )
    return succeeded(
        spec,
        started_at,
        rows_read=outcome.rows_read,
        rows_written=outcome.rows_written,
        rows_rejected=outcome.rows_rejected,
        rows_deleted=outcome.rows_deleted,
        delta_version=outcome.delta_version,
        details={
            "table": table.name,
            "mode": outcome.mode,
            "committed": outcome.committed,
            "rows_already_present": outcome.rows_present,
            "table_path": outcome.table_path,
            "rejected_path": outcome.rejected_path,
            "rejected_version": outcome.rejected_version,
            "statistics_recorded": outcome.statistics is not None,
        },
    )


def main(argv: list[str] | None = None, *, spark: SparkSession | None = None) -> int:
    """Run the job; ``spark`` is for tests (a given session is used and left running)."""
    return run_job("ingest", run, argv, spark=spark)


if __name__ == "__main__":
    sys.exit(main())
