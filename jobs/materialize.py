"""Materialize job: push the latest offline row of every key in a window to the online store.

    ./spark-submit.sh --master 'local[2]' materialize --spec /path/or/uri/of/spec.json

The spec (feast_spark.specs.JobSpec, job_type "materialize") names the feature tables, their
entities, the offline store root, the event-time window [start, end) (open bounds allowed) and
the online store's settings (``online_store``, as in feature_store.yaml). For each table, in
order: create or extend the online table, read the window of its Delta table, keep the latest row
per key and write it from the executors (feast_spark.spark.materialize). The result record
(feast_spark.job_results) goes to the spec's result_path: SUCCEEDED with the rows written per
table, or FAILED with the error (and the tables finished before it). It is also printed as one
JSON line.

Exit status: 0 on success, 1 when the job failed (a record says why), 2 when the spec cannot be
read (there is no result_path to write to).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import traceback
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from feast_spark.errors import FeastSparkError, JobSpecError, NotFoundError
from feast_spark.job_results import FAILED, SUCCEEDED, JobResult, read_text, write_result
from feast_spark.online.base import OnlineTableSchema, online_store_config, online_store_mapping
from feast_spark.specs import JobSpec

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from feast_spark.spark.materialize import TableOutcome

_log = logging.getLogger("feast_spark.jobs.materialize")
_MAX_ERROR_CHARS = 4000
# The Python error at the bottom of a failed Spark task's traceback, e.g.
# "feast_spark.errors.OnlineStoreError: cassandra online store at h:9042: ..."
_OUR_ERROR = re.compile(r"^feast_spark\.errors\.(\w+): (.+)$", re.MULTILINE)
_PYTHON_ERROR = re.compile(r"^(?:[\w.]+\.)?(\w+(?:Error|Exception)): (.+)$", re.MULTILINE)


def run(
    spark: SparkSession, spec: JobSpec, started_at: datetime, done: list[TableOutcome]
) -> JobResult:
    """Materialize every table of the spec; return the SUCCEEDED record (errors propagate).

    ``done`` collects each finished table, so a failure can report them.
    """
    from delta.tables import DeltaTable

    from feast_spark.spark.materialize import materialize_table
    from feast_spark.spark.offline_store import read_offline_table

    if spec.job_type != "materialize":
        raise JobSpecError("job_type", f"{spec.job_type!r}; this job runs 'materialize' specs")
    if not spec.feature_tables:
        raise JobSpecError("feature_tables", "a materialize job needs at least one table")
    if not spec.online_store:
        raise JobSpecError("online_store", "missing; give the online store's settings")
    store = online_store_mapping(online_store_config(spec.online_store))
    schemas = [OnlineTableSchema.of(spec.project, t, spec.entities) for t in spec.feature_tables]

    for table, schema in zip(spec.feature_tables, schemas, strict=True):
        path = spec.offline_table_path(table.name)
        if not DeltaTable.isDeltaTable(spark, path):
            raise NotFoundError(
                "offline table", path, spec.project,
                f"feature table '{table.name}' has no Delta table yet; ingest it first",
            )  # fmt: skip
        offline = read_offline_table(spark, path, spec.window.start, spec.window.end)
        outcome = materialize_table(offline, schema, table, spec.window, store)
        _log.info(
            "materialized %s: %d rows written, %d expired", table.name, outcome.rows_written,
            outcome.rows_expired,
        )  # fmt: skip
        done.append(outcome)
    return JobResult(
        job_id=spec.job_id,
        job_type=spec.job_type,
        status=SUCCEEDED,
        started_at=started_at,
        finished_at=datetime.now(UTC),
        window=spec.window,
        rows_written=sum(o.rows_written for o in done),
        details=_details(store, done),
    )


def main(argv: list[str] | None = None, *, spark: SparkSession | None = None) -> int:
    """Run the job; ``spark`` is for tests (a given session is used and left running)."""
    parser = argparse.ArgumentParser(prog="materialize", description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, help="path or URI of the job spec (JSON)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    started_at = datetime.now(UTC)
    try:
        spec = JobSpec.from_json(read_text(args.spec, kind="job spec"))
    except FeastSparkError as error:
        print(f"materialize: {error}", file=sys.stderr)
        return 2

    done: list[TableOutcome] = []
    own_session = spark is None
    try:
        if spark is None:
            from feast_spark.spark.session import build_spark_session

            spark = build_spark_session(f"feast-spark-materialize-{spec.job_id}")
        result = run(spark, spec, started_at, done)
    except FeastSparkError as error:
        result = _failed(spec, started_at, str(error), done)
    except Exception as error:  # a Spark task failed, or something unexpected
        _log.error("job %s failed:\n%s", spec.job_id, traceback.format_exc())
        result = _failed(spec, started_at, _task_error(error), done)
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


def _details(store: dict[str, Any], done: list[TableOutcome]) -> dict[str, Any]:
    return {
        "online_store": store.get("type"),
        "tables": [outcome.to_dict() for outcome in done],
        "rows_expired": sum(o.rows_expired for o in done),
    }


def _task_error(error: BaseException) -> str:
    """The error a Spark task raised (its Python exception line), else the exception itself."""
    text = str(error)
    found = _OUR_ERROR.findall(text) or _PYTHON_ERROR.findall(text)
    if found:
        name, message = found[-1]
        return f"{name}: {message}"
    return f"{type(error).__name__}: {text}"


def _failed(
    spec: JobSpec, started_at: datetime, message: str, done: list[TableOutcome]
) -> JobResult:
    if len(message) > _MAX_ERROR_CHARS:
        message = message[:_MAX_ERROR_CHARS] + " [...]"
    store = dict(spec.online_store or {})
    return JobResult(
        job_id=spec.job_id,
        job_type=spec.job_type,
        status=FAILED,
        started_at=started_at,
        finished_at=datetime.now(UTC),
        window=spec.window,
        rows_written=sum(o.rows_written for o in done),
        error=message,
        details=_details(store, done),
    )


if __name__ == "__main__":
    sys.exit(main())
