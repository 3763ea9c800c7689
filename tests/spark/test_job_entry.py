"""run_job's handling of a spec it cannot read: exit 2, naming the file (issue 18, defect 9)."""

from __future__ import annotations

from pathlib import Path

import pytest

from feast_spark.spark.job_entry import run_job


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
