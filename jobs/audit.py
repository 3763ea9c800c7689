"""Audit job: compare a feature table's online rows with its offline latest row per key.

    ./spark-submit.sh --master 'local[2]' audit --spec /path/or/uri/of/spec.json

The spec (feast_spark.specs.JobSpec, job_type "audit") names one feature table, its entities,
the offline store root, the online store's settings and the options (feast_spark.specs.
AuditOptions: ``sample`` keys or all of them, ``examples`` per kind). The job computes the latest
offline row per key as materialize would at the job's start (future allowance and ``max_age``
included), reads those keys' online rows from the executors and compares them; with every key
audited it also enumerates the online table (feast_spark.spark.audit). The result record
(feast_spark.job_results) is SUCCEEDED whether or not anything differs: its ``details`` hold the
report (feast_spark.audit.AuditReport: counts per kind, differing cells, examples) and
``rows_read`` the keys checked. FAILED means the audit itself could not run.

Exit status and records: feast_spark.spark.job_entry.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime
from typing import TYPE_CHECKING

from feast_spark.errors import JobSpecError, NotFoundError
from feast_spark.job_results import JobResult
from feast_spark.online.base import OnlineTableSchema
from feast_spark.online_store_config import serialize_online_store
from feast_spark.spark.job_entry import JobProgress, run_job, succeeded
from feast_spark.specs import AuditOptions, JobSpec

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_log = logging.getLogger("feast_spark.jobs.audit")


def run(
    spark: SparkSession, spec: JobSpec, started_at: datetime, progress: JobProgress
) -> JobResult:
    """Audit the spec's table; return the SUCCEEDED record with the report (errors propagate)."""
    from delta.tables import DeltaTable

    from feast_spark.spark.audit import audit_table
    from feast_spark.spark.offline_store import read_offline_table

    if len(spec.feature_tables) != 1:
        raise JobSpecError(
            "feature_tables", f"an audit job checks one table, got {len(spec.feature_tables)}"
        )
    if not isinstance(spec.options, AuditOptions):  # JobSpec checks it: for mypy
        raise JobSpecError("options", "an audit job needs its options (online_store)")
    options = spec.options
    store = serialize_online_store(options.online_store)
    table = spec.feature_tables[0]
    schema = OnlineTableSchema.of(spec.project, table, spec.entities)
    path = spec.offline_table_path(table.name)
    if not DeltaTable.isDeltaTable(spark, path):
        raise NotFoundError(
            "offline table", path, spec.project,
            f"feature table '{table.name}' has no Delta table yet; ingest it first",
        )  # fmt: skip
    report = audit_table(
        read_offline_table(spark, path), schema, table, store,
        now=started_at, future_allowance=spec.future_allowance,
        sample=options.sample, examples=options.examples,
    )  # fmt: skip
    _log.info(
        "audited %s: %d keys checked, %s", table.name, report.keys_checked,
        ", ".join(f"{kind} {n}" for kind, n in report.counts.items()),
    )  # fmt: skip
    progress.details = report.to_dict()
    return succeeded(spec, started_at, rows_read=report.keys_checked, details=report.to_dict())


def main(argv: list[str] | None = None, *, spark: SparkSession | None = None) -> int:
    """Run the job; ``spark`` is for tests (a given session is used and left running)."""
    return run_job("audit", run, argv, spark=spark)


if __name__ == "__main__":
    sys.exit(main())
