import pyarrow as pa
import pytest

from feast_spark.errors import DefinitionError
from feast_spark.types import ValueType


@pytest.mark.parametrize("value_type", list(ValueType))
def test_every_type_maps_to_spark_arrow_and_back(value_type: ValueType) -> None:
    # given a value type, when mapped to Spark DDL and Arrow, then the mapping reverses exactly
    assert ValueType.from_spark_ddl(value_type.spark_ddl) is value_type
    assert ValueType.from_arrow(value_type.arrow_type()) is value_type


@pytest.mark.parametrize(
    "value_type", [v for v in ValueType if v.element is not ValueType.UNIX_TIMESTAMP]
)
def test_cql_mapping_reverses_except_timestamps(value_type: ValueType) -> None:
    assert ValueType.from_cql(value_type.cql_type) is value_type


def test_physical_types_are_the_expected_ones() -> None:
    assert ValueType.INT64.spark_ddl == "bigint"
    assert ValueType.FLOAT_LIST.spark_ddl == "array<float>"
    assert ValueType.STRING.cql_type == "text"
    assert ValueType.BYTES_LIST.cql_type == "list<blob>"
    assert ValueType.UNIX_TIMESTAMP.arrow_type() == pa.timestamp("us", tz="UTC")
    # microseconds are kept online: CQL timestamp would truncate them to milliseconds
    assert ValueType.UNIX_TIMESTAMP.cql_type == "bigint"


def test_unknown_type_names_the_owner_and_the_choices() -> None:
    with pytest.raises(
        DefinitionError, match=r"feature 'trips': unknown value type 'INT128'.*INT64"
    ):
        ValueType.parse("INT128", owner_kind="feature", owner="trips")


def test_type_names_are_case_insensitive() -> None:
    assert ValueType.parse("double", owner_kind="feature", owner="x") is ValueType.DOUBLE


def test_unmapped_physical_types_are_lookup_errors() -> None:
    with pytest.raises(LookupError):
        ValueType.from_spark_ddl("decimal(10,2)")
    with pytest.raises(LookupError):
        ValueType.from_cql("varint")
