"""Push without Spark: its spec options, the client's checks before any job, the CLI's errors."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from feast_spark.cli import cli
from feast_spark.cli.push import describe_push
from feast_spark.client import Client
from feast_spark.config import SqliteOnlineStoreConfig
from feast_spark.definitions import Entity, Feature, FeatureTable, FileSource
from feast_spark.errors import (
    ArgumentError,
    JobSpecError,
    NotFoundError,
    NothingToPushError,
    SourceSchemaError,
)
from feast_spark.specs import JobSpec, PushOptions

WHEN = datetime(2024, 1, 1, 10, tzinfo=UTC)
TABLE = FeatureTable(
    "driver_push", ["driver_id"], [Feature("trips", "INT64"), Feature("rate", "DOUBLE")],
    FileSource(path="/tmp/unused.parquet", event_timestamp_column="ts",
               field_mapping={"trips": "trip_count"}),
)  # fmt: skip


def rows(**overrides: Any) -> pd.DataFrame:
    columns: dict[str, Any] = {"driver_id": [1], "ts": [WHEN], "trip_count": [7], "rate": [0.5]}
    columns.update(overrides)
    return pd.DataFrame({k: v for k, v in columns.items() if v is not None})


class FakeLauncher:
    """Keeps the specs it is given instead of starting jobs."""

    def __init__(self) -> None:
        self.specs: list[JobSpec] = []

    def submit(self, spec: JobSpec) -> str:
        self.specs.append(spec)
        return spec.job_id


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "feature_store.yaml").write_text(
        f"project: demo\nregistry: {tmp_path}/registry.json\n"
        f"offline_store: {{path: {tmp_path}/offline}}\n"
        f"online_store: {{type: sqlite, path: {tmp_path}/online.db}}\n"
        f"launcher: {{staging_location: {tmp_path}/staging, job_store: {tmp_path}/jobs}}\n"
    )
    client = Client(tmp_path / "feature_store.yaml")
    client.apply(Entity("driver_id", "INT64"), TABLE)
    return tmp_path


@pytest.fixture
def client(project: Path) -> Client:
    return Client(project / "feature_store.yaml")


@pytest.fixture
def launcher(client: Client) -> FakeLauncher:
    fake = FakeLauncher()
    client.__dict__["launcher"] = fake  # the cached property's slot
    return fake


def staged(project: Path) -> list[Path]:
    return (
        sorted((project / "staging").rglob("*.parquet")) if (project / "staging").exists() else []
    )


def test_bad_push_options_are_refused() -> None:
    store = SqliteOnlineStoreConfig(path="/o.db")
    with pytest.raises(JobSpecError, match="'offline'; use online or both"):
        PushOptions(store, "/rows.parquet", "offline")
    with pytest.raises(JobSpecError, match=r"options\.path"):
        PushOptions(store, " ")


def test_in_memory_rows_are_staged_and_the_spec_names_them(
    client: Client, launcher: FakeLauncher, project: Path
) -> None:
    # given rows shaped like the table's batch source (trips is its column trip_count)
    # when they are pushed to both stores
    client.push("driver_push", rows(), to="both")
    # then one push spec names the staged file, the online store and the target
    [spec] = launcher.specs
    assert spec.job_type == "push" and spec.job_id.startswith("push-driver_push-")
    assert isinstance(spec.options, PushOptions) and spec.options.to == "both"
    assert spec.options.path == str(project / "staging" / spec.job_id / "rows.parquet")
    assert pq.read_table(spec.options.path).column("trip_count").to_pylist() == [7]
    assert spec.options.online_store == client.config.online_store
    assert JobSpec.from_json(spec.to_json()) == spec


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (rows(trip_count=None), SourceSchemaError,
         "column 'trip_count' is missing from the rows given; its columns are driver_id, ts, rate"),
        (rows(ts=None), SourceSchemaError, "column 'ts' is missing"),
        (rows().iloc[0:0], NothingToPushError, "the rows given holds no rows; nothing was pushed"),
        ([{"driver_id": 1}], ArgumentError, "give a pandas DataFrame, an Arrow table"),
    ],
)  # fmt: skip
def test_bad_rows_fail_before_any_job_and_stage_nothing(
    client: Client, launcher: FakeLauncher, project: Path, data: object, error: type, message: str
) -> None:
    # when rows missing a column, no rows or a list are pushed, then a clear error, no job
    with pytest.raises(error, match=message):
        client.push("driver_push", data)
    assert launcher.specs == [] and staged(project) == []


def test_a_local_parquet_file_is_checked_from_its_metadata(
    client: Client, launcher: FakeLauncher, tmp_path: Path
) -> None:
    # given an empty parquet file with the right columns, one without `rate`, and a good one
    empty, no_rate, good = (tmp_path / f"{n}.parquet" for n in ("empty", "no_rate", "good"))
    pq.write_table(pa.Table.from_pandas(rows().iloc[0:0], preserve_index=False), empty)
    pq.write_table(pa.Table.from_pandas(rows(rate=None), preserve_index=False), no_rate)
    pq.write_table(  # microseconds: Spark refuses nanosecond parquet times (pandas' default)
        pa.Table.from_pandas(rows(), preserve_index=False), good, coerce_timestamps="us"
    )
    # when each is pushed, then the bad ones are refused naming the file and the column
    with pytest.raises(NothingToPushError, match=f"{empty} holds no rows"):
        client.push("driver_push", empty)
    with pytest.raises(SourceSchemaError, match=f"column 'rate' is missing from {no_rate}"):
        client.push("driver_push", str(no_rate))
    assert launcher.specs == []
    # and the good one is pushed as it is, by its absolute path
    client.push("driver_push", good)
    assert [s.options.path for s in launcher.specs if isinstance(s.options, PushOptions)] == [
        str(good)
    ]


def test_unknown_table_target_and_file_are_refused(client: Client, launcher: FakeLauncher) -> None:
    with pytest.raises(NotFoundError, match="driver_pusx"):
        client.push("driver_pusx", rows())
    with pytest.raises(ArgumentError, match="must be online or both"):
        client.push("driver_push", rows(), to="offline")
    with pytest.raises(ArgumentError, match="does not exist"):
        client.push("driver_push", "/nowhere/rows.parquet")
    assert launcher.specs == []


def test_a_file_that_is_not_parquet_is_refused_in_one_line(
    client: Client, launcher: FakeLauncher, tmp_path: Path
) -> None:
    # given a YAML file where parquet rows are expected (no csv/json suffix: read as parquet)
    wrong = tmp_path / "rows.yaml"
    wrong.write_text("driver_id: 1\n")
    # when it is pushed, then it is refused naming the file, before any job
    with pytest.raises(ArgumentError, match="is not a readable parquet file or folder"):
        client.push("driver_push", wrong)
    assert launcher.specs == []


def run(project: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [*args, "--config", str(project)])
    return result.exit_code, result.stdout + result.stderr


def test_cli_errors_are_one_line_with_the_right_status(project: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.Table.from_pandas(rows().iloc[0:0], preserve_index=False), empty)
    cases = [
        (("push", "nope", "--file", str(empty)), 1, "feature table 'nope'"),
        (("push", "driver_push", "--file", str(empty)), 1, "holds no rows; nothing was pushed"),
        (("push", "driver_push", "--file", "/nowhere/x.parquet"), 2, "--file '/nowhere/x.parquet'"),
        (("push", "driver_push", "--file", str(empty), "--to", "offline"), 2, "'offline'"),
        (("push", "driver_push"), 2, "Missing option '--file'"),
    ]
    for args, status, text in cases:
        # when the command runs, then it exits with the status and one clear line, no traceback
        code, out = run(project, *args)
        assert code == status and text in out and "Traceback" not in out, (args, out)
        errors = [line for line in out.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1 and text in errors[0], out


def test_describe_push_says_what_went_where() -> None:
    details = {"table": "t", "to": "both", "rows_written": 2, "rows_rejected": 1,
               "rejected_path": "/o/t.rejected", "rows_offline": 3, "offline_version": 4}  # fmt: skip
    assert describe_push(details) == (
        "t: 2 rows written online, 1 rejected (see /o/t.rejected), 3 appended offline (version 4)"
    )
    assert describe_push({"table": "t", "to": "online", "rows_written": 1}) == (
        "t: 1 rows written online, 0 rejected"
    )


def test_pandas_rows_with_nanosecond_times_are_staged_as_spark_reads_them(
    client: Client, launcher: FakeLauncher
) -> None:
    # given rows from pandas, whose times are nanosecond datetime64 (pandas' default)
    data = rows(ts=pd.to_datetime([WHEN]).as_unit("ns"))
    assert str(data["ts"].dtype) == "datetime64[ns, UTC]"
    # when they are pushed
    client.push("driver_push", data)
    # then the staged file holds microsecond times (Spark refuses parquet TIMESTAMP(NANOS))
    [spec] = launcher.specs
    assert isinstance(spec.options, PushOptions)
    staged_ts = pq.read_schema(spec.options.path).field("ts").type
    assert staged_ts == pa.timestamp("us", tz="UTC")
    assert pq.read_table(spec.options.path).column("ts").to_pylist() == [WHEN]


def test_a_local_parquet_file_with_nanosecond_times_is_refused_before_any_job(
    client: Client, launcher: FakeLauncher, tmp_path: Path
) -> None:
    # given a parquet file written by pandas with nanosecond times
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pandas(rows(ts=pd.to_datetime([WHEN]).as_unit("ns"))), path)
    assert pq.read_schema(path).field("ts").type == pa.timestamp("ns", tz="UTC")
    # when it is pushed, then one line names the column, the file and how to write it
    with pytest.raises(SourceSchemaError) as refused:
        client.push("driver_push", path)
    message = str(refused.value)
    assert f"column 'ts' of {path} holds nanosecond timestamps" in message
    assert "coerce_timestamps='us'" in message
    assert launcher.specs == []
