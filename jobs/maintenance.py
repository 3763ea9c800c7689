"""Maintenance job: compact (Delta OPTIMIZE) or vacuum the offline tables of a spec.

    ./spark-submit.sh --master 'local[2]' maintenance --spec /path/or/uri/of/spec.json

Compaction rewrites a whole table into time-ordered files (a spec with a window is refused); data
and readers are undisturbed. Vacuum deletes files that no version within the table's
``delta.deletedFileRetentionDuration`` (7 days by default) needs; Delta's safety check against
shorter retentions stays on. A vacuum that would delete a file of a version that a kept
training dataset read (the spec's ``keep_versions``) fails first, deleting nothing.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import TYPE_CHECKING

from feast_spark.errors import JobSpecError, NotFoundError
from feast_spark.job_results import JobResult
from feast_spark.spark.job_entry import JobProgress, run_job, succeeded
from feast_spark.specs import JobSpec, MaintenanceOptions

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def run(
    spark: SparkSession, spec: JobSpec, started_at: datetime, progress: JobProgress
) -> JobResult:
    """Compact or vacuum every table of the spec; return the SUCCEEDED record."""
    from delta.tables import DeltaTable

    from feast_spark.spark.maintenance import check_vacuum_keeps, compact, vacuum

    options = spec.options
    if not isinstance(options, MaintenanceOptions):
        raise JobSpecError("options", "a maintenance job needs its options (action)")
    if spec.window.start is not None or spec.window.end is not None:
        raise JobSpecError(
            "window", f"{options.action} works on whole tables; give the job no window"
        )
    tables = progress.details.setdefault("tables", {})
    for table in spec.feature_tables:
        path = spec.offline_table_path(table.name)
        if not DeltaTable.isDeltaTable(spark, path):
            raise NotFoundError(
                "offline table",
                path,
                spec.project,
                f"'{table.name}' has no Delta table yet; ingest it first",
            )
        if options.action == "compact":
            tables[table.name] = compact(spark, path)
        else:
            check_vacuum_keeps(spark, path, table.name, options.keep_versions.get(table.name, {}))
            vacuum(spark, path)
            tables[table.name] = {"vacuumed": True}
    return succeeded(
        spec,
        started_at,
        details={"action": options.action, **progress.details},
    )


def main(argv: list[str] | None = None, *, spark: SparkSession | None = None) -> int:
    """Run the job; ``spark`` is for tests (a given session is used and left running)."""
    return run_job("maintenance", run, argv, spark=spark)


if __name__ == "__main__":
    sys.exit(main())
