from datetime import timedelta

import pytest

from feast_spark.definitions import DeltaSource, Entity, Feature, FeatureTable, FileSource
from feast_spark.definitions.durations import format_duration, parse_duration
from feast_spark.definitions.sources import source_from_dict
from feast_spark.errors import DefinitionError, FeastSparkError
from feast_spark.types import ValueType

SOURCE = FileSource(path="data/x.parquet", event_timestamp_column="ts")


def table(**overrides: object) -> FeatureTable:
    fields: dict[str, object] = {
        "name": "driver_stats",
        "entities": ["driver_id"],
        "features": [Feature("conv_rate", "DOUBLE")],
        "batch_source": SOURCE,
    }
    fields.update(overrides)
    return FeatureTable(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["Driver", "1driver", "driver-id", "driver id", "", "é", "a" * 49])
def test_unsafe_names_are_refused(name: str) -> None:
    with pytest.raises(DefinitionError, match="entity"):
        Entity(name, ValueType.INT64)


def test_a_48_character_name_is_accepted() -> None:
    assert Entity("a" * 48, ValueType.INT64).name == "a" * 48


@pytest.mark.parametrize("name", ["event_timestamp", "created_timestamp", "event_date"])
def test_reserved_names_are_refused_for_entities_and_features(name: str) -> None:
    with pytest.raises(DefinitionError, match="reserved"):
        Entity(name, ValueType.INT64)
    with pytest.raises(DefinitionError, match="reserved"):
        Feature(name, ValueType.INT64)


def test_errors_are_feast_spark_errors_and_value_errors() -> None:
    with pytest.raises(DefinitionError) as caught:
        Entity("Bad", ValueType.INT64)
    assert isinstance(caught.value, FeastSparkError) and isinstance(caught.value, ValueError)
    assert caught.value.kind == "entity" and caught.value.name == "Bad"


def test_duplicate_feature_names_are_refused() -> None:
    with pytest.raises(DefinitionError, match="feature 'conv_rate' is declared twice"):
        table(features=[Feature("conv_rate", "DOUBLE"), Feature("conv_rate", "FLOAT")])


def test_a_feature_named_like_an_entity_is_refused() -> None:
    with pytest.raises(DefinitionError, match="name of an entity"):
        table(features=[Feature("driver_id", "INT64")])


def test_unknown_value_types_are_refused() -> None:
    with pytest.raises(DefinitionError, match="unknown value type 'DECIMAL'"):
        Feature("x", "DECIMAL")  # type: ignore[arg-type]


@pytest.mark.parametrize("max_age", [0, "0s", -5, timedelta(seconds=-1)])
def test_max_age_must_be_positive(max_age: object) -> None:
    with pytest.raises(DefinitionError, match="max_age must be positive"):
        table(max_age=max_age)


def test_max_age_accepts_duration_strings() -> None:
    assert table(max_age="7d").max_age == timedelta(days=7)
    assert table(max_age="3600s").max_age == timedelta(hours=1)
    assert table(max_age="12h").max_age == timedelta(hours=12)
    assert table(max_age=90).max_age == timedelta(seconds=90)


def test_a_bad_duration_names_the_table() -> None:
    with pytest.raises(DefinitionError, match="feature table 'driver_stats': max_age: 'soon'"):
        table(max_age="soon")


def test_a_source_needs_an_event_timestamp_column() -> None:
    with pytest.raises(DefinitionError, match="event_timestamp_column is required"):
        FileSource(path="x.parquet", event_timestamp_column="")
    with pytest.raises(DefinitionError, match="missing required key"):
        source_from_dict({"type": "file", "path": "x.parquet"})


def test_sources_check_their_formats() -> None:
    with pytest.raises(DefinitionError, match="file_format 'avro'"):
        FileSource(path="x", event_timestamp_column="ts", file_format="avro")
    with pytest.raises(DefinitionError, match="timestamp_format 'unix'"):
        DeltaSource(path="x", event_timestamp_column="ts", timestamp_format="unix")


def test_entity_keys_cannot_be_lists_or_floats() -> None:
    with pytest.raises(DefinitionError, match="cannot be a key"):
        Entity("x", ValueType.INT64_LIST)


def test_definitions_round_trip_through_dicts() -> None:
    # given a table with every field set
    original = table(
        features=[
            Feature("conv_rate", "DOUBLE", labels={"a": "b"}),
            Feature("trips", "INT64_LIST"),
        ],
        batch_source=FileSource(
            path="s3a://bucket/driver/*.csv",
            file_format="csv",
            event_timestamp_column="ts",
            created_timestamp_column="created",
            date_partition_column="dt",
            field_mapping={"conv_rate": "conversion"},
            timestamp_format="iso8601",
            options={"header": "true"},
        ),
        max_age="36h",
        description="d",
        labels={"team": "rides"},
    )
    # when written and read back, then nothing changed
    assert FeatureTable.from_dict(original.to_dict()) == original
    entity = Entity("driver_id", "INT64", "desc", {"k": "v"})  # type: ignore[arg-type]
    assert Entity.from_dict(entity.to_dict()) == entity


def test_unknown_keys_in_documents_are_refused() -> None:
    document = table().to_dict() | {"ttl": "1d"}
    with pytest.raises(DefinitionError, match="unknown key\\(s\\) ttl"):
        FeatureTable.from_dict(document)


def test_durations_print_in_their_shortest_exact_form() -> None:
    assert format_duration(parse_duration("7d")) == "7d"
    assert format_duration(parse_duration("90m")) == "90m"
    assert format_duration(parse_duration("1.5s")) == "1.5s"


def test_a_table_finds_its_features_by_name() -> None:
    assert table().feature("conv_rate").dtype is ValueType.DOUBLE
    with pytest.raises(LookupError, match="driver_stats:nope"):
        table().feature("nope")
