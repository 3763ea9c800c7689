"""Ingest job: load one feature table's batch source into its Delta offline table.

    ./spark-submit.sh --master 'local[2]' ingest --spec /path/or/uri/of/spec.json

The spec (feast_spark.specs.JobSpec, job_type "ingest") names one feature table, its entities,
the offline store root, the event-time window and the options (a replacement source,
max_rejected_fraction). The work is feast_spark.spark.offline_store.ingest_table; this file only
wires it up and writes the result record (feast_spark.job_results) to the spec's result_path:
SUCCEEDED with the counts and the Delta version, or FAILED with the error. The record is also
printed as one JSON line.

Exit status: 0 on success, 1 when the job failed (a record says why), 2 when the spec cannot be
read (there is no result_path to write to).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from feast_spark.errors import FeastSparkError, JobSpecError
from feast_spark.job_results import FAILED, SUCCEEDED, JobResult, read_text, write_result
from feast_spark.specs import IngestOptions, JobSpec

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_log = logging.getLogger("feast_spark.jobs.ingest")
_MAX_ERROR_CHARS = 4000


def run(spark: SparkSession, spec: JobSpec, started_at: datetime) -> JobResult:
    """Ingest the spec's table and return its SUCCEEDED record (errors propagate)."""
    from feast_spark.spark.offline_store import ingest_table

    if spec.job_type != "ingest":
        raise JobSpecError("job_type", f"{spec.job_type!r}; this job runs 'ingest' specs")
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
    )
    return JobResult(
        job_id=spec.job_id,
        job_type=spec.job_type,
        status=SUCCEEDED,
        started_at=started_at,
        finished_at=datetime.now(UTC),
        window=spec.window,
        rows_read=outcome.rows_read,
        rows_written=outcome.rows_written,
        rows_rejected=outcome.rows_rejected,
        delta_version=outcome.delta_version,
        details={
            "table": table.name,
            "table_path": outcome.table_path,
            "rejected_path": outcome.rejected_path,
            "rejected_version": outcome.rejected_version,
        },
    )


def main(argv: list[str] | None = None, *, spark: SparkSession | None = None) -> int:
    """Run the job; ``spark`` is for tests (a given session is used and left running)."""
    parser = argparse.ArgumentParser(prog="ingest", description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, help="path or URI of the job spec (JSON)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    started_at = datetime.now(UTC)
    try:
        spec = JobSpec.from_json(read_text(args.spec, kind="job spec"))
    except FeastSparkError as error:
        print(f"ingest: {error}", file=sys.stderr)
        return 2

    own_session = spark is None
    try:
        if spark is None:
            from feast_spark.spark.session import build_spark_session

            spark = build_spark_session(f"feast-spark-ingest-{spec.job_id}")
        result = run(spark, spec, started_at)
    except FeastSparkError as error:
        result = _failed(spec, started_at, str(error))
    except Exception as error:  # unexpected: still leave a record, with the trace in the log
        _log.error("job %s failed:\n%s", spec.job_id, traceback.format_exc())
        result = _failed(spec, started_at, f"{type(error).__name__}: {error}")
    finally:
        if own_session and spark is not None:
            spark.stop()

    status = 0 if result.succeeded else 1
    if spec.result_path:
        try:
            write_result(spec.result_path, result)
        except Exception:  # the launcher will see the exit status and no record
            _log.error(
                "cannot write the result to %s:\n%s", spec.result_path, traceback.format_exc()
            )
            status = 1
    print(json.dumps(result.to_dict(), sort_keys=True), flush=True)
    return status


def _failed(spec: JobSpec, started_at: datetime, message: str) -> JobResult:
    if len(message) > _MAX_ERROR_CHARS:
        message = message[:_MAX_ERROR_CHARS] + " [...]"
    return JobResult(
        job_id=spec.job_id,
        job_type=spec.job_type,
        status=FAILED,
        started_at=started_at,
        finished_at=datetime.now(UTC),
        window=spec.window,
        error=message,
    )


if __name__ == "__main__":
    sys.exit(main())
