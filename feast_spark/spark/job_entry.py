"""What every job entry point does around its work: spec in, session, result record out.

A job under ``jobs/`` is ``sys.exit(run_job("ingest", body))``: this module parses
``--spec``, builds the session, calls ``body``, and writes the result record
(:mod:`feast_spark.job_results`) to the spec's ``result_path`` whatever happens: SUCCEEDED with
the body's figures, or FAILED with the error. The record is also printed as one JSON line.

Exit status: 0 on success, 1 when the job failed (the record says why), 2 when the spec cannot
be read (there is then no ``result_path`` to write to).

Fault-suite hook (tests only): with ``FEAST_SPARK_TEST_PAUSE_AT`` set to a phase name, the job
prints ``feast-spark: paused at <phase>`` and sleeps ``FEAST_SPARK_TEST_PAUSE_S`` seconds (default
300) when it reaches that phase, so a test can kill the driver at a known point. Phases:
``session`` (the session is up, nothing read or written yet), ``committed`` (the body returned:
its Delta commit or online writes are done, the result record is not written yet) and
``stream_batch`` (a stream's micro-batch is written everywhere, not yet committed by Spark).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from feast_spark.errors import FeastSparkError, JobSpecError
from feast_spark.job_results import FAILED, SUCCEEDED, JobResult, write_result
from feast_spark.specs import JobSpec
from feast_spark.storage import read_text

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

MAX_ERROR_CHARS = 4000
PAUSE_AT_ENV = "FEAST_SPARK_TEST_PAUSE_AT"
PAUSE_S_ENV = "FEAST_SPARK_TEST_PAUSE_S"
# The Python error at the bottom of a failed Spark task's traceback, e.g.
# "feast_spark.errors.OnlineStoreError: cassandra online store at h:9042: ..."
_OUR_ERROR = re.compile(r"^feast_spark\.errors\.(\w+): (.+)$", re.MULTILINE)
_CANCELLED = re.compile(r"\[SPARK_JOB_CANCELLED\][^\n]*?cancelled job group [\w.-]+")
_PYTHON_ERROR = re.compile(r"^(?:[\w.]+\.)?(\w+(?:Error|Exception)): (.+)$", re.MULTILINE)


@dataclass
class JobProgress:
    """What a job body has done so far, reported in its record even when it fails later.

    Attributes:
        rows_written: Rows written so far.
        details: Job-specific JSON values.
    """

    rows_written: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


JobBody = Callable[["SparkSession", JobSpec, datetime, JobProgress], JobResult]


def run_job(
    job_type: str,
    body: JobBody,
    argv: list[str] | None = None,
    *,
    spark: SparkSession | None = None,
) -> int:
    """Run one job from its command line and return the exit status.

    Args:
        job_type: The spec's expected ``job_type``; another is refused.
        body: Does the work and returns the SUCCEEDED record; raises on failure.
        argv: Command-line arguments (default: ``sys.argv[1:]``).
        spark: A session to use and leave running (tests); None builds one and stops it.
    """
    parser = argparse.ArgumentParser(prog=job_type, description=f"feast-spark {job_type} job")
    parser.add_argument("--spec", required=True, help="path or URI of the job spec (JSON)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    log = logging.getLogger(f"feast_spark.jobs.{job_type}")

    started_at = datetime.now(UTC)
    try:
        text = read_text(args.spec, kind="job spec")
        if not text.strip():  # an empty file is a damaged spec, not an empty one
            raise JobSpecError(
                "<document>", f"not valid JSON: the file is empty ({len(text)} bytes)"
            )
        spec = JobSpec.from_json(text)
        if spec.job_type != job_type:
            raise JobSpecError("job_type", f"{spec.job_type!r}; this job runs '{job_type}' specs")
    except FeastSparkError as error:
        where = "" if args.spec in str(error) else f" (spec {args.spec})"
        print(f"{job_type}: {error}{where}", file=sys.stderr)
        return 2

    progress = JobProgress()
    own_session = spark is None
    try:
        if spark is None:
            from feast_spark.spark.session import build_spark_session, size_delta_snapshots

            spark = build_spark_session(f"feast-spark-{job_type}-{spec.job_id}")
            size_delta_snapshots(
                spark, [spec.offline_table_path(table.name) for table in spec.feature_tables]
            )
        pause_point("session")
        result = body(spark, spec, started_at, progress)
        pause_point("committed")
    except FeastSparkError as error:
        result = _failed(spec, started_at, str(error), progress)
    except Exception as error:  # a Spark task failed, or something unexpected
        log.error("job %s failed:\n%s", spec.job_id, traceback.format_exc())
        result = _failed(spec, started_at, task_error(error), progress)
    finally:
        if own_session and spark is not None:
            from feast_spark.spark.session import stop_session

            stop_session(spark)

    status = 0 if result.succeeded else 1
    if spec.result_path:
        try:
            write_result(spec.result_path, result)
        except Exception:  # the launcher will see the exit status and no record
            log.error(
                "cannot write the result to %s:\n%s", spec.result_path, traceback.format_exc()
            )
            status = 1
    print(json.dumps(result.to_dict(), sort_keys=True), flush=True)
    return status


def pause_point(phase: str) -> None:
    """Fault-suite hook: pause here when ``FEAST_SPARK_TEST_PAUSE_AT`` names ``phase``."""
    if os.environ.get(PAUSE_AT_ENV) != phase:
        return
    print(f"feast-spark: paused at {phase}", flush=True)
    time.sleep(float(os.environ.get(PAUSE_S_ENV, "300")))


def succeeded(spec: JobSpec, started_at: datetime, **figures: Any) -> JobResult:
    """The SUCCEEDED record of ``spec``'s run, ending now, with the job's ``figures``."""
    return _record(spec, started_at, SUCCEEDED, **figures)


def task_error(error: BaseException) -> str:
    """The error a Spark task raised (its Python exception line), else the exception itself."""
    text = str(error)
    cancelled = _CANCELLED.search(text)
    if cancelled:  # not a failure of the job's own: say so rather than print Spark's stack
        return (
            f"cancelled: Spark stopped the job's work ({cancelled.group(0)}): a cancel, or the "
            "warm driver it ran in stopped"
        )
    found = _OUR_ERROR.findall(text) or _PYTHON_ERROR.findall(text)
    if found:
        name, message = found[-1]
        return f"{name}: {message}"
    return f"{type(error).__name__}: {text}"


def _failed(spec: JobSpec, started_at: datetime, message: str, progress: JobProgress) -> JobResult:
    if len(message) > MAX_ERROR_CHARS:
        message = message[:MAX_ERROR_CHARS] + " [...]"
    return _record(
        spec,
        started_at,
        FAILED,
        rows_written=progress.rows_written,
        error=message,
        details=dict(progress.details),
    )


def _record(spec: JobSpec, started_at: datetime, status: str, **fields: Any) -> JobResult:
    return JobResult(
        job_id=spec.job_id,
        job_type=spec.job_type,
        status=status,
        started_at=started_at,
        finished_at=datetime.now(UTC),
        window=spec.window,
        **fields,
    )
