import pyarrow as pa
import pytest

from feast_spark.errors import DefinitionError
from feast_spark.types import ValueType


def test_every_type_has_its_own_spark_and_arrow_type() -> None:
    # given every value type, when mapped to Spark DDL and Arrow, then no two share one
    assert len({v.spark_ddl for v in ValueType}) == len(ValueType)
    assert len({v.arrow_type() for v in ValueType}) == len(ValueType)


def test_cql_types_are_distinct_except_timestamps_stored_as_bigint() -> None:
    cql = {v: v.cql_type for v in ValueType}
    assert cql[ValueType.UNIX_TIMESTAMP] == cql[ValueType.INT64]
    assert cql[ValueType.UNIX_TIMESTAMP_LIST] == cql[ValueType.INT64_LIST]
    others = [t for v, t in cql.items() if v.element is not ValueType.UNIX_TIMESTAMP]
    assert len(set(others)) == len(others)


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


def test_sqlite_types_are_the_affinities_the_online_store_declares() -> None:
    # given the SQLite store's column types: integers, booleans and microseconds are INTEGER
    expected = {
        ValueType.INT32: "INTEGER",
        ValueType.INT64: "INTEGER",
        ValueType.BOOL: "INTEGER",
        ValueType.UNIX_TIMESTAMP: "INTEGER",
        ValueType.FLOAT: "REAL",
        ValueType.DOUBLE: "REAL",
        ValueType.STRING: "TEXT",
        ValueType.BYTES: "BLOB",
    }
    # then each scalar has its affinity, and every list is JSON text
    assert {v: v.sqlite_type for v in ValueType if not v.is_list} == expected
    assert {v.sqlite_type for v in ValueType if v.is_list} == {"TEXT"}


@pytest.mark.parametrize("value_type", list(ValueType))
def test_every_type_holds_its_own_arrow_type(value_type: ValueType) -> None:
    assert value_type.holds_arrow(value_type.arrow_type())


@pytest.mark.parametrize(
    ("value_type", "held", "not_held"),
    [
        (ValueType.INT64, [pa.int8(), pa.int32(), pa.uint64()], [pa.float64(), pa.string()]),
        (ValueType.INT32, [pa.int64(), pa.int16()], [pa.bool_(), pa.float32()]),
        (ValueType.STRING, [pa.string(), pa.large_string()], [pa.binary(), pa.int64()]),
        (ValueType.BYTES, [pa.binary(), pa.large_binary()], [pa.string()]),
        (ValueType.BOOL, [pa.bool_()], [pa.int8(), pa.string()]),
        (
            ValueType.UNIX_TIMESTAMP,
            [pa.timestamp("ms"), pa.timestamp("ns", tz="Europe/Paris"), pa.date32()],
            [pa.int64(), pa.string()],
        ),
        (ValueType.DOUBLE, [pa.float32(), pa.float64()], [pa.int64(), pa.decimal128(10, 2)]),
        (
            ValueType.INT64_LIST,
            [pa.list_(pa.int32()), pa.large_list(pa.int64())],
            [pa.int64(), pa.list_(pa.string())],
        ),
    ],
)
def test_arrow_types_a_value_type_holds(
    value_type: ValueType, held: list[pa.DataType], not_held: list[pa.DataType]
) -> None:
    # given entity rows in memory, when their Arrow column is checked against the declared type,
    # then any width of the same kind fits and any other kind does not
    for arrow_type in held:
        assert value_type.holds_arrow(arrow_type), arrow_type
    for arrow_type in not_held:
        assert not value_type.holds_arrow(arrow_type), arrow_type
