"""``feast-spark push`` through the real launcher: a spark-submit per push, waited for."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from feast_spark.cli import cli
from feast_spark.client import Client

from .small_project import write_project

pytestmark = pytest.mark.slow


def run(project: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [*args, "--config", str(project)])
    return result.exit_code, result.stdout, result.stderr


def trips(project: Path, drivers: list[int]) -> list[object]:
    client = Client(project / "feature_store.yaml")
    try:
        values = client.get_online_features(
            ["driver_push:trips"], [{"driver_id": d} for d in drivers]
        ).to_dict()
    finally:
        client.close()
    return list(values["driver_push:trips"])


def test_push_waits_prints_what_went_where_and_fails_on_a_failed_job(tmp_path: Path) -> None:
    # given a project with a table, and a file of three rows, one of them bad
    project = write_project(tmp_path, "driver_push")
    assert run(project, "apply", "-f", str(project / "definitions.yaml"))[0] == 0
    rows = project / "rows.parquet"
    pq.write_table(
        pa.table({"driver_id": [1, 2, 3], "ts": ["2024-01-01T10:00:00Z"] * 3,
                  "trips": ["7", "x", "5"]}), rows,
    )  # fmt: skip

    # when it is pushed to both stores
    code, out, err = run(project, "push", "driver_push", "--file", str(rows), "--to", "both")

    # then the command waited, and says what was read, written and rejected, and where
    assert code == 0, out + err
    summary, where = out.strip().splitlines()
    assert re.fullmatch(
        r"job push-driver_push-\S+ SUCCEEDED in [\d.]+s: rows_read=3, rows_written=2, "
        r"rows_rejected=1, delta_version=\d+", summary
    ), summary  # fmt: skip
    assert where == (
        f"driver_push: 2 rows written online, 1 rejected (see {project}/offline/demo/"
        f"driver_push.rejected), 2 appended offline (version 1)"
    )
    assert trips(project, [1, 2, 3]) == [7, None, 5]

    # when a csv file without the trips column is pushed, then the job fails: exit 1, one line
    bad = project / "rows.csv"
    bad.write_text("driver_id,ts\n1,2024-01-01T11:00:00Z\n")
    code, out, err = run(project, "push", "driver_push", "--file", str(bad))
    assert code == 1, out + err
    [line] = [x for x in err.splitlines() if x.startswith("Error:")]
    assert "FAILED" in line and "column 'trips' is missing from the source" in line, err
    assert trips(project, [1]) == [7]
