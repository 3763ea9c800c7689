"""Client checks that happen before any Spark work: bad requests never launch a job."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from feast_spark.client import Client
from feast_spark.definitions import Feature
from feast_spark.errors import DefinitionError, NotFoundError, SourceSchemaError

EXAMPLE = Path(__file__).parents[1] / "conf" / "example" / "definitions"
CONFIG = "project: demo\nregistry: data/registry.json\noffline_store: {path: data/offline}\n"
WHEN = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def client(tmp_path: Path) -> Client:
    (tmp_path / "feature_store.yaml").write_text(CONFIG)
    client = Client(tmp_path / "feature_store.yaml")
    client.apply_files([EXAMPLE])
    return client


def launched(client: Client) -> int:
    return len(client.launcher.list())


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (pd.DataFrame({"event_timestamp": [WHEN]}), "column 'driver_id' is missing"),
        (
            pd.DataFrame({"driver_id": ["a"], "event_timestamp": [WHEN]}),
            "is string in the entity rows, declared INT64",
        ),
        (pd.DataFrame({"driver_id": [1]}), "column 'event_timestamp' is missing"),
        (
            pd.DataFrame({"driver_id": [1], "event_timestamp": [1.5]}),
            "column 'event_timestamp' is double",
        ),
        (
            pd.DataFrame(
                {
                    "driver_id": pd.Series([], dtype="int64"),
                    "event_timestamp": pd.Series([], dtype="datetime64[us, UTC]"),
                }
            ),
            "has no rows",
        ),
    ],
)
def test_bad_in_memory_entity_rows_fail_before_any_job(
    client: Client, rows: pd.DataFrame, message: str
) -> None:
    with pytest.raises(SourceSchemaError, match=message) as caught:
        client.get_historical_features(["driver_stats:conv_rate"], rows)
    assert str(caught.value).startswith("entity rows: column")
    assert launched(client) == 0


def test_bad_parquet_entity_rows_fail_before_any_job(client: Client, tmp_path: Path) -> None:
    path = tmp_path / "entities.parquet"
    pq.write_table(
        pa.table(
            {"driver": [1], "event_timestamp": pa.array([WHEN], pa.timestamp("us", tz="UTC"))}
        ),
        path,
    )
    with pytest.raises(SourceSchemaError, match="column 'driver_id' is missing"):
        client.get_historical_features("driver_stats:*", str(path))
    assert launched(client) == 0


@pytest.mark.parametrize(
    ("refs", "error", "message"),
    [
        ("nope:conv_rate", NotFoundError, "feature table 'nope' not found"),
        ("driver_stats:nope", NotFoundError, "driver_stats:nope"),
        ("driver_stats", DefinitionError, r"is a feature table: write 'driver_stats:conv_rate'"),
        ("conv_rate", DefinitionError, "name its table: 'driver_stats:conv_rate'"),
        ("driver_stats:conv_rate,driver_stats:conv_rate", DefinitionError, "requested twice"),
    ],
)
def test_bad_feature_refs_fail_before_any_job(
    client: Client, refs: str, error: type[Exception], message: str
) -> None:
    rows = pd.DataFrame({"driver_id": [1], "event_timestamp": [WHEN]})
    with pytest.raises(error, match=message):
        client.get_historical_features(refs, rows)
    assert launched(client) == 0


def test_bad_windows_and_fractions_fail_before_any_job(client: Client) -> None:
    with pytest.raises(ValueError, match="--start|start"):
        client.ingest("driver_stats", start="yesterday")
    with pytest.raises(ValueError, match="between 0 and 1"):
        client.ingest("driver_stats", max_rejected_fraction=2)
    with pytest.raises(NotFoundError, match="feature table 'nope'"):
        client.materialize(["nope"], "2024-01-01", "2024-01-02")
    assert launched(client) == 0


def _with_new_feature(client: Client) -> None:
    table = client.get_feature_table("driver_stats")
    client.apply(dataclasses.replace(table, features=[*table.features, Feature("bonus", "DOUBLE")]))


def test_online_reads_reuse_definitions_for_the_registry_cache_ttl(tmp_path: Path) -> None:
    # given: a serving client that has read driver_stats:* once
    (tmp_path / "feature_store.yaml").write_text(CONFIG)
    serving = Client(tmp_path / "feature_store.yaml")
    serving.apply_files([EXAMPLE])
    before = serving.get_online_features("driver_stats:*", [{"driver_id": 1}]).to_dict()
    # when: another process adds a feature
    _with_new_feature(Client(tmp_path / "feature_store.yaml"))
    # then: within the TTL the serving client still reads the definitions it cached...
    cached = serving.get_online_features("driver_stats:*", [{"driver_id": 1}]).to_dict()
    assert cached.keys() == before.keys()
    # ...and an apply through the serving client itself drops its cache at once
    serving.apply(serving.get_feature_table("driver_stats"))
    fresh = serving.get_online_features("driver_stats:*", [{"driver_id": 1}]).to_dict()
    assert "driver_stats:bonus" in fresh
    assert fresh["driver_stats:bonus__status"] == ["NOT_FOUND"]


def test_a_zero_registry_cache_ttl_reads_the_registry_on_every_request(tmp_path: Path) -> None:
    # given: registry.cache_ttl_seconds 0
    (tmp_path / "feature_store.yaml").write_text(
        CONFIG.replace("registry: data/registry.json", "registry: {path: data/registry.json, "
                       "cache_ttl_seconds: 0}")
    )  # fmt: skip
    serving = Client(tmp_path / "feature_store.yaml")
    serving.apply_files([EXAMPLE])
    serving.get_online_features("driver_stats:*", [{"driver_id": 1}])
    # when: another process adds a feature
    _with_new_feature(Client(tmp_path / "feature_store.yaml"))
    # then: the next read sees it
    response = serving.get_online_features("driver_stats:*", [{"driver_id": 1}]).to_dict()
    assert "driver_stats:bonus" in response


def test_a_bad_project_argument_is_blamed_on_the_argument(tmp_path: Path) -> None:
    from feast_spark.errors import ArgumentError

    (tmp_path / "feature_store.yaml").write_text(CONFIG)
    with pytest.raises(ArgumentError, match="^project 'Bad-Name': name must match") as caught:
        Client(tmp_path / "feature_store.yaml", project="Bad-Name")
    assert "feature_store.yaml" not in str(caught.value)


def test_parquet_entity_rows_with_nanosecond_times_fail_before_any_job(
    client: Client, tmp_path: Path
) -> None:
    # given entity rows written by pandas with its default nanosecond times
    path = tmp_path / "entities.parquet"
    frame = pd.DataFrame({"driver_id": [1], "event_timestamp": pd.to_datetime([WHEN])})
    frame["event_timestamp"] = frame["event_timestamp"].dt.as_unit("ns")
    frame.to_parquet(path, index=False)
    assert pq.read_schema(path).field("event_timestamp").type.unit == "ns"
    # when a dataset is asked for, then one line names the column, the file and the fix
    with pytest.raises(SourceSchemaError) as refused:
        client.get_historical_features("driver_stats:*", str(path))
    message = str(refused.value)
    assert message.startswith(f"entity rows: column 'event_timestamp' of {path} holds nanosecond")
    assert "coerce_timestamps='us'" in message
    assert launched(client) == 0
