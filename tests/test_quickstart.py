"""The README's first command, end to end: a sample project through every step of the pipeline.

Slow (several Spark jobs over 870,000 rows each time): marked ``slow``, so a plain ``pytest``
skips it; CI runs it, after running README command 1 itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest

from feast_spark.client import Client

pytestmark = pytest.mark.slow


def feast_spark_command() -> str:
    command = shutil.which("feast-spark", path=str(Path(sys.executable).parent))
    assert command, "feast-spark is not installed: pip install -e ."
    return command


def latest_source_row(folder: Path, driver_id: int) -> dict[str, object]:
    """The newest source row of one driver, read independently of feast-spark."""
    rows = ds.dataset(folder / "data" / "source" / "driver_stats", partitioning="hive").to_table(
        filter=pc.field("driver_id") == driver_id
    )
    newest = rows.sort_by([("event_timestamp", "descending")]).slice(0, 1).to_pylist()[0]
    return newest


def run_quickstart(folder: Path, *extra: str) -> str:
    # given a fresh folder, when the README's first command runs
    done = subprocess.run(
        [feast_spark_command(), "quickstart", str(folder), *extra],
        capture_output=True,
        text=True,
        timeout=1500,
        env={**os.environ, "FEAST_SPARK_CONFIG": ""},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def check_project(folder: Path, output: str) -> None:
    # then every step ran and printed its rows
    assert "720000 rows written, 0 rejected" in output
    assert "150000 rows written, 0 rejected" in output
    assert "2000 rows ->" in output
    assert "6000 rows written (latest value per key)" in output  # 1,000 drivers + 5,000 customers
    assert "feast-spark serve --port 6566" in output and "curl -s localhost:6566" in output
    # and the project is a working one whose online values are the newest source rows
    client = Client(folder / "feature_store.yaml")
    try:
        response = client.get_online_features(
            ["driver_stats:conv_rate", "driver_stats:avg_daily_trips"],
            [{"driver_id": 1001}, {"driver_id": 1999}],
        ).to_dict()
    finally:
        client.close()
    for index, driver in enumerate((1001, 1999)):
        newest = latest_source_row(folder, driver)
        assert response["driver_stats:conv_rate"][index] == newest["conv_rate"]
        assert response["driver_stats:avg_daily_trips"][index] == newest["avg_daily_trips"]
        assert response["driver_stats:conv_rate__status"][index] == "PRESENT"
    assert len(client.launcher.list()) == 4


def test_quickstart_on_the_embedded_defaults(tmp_path: Path) -> None:
    output = run_quickstart(tmp_path / "qs")
    check_project(tmp_path / "qs", output)


@pytest.mark.cassandra
def test_quickstart_on_cassandra(tmp_path: Path, cassandra_node: object) -> None:
    output = run_quickstart(tmp_path / "qs", "--online", "cassandra")
    assert "cassandra online store" in output
    check_project(tmp_path / "qs", output)
