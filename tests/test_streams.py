"""Stream jobs without Spark: their spec options, the start checks, the progress line."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from feast_spark.cli import cli
from feast_spark.client import Client
from feast_spark.config import SqliteOnlineStoreConfig
from feast_spark.definitions import Entity, Feature, FeatureTable, FileSource, KafkaSource
from feast_spark.errors import ArgumentError, JobSpecError
from feast_spark.specs import JobSpec, StreamOptions
from feast_spark.streams import checkpoint_path, describe_progress, start_stream

SOURCE = KafkaSource(bootstrap_servers="127.0.0.1:9092", topic="t", event_timestamp_column="ts")
TABLE = FeatureTable(
    "driver_stream", ["driver_id"], [Feature("trips", "INT64")],
    FileSource(path="/tmp/unused", event_timestamp_column="ts"), stream_source=SOURCE,
)  # fmt: skip


def test_a_stream_spec_round_trips_through_json() -> None:
    # given a stream spec with every option set
    spec = JobSpec(
        job_id="stream-ingestion-driver-stream-1",
        job_type="stream_ingestion",
        project="demo",
        entities=(Entity("driver_id", "INT64"),),
        feature_tables=(TABLE,),
        offline_store_path="/data/offline",
        options=StreamOptions(
            SqliteOnlineStoreConfig(path="/data/online.db"),
            checkpoint_path="/staging/streams/demo/driver_stream/checkpoint",
            stop_path="/jobs/x/stop-request",
            to="both",
            trigger_interval_s=2.5,
            progress_path="/jobs/x/progress.json",
        ),
    )
    # when written and read back, then it is the same spec, the table's stream source included
    assert JobSpec.from_json(spec.to_json()) == spec


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"to": "offline"}, "'offline'; use online or both"),
        ({"checkpoint_path": ""}, "options.checkpoint_path"),
        ({"trigger_interval_s": 0}, "give seconds > 0"),
    ],
)
def test_bad_stream_options_are_refused(fields: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"checkpoint_path": "/c", "stop_path": "/s", **fields}
    with pytest.raises(JobSpecError, match=message):
        StreamOptions(SqliteOnlineStoreConfig(path="/o.db"), **arguments)  # type: ignore[arg-type]


@pytest.fixture
def client(tmp_path: Path) -> Client:
    (tmp_path / "feature_store.yaml").write_text(
        f"project: demo\nregistry: {tmp_path}/registry.json\n"
        f"offline_store: {{path: {tmp_path}/offline}}\n"
        f"launcher: {{staging_location: {tmp_path}/staging}}\n"
    )
    client = Client(tmp_path / "feature_store.yaml")
    client.apply(Entity("driver_id", "INT64"), TABLE)
    return client


def test_a_table_without_stream_source_cannot_start_a_stream(client: Client) -> None:
    # given a table with a batch source only
    client.apply(
        FeatureTable("batch_only", ["driver_id"], [Feature("x", "INT64")], TABLE.batch_source)
    )
    # when a stream is started for it, then it is refused before any job, naming the fix
    with pytest.raises(ArgumentError, match="has no stream_source; add a kafka stream_source"):
        start_stream(client, "batch_only")
    with pytest.raises(ArgumentError, match="must be online or both"):
        start_stream(client, "driver_stream", to="offline")
    assert client.list_jobs() == []
    # and the command says so naming its TABLE argument (not an option it does not have)
    result = CliRunner().invoke(
        cli, ["stream", "start", "batch_only", "--config", str(client.config.source)]
    )
    assert result.exit_code == 2
    assert "Error: TABLE 'batch_only': has no stream_source" in result.output


def test_the_checkpoint_is_per_table_under_the_staging_location(
    client: Client, tmp_path: Path
) -> None:
    expected = f"{tmp_path}/staging/streams/demo/driver_stream/checkpoint"
    assert checkpoint_path(client, "driver_stream") == expected


def test_the_progress_line_names_rates_lag_and_batch() -> None:
    progress = {"input_rows_per_s": 1200.0, "processed_rows_per_s": 2500.0, "kafka_lag": 17,
                "last_batch_s": 0.41}  # fmt: skip
    assert describe_progress(progress) == (
        "1200.0 rows/s in, 2500.0 processed, lag 17, batch 0.41 s"
    )
    assert describe_progress({"input_rows_per_s": None}) == ""
