"""A feature table's Kafka stream_source: validated on creation, YAML and registry round trips."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from feast_spark.definitions import Entity, Feature, FeatureTable, FileSource
from feast_spark.definitions.stream_sources import KafkaSource, stream_source_from_dict
from feast_spark.definitions.yaml_files import load_definitions
from feast_spark.errors import DefinitionError
from feast_spark.registry import Registry

BATCH = FileSource(path="data/x.parquet", event_timestamp_column="ts")


def kafka(**overrides: Any) -> KafkaSource:
    fields: dict[str, Any] = {
        "bootstrap_servers": "127.0.0.1:9092",
        "topic": "driver_stats",
        "event_timestamp_column": "ts",
    }
    fields.update(overrides)
    return KafkaSource(**fields)


def with_stream(source: KafkaSource | None) -> FeatureTable:
    return FeatureTable(
        name="driver_stats",
        entities=["driver_id"],
        features=[Feature("conv_rate", "DOUBLE")],
        batch_source=BATCH,
        stream_source=source,
    )


def test_a_kafka_source_has_feast_defaults() -> None:
    # given a source with only its required fields
    source = kafka()
    # then it reads JSON from the latest offsets, with native (ISO-8601 string) timestamps
    assert (source.format, source.starting_offsets, source.timestamp_format) == (
        "json", "latest", "native",
    )  # fmt: skip
    assert source.source_column("conv_rate") == "conv_rate"
    assert kafka(field_mapping={"conv_rate": "rate"}).source_column("conv_rate") == "rate"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"topic": "bad topic"}, "not a Kafka topic name"),
        ({"topic": ""}, "not a Kafka topic name"),
        ({"bootstrap_servers": "localhost"}, "not a list of host:port"),
        ({"bootstrap_servers": "a:9092,"}, "not a list of host:port"),
        ({"event_timestamp_column": ""}, "event_timestamp_column is required"),
        ({"format": "csv"}, "format 'csv' is unknown"),
        ({"format": "avro"}, "format 'avro' is not supported yet; produce JSON"),
        ({"starting_offsets": "beginning"}, "starting_offsets 'beginning' is unknown"),
        ({"timestamp_format": "unix"}, "timestamp_format 'unix' is unknown"),
        ({"field_mapping": {"a": 1}}, "field_mapping must map strings to strings"),
        ({"options": {"subscribe": "other"}}, "options subscribe are set from the source"),
    ],
)
def test_an_invalid_source_is_refused_with_one_clear_line(
    overrides: dict[str, Any], message: str
) -> None:
    # when a source is built with one bad field, then it names the field and the fix
    with pytest.raises(DefinitionError, match=message) as caught:
        kafka(**overrides)
    assert caught.value.kind == "stream source" and "\n" not in str(caught.value)


def test_servers_are_normalised() -> None:
    assert kafka(bootstrap_servers=" a:9092 , b:9093").bootstrap_servers == "a:9092,b:9093"


def test_a_table_round_trips_with_its_stream_source() -> None:
    # given a table with a stream source
    table = with_stream(kafka(starting_offsets="earliest", field_mapping={"conv_rate": "r"}))
    # when written as a document and read back, then it is equal
    document = table.to_dict()
    assert document["stream_source"]["topic"] == "driver_stats"
    assert FeatureTable.from_dict(document) == table


def test_a_table_without_stream_source_keeps_its_document() -> None:
    # given a table with only a batch source, then its document has no stream_source key
    assert "stream_source" not in with_stream(None).to_dict()


def test_a_stream_source_document_with_unknown_keys_or_type_is_refused() -> None:
    document = kafka().to_dict()
    with pytest.raises(DefinitionError, match="unknown key"):
        stream_source_from_dict({**document, "partitions": 3})
    with pytest.raises(DefinitionError, match="type 'kinesis' is unknown"):
        stream_source_from_dict({**document, "type": "kinesis"})
    with pytest.raises(DefinitionError, match="stream_source must be a KafkaSource"):
        with_stream(BATCH)  # type: ignore[arg-type]


def test_a_yaml_definition_with_a_stream_source_loads(tmp_path: Path) -> None:
    # given a YAML feature table with a stream source
    path = tmp_path / "defs.yaml"
    path.write_text(
        "kind: FeatureTable\nname: driver_stats\nentities: [driver_id]\n"
        "features:\n  - {name: conv_rate, dtype: DOUBLE}\n"
        "batch_source: {type: file, path: data/x.parquet, event_timestamp_column: ts}\n"
        "stream_source:\n  type: kafka\n  bootstrap_servers: 127.0.0.1:9092\n"
        "  topic: driver_stats\n  event_timestamp_column: ts\n  starting_offsets: earliest\n"
    )
    # when loaded, then the table carries it
    (table,) = load_definitions([path])
    assert isinstance(table, FeatureTable) and table.stream_source is not None
    assert table.stream_source.starting_offsets == "earliest"


def test_a_yaml_stream_source_in_avro_is_refused_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "defs.yaml"
    path.write_text(
        "kind: FeatureTable\nname: driver_stats\nentities: [driver_id]\n"
        "features:\n  - {name: conv_rate, dtype: DOUBLE}\n"
        "batch_source: {type: file, path: data/x.parquet, event_timestamp_column: ts}\n"
        "stream_source: {type: kafka, bootstrap_servers: 'h:1', topic: t,"
        " event_timestamp_column: ts, format: avro}\n"
    )
    with pytest.raises(Exception, match=r"defs.yaml:1: .*avro.* is not supported yet"):
        load_definitions([path])


def test_the_registry_keeps_a_stream_source(tmp_path: Path) -> None:
    # given a registry and a table with a stream source
    registry = Registry(str(tmp_path / "registry.json"))
    table = with_stream(kafka(starting_offsets="earliest"))
    registry.apply("p", [Entity("driver_id", "INT64"), table])
    # when read back, then the source is there; applying it again changes nothing
    assert registry.get_feature_table("p", "driver_stats") == table
    results = registry.apply("p", [table])
    assert all(r.action == "unchanged" for r in results), results
