"""run_job: a spec it cannot read (exit 2, naming the file), and how a failure is recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from feast_spark.spark.job_entry import run_job, task_error


def never_called(*_args: object) -> object:
    raise AssertionError("the job body must not run without a spec")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("", "not valid JSON"),
        ('{"spec_version": 1, "job_id": "ingest-x-1", "job_ty', "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
    ],
)
def test_an_empty_or_truncated_spec_is_an_error_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, reason: str
) -> None:
    # given a spec file that was cut short (or is not a spec document)
    spec = tmp_path / "spec.json"
    spec.write_text(content)

    # when the job starts with it
    status = run_job("ingest", never_called, ["--spec", str(spec)])  # type: ignore[arg-type]

    # then it exits 2 with one line naming the file and what is wrong, never "no spec"
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert str(spec) in err and reason in err
    assert len(err.splitlines()) == 1


def test_a_cancelled_spark_job_is_recorded_as_a_cancel_not_as_a_stack() -> None:
    # given the error PySpark raises when a job group is cancelled (a warm driver's cancel)
    error = RuntimeError(
        "An error occurred while calling o2507.execute.\n: org.apache.spark.SparkException: "
        "[SPARK_JOB_CANCELLED] Job 92 cancelled part of cancelled job group ingest-x-04c111 "
        "SQLSTATE: XXKDA\n\tat org.apache.spark.errors.SparkCoreErrors$.sparkJobCancelled(...)"
    )
    # then the record's error is one line that says so
    assert task_error(error) == (
        "cancelled: Spark stopped the job's work ([SPARK_JOB_CANCELLED] Job 92 cancelled part "
        "of cancelled job group ingest-x-04c111): a cancel, or the warm driver it ran in stopped"
    )
