"""The job spec: round trips of every job type, and one bad value per field refused in one line."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from feast_spark.config import CassandraOnlineStoreConfig, SqliteOnlineStoreConfig, TlsConfig
from feast_spark.definitions import Entity, Feature, FeatureTable, FileSource
from feast_spark.errors import ConfigError, FeastSparkError, JobSpecError
from feast_spark.join_tuning import JoinTuning
from feast_spark.online_store_config import parse_online_store_mapping, serialize_online_store
from feast_spark.specs import (
    OPTIONS_CLASSES,
    SPEC_VERSION,
    AuditOptions,
    DatasetOptions,
    HistoricalRetrievalOptions,
    IngestOptions,
    JobOptions,
    JobSpec,
    MaintenanceOptions,
    MaterializeOptions,
    PushOptions,
    StreamOptions,
    Window,
)

DRIVER = Entity("driver_id", "INT64")
SOURCE = FileSource(path="/data/trips.parquet", event_timestamp_column="ts")
TABLE = FeatureTable("trips", ("driver_id",), (Feature("count", "INT64"),), SOURCE)
T0 = datetime(2024, 1, 1, tzinfo=UTC)
T1 = datetime(2024, 1, 2, tzinfo=UTC)
CASSANDRA = CassandraOnlineStoreConfig(
    hosts=("10.0.0.1", "10.0.0.2"), port=9142, keyspace="feast_prod",
    replication={"class": "NetworkTopologyStrategy", "dc1": 3}, local_dc="dc1",
    tls=TlsConfig(ca_cert="/etc/ca.pem", check_hostname=False), write_concurrency=32,
)  # fmt: skip
OPTIONS: dict[str, JobOptions | None] = {
    "ingest": IngestOptions(FileSource(path="/staged/x.parquet", event_timestamp_column="ts"), 0.1),
    "historical_retrieval": HistoricalRetrievalOptions(
        ("trips:count",),
        FileSource(path="/entities.parquet", event_timestamp_column="at"),
        "/out/dataset",
        "delta",
        JoinTuning(hot_keys_max=5),
        DatasetOptions("/datasets/x.json", 7, {"trips": 3}, ({"path": "/e.parquet", "size": 1},)),
    ),
    "materialize": MaterializeOptions(CASSANDRA),
    "maintenance": MaintenanceOptions("vacuum", {"trips": {"historical-retrieval-1": 3}}),
    "audit": AuditOptions(CASSANDRA, sample=100, examples=3),
    "stream_ingestion": StreamOptions(
        SqliteOnlineStoreConfig(path="/data/online.db"), "/checkpoint", "/stop", to="both"
    ),
    "push": PushOptions(CASSANDRA, "/staging/push-1/rows.parquet", "both"),
}


def spec(job_type: str, options: JobOptions | None = None, **fields: Any) -> JobSpec:
    values: dict[str, Any] = {
        "job_id": f"{job_type}-trips-20240101T000000-abc123",
        "job_type": job_type,
        "project": "demo",
        "entities": (DRIVER,),
        "feature_tables": (TABLE,),
        "offline_store_path": "/offline",
        "window": Window(T0, T1),
        "result_path": "/jobs/x/result.json",
        "options": options if options is not None else OPTIONS[job_type],
        "future_event_time_allowance_s": 600.0,
    }
    return JobSpec(**{**values, **fields})


# --- round trips ----------------------------------------------------------------------------------


@pytest.mark.parametrize("job_type", sorted(OPTIONS_CLASSES))
def test_every_job_type_round_trips_through_json(job_type: str) -> None:
    # given a spec of each job type with non-default values everywhere
    original = spec(job_type)
    # when written and read back, then it is the same spec, at this version
    text = original.to_json()
    assert JobSpec.from_json(text) == original
    assert json.loads(text)["spec_version"] == SPEC_VERSION == 2
    assert isinstance(original.options, OPTIONS_CLASSES[job_type])


def test_open_windows_and_defaults_round_trip() -> None:
    # given an ingest without options, an open window and no result path
    original = spec("ingest", window=Window(None, T1), result_path=None)
    original = JobSpec(**{**original.__dict__, "options": None})
    assert JobSpec.from_json(original.to_json()) == original


@pytest.mark.parametrize(
    "config",
    [CASSANDRA, CassandraOnlineStoreConfig(), SqliteOnlineStoreConfig(path="/data/online.db")],
)
def test_a_materialize_spec_carries_a_typed_online_store(config: Any) -> None:
    # given a materialize spec; when read back, then its store is the typed config, not a mapping
    read = JobSpec.from_json(spec("materialize", MaterializeOptions(config)).to_json())
    assert isinstance(read.options, MaterializeOptions) and read.options.online_store == config
    # and the store's JSON form is the section of feature_store.yaml
    assert parse_online_store_mapping(serialize_online_store(config)) == config


# --- the version ----------------------------------------------------------------------------------


def test_a_version_1_spec_is_refused_naming_both_versions() -> None:
    # given a spec a release before this one wrote (its online store at the top level)
    document = json.loads(spec("ingest").to_json())
    document.update(spec_version=1, online_store=None)
    # when read, then one line names both versions and says to re-submit with this release
    with pytest.raises(JobSpecError) as caught:
        JobSpec.from_json(json.dumps(document))
    message = str(caught.value)
    assert "'spec_version': 1, " in message and "version 2" in message and "\n" not in message
    assert "re-submit the job with this release" in message


# --- one bad value per field ----------------------------------------------------------------------

SPEC_FIELDS = [
    # (job type, path in the JSON document, bad value, the field the error names)
    ("ingest", ("job_id",), "a/b", "job_id"),
    ("ingest", ("job_type",), "stream", "job_type"),
    ("ingest", ("project",), "", "project"),
    ("ingest", ("project",), "My Project", "project"),
    ("ingest", ("entities",), "driver_id", "entities"),
    ("ingest", ("entities",), [{"name": "driver_id"}], "entities"),
    ("ingest", ("feature_tables",), [], "feature_tables"),
    ("ingest", ("feature_tables",), [{"name": "trips"}], "feature_tables"),
    ("ingest", ("offline_store_path",), 7, "offline_store_path"),
    ("ingest", ("window",), "today", "window"),
    ("ingest", ("window", "start"), "yesterday", "window.start"),
    ("ingest", ("window", "end"), "2023-01-01T00:00:00+00:00", "window"),
    ("ingest", ("window", "middle"), None, "window.middle"),
    ("ingest", ("result_path",), "", "result_path"),
    ("ingest", ("future_event_time_allowance_s",), -1, "future_event_time_allowance_s"),
    ("ingest", ("future_event_time_allowance_s",), True, "future_event_time_allowance_s"),
    ("ingest", ("online_store",), {"type": "sqlite"}, "online_store"),
    ("ingest", ("options",), [], "options"),
    ("ingest", ("options", "source"), {"path": "/x"}, "options.source"),
    ("ingest", ("options", "max_rejected_fraction"), 1.5, "options.max_rejected_fraction"),
    ("ingest", ("options", "max_rejected_fraction"), "0.1", "options.max_rejected_fraction"),
    ("historical_retrieval", ("options",), None, "options"),
    ("historical_retrieval", ("options", "feature_refs"), [], "options.feature_refs"),
    ("historical_retrieval", ("options", "feature_refs"), ["count"], "options.feature_refs"),
    ("historical_retrieval", ("options", "entity_source"), "/e.parquet", "options.entity_source"),
    ("historical_retrieval", ("options", "output_path"), None, "options.output_path"),
    ("historical_retrieval", ("options", "output_format"), "csv", "options.output_format"),
    ("historical_retrieval", ("options", "join_tuning"), {"hot_keys_max": 0}, "hot_keys_max"),
    ("historical_retrieval", ("options", "join_tuning"), "fast", "options.join_tuning"),
    ("historical_retrieval", ("options", "extra"), 1, "options.extra"),
    ("materialize", ("options",), None, "options"),
    ("materialize", ("options", "online_store"), None, "options.online_store"),
    ("materialize", ("options", "online_store", "type"), "redis", "online_store.type"),
    ("materialize", ("options", "online_store", "port"), 70000, "online_store.port"),
    ("materialize", ("options", "online_store", "keyspace"), "Bad-Name", "online_store.keyspace"),
    ("materialize", ("options", "online_store", "read_consistency"), "MOST", "read_consistency"),
    ("materialize", ("options", "online_store", "hosts"), [], "online_store.hosts"),
    ("materialize", ("options", "online_store", "colour"), "red", "colour"),
    ("maintenance", ("options", "action"), "defragment", "options.action"),
]


@pytest.mark.parametrize(
    ("job_type", "path", "bad", "field"), SPEC_FIELDS, ids=lambda v: str(v)[:40]
)
def test_a_bad_value_in_any_field_is_refused_naming_the_field(
    job_type: str, path: tuple[str, ...], bad: Any, field: str
) -> None:
    # given a valid spec document with one value replaced
    document = json.loads(spec(job_type).to_json())
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = bad
    # when a job reads it, then one line names the field
    with pytest.raises((JobSpecError, ConfigError)) as caught:
        JobSpec.from_json(json.dumps(document))
    message = str(caught.value)
    assert field in message and "\n" not in message, message
    assert isinstance(caught.value, FeastSparkError) and isinstance(caught.value, ValueError)


@pytest.mark.parametrize("missing", ["job_id", "job_type", "project", "entities", "feature_tables"])
def test_a_missing_field_is_named(missing: str) -> None:
    document = json.loads(spec("maintenance").to_json())
    del document[missing]
    with pytest.raises(JobSpecError, match=f"field '{missing}': missing"):
        JobSpec.from_json(json.dumps(document))


def test_the_launcher_side_refuses_options_of_another_job_type() -> None:
    # given materialize options on an ingest spec; when built, then it is refused at once
    with pytest.raises(JobSpecError, match="job type 'ingest' takes IngestOptions"):
        spec("ingest", MaterializeOptions(CASSANDRA))
    with pytest.raises(JobSpecError, match="options.online_store"):
        MaterializeOptions({"type": "sqlite"})  # type: ignore[arg-type]
    with pytest.raises(JobSpecError, match="window.start"):
        Window("2024-01-01")  # type: ignore[arg-type]
