"""Checks of Spark inputs' schemas, shared by the Spark functions.

One error per problem, naming the owner (a table, the entity rows) and the column, before
Spark's own analysis errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from feast_spark.columns import CREATED_TIMESTAMP, EVENT_TIMESTAMP
from feast_spark.errors import SourceSchemaError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.types import DataType, StructField, StructType


def column_types(df: DataFrame, owner: str) -> dict[str, DataType]:
    """The frame's column types by name; a repeated column name is an error naming ``owner``."""
    names = [f.name for f in df.schema.fields]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise SourceSchemaError(owner, repeated[0], "appears more than once")
    return {f.name: f.dataType for f in df.schema.fields}


def find_column(schema: StructType, name: str) -> StructField | None:
    """The field named ``name``: an exact match first, then a unique case-insensitive one.

    Spark resolves column names that way, so a source's ``Trips`` serves a feature ``trips``.
    """
    for field in schema.fields:
        if field.name == name:
            return field
    matches = [f for f in schema.fields if f.name.lower() == name.lower()]
    return matches[0] if len(matches) == 1 else None


def check_type(
    types: dict[str, DataType], column: str, expected: DataType | None, owner: str, where: str
) -> None:
    """Fail unless ``column`` is in ``types`` (and of type ``expected``, unless that is None).

    ``where`` completes the message: "is missing <where>", e.g. "in the feature rows".
    """
    if column not in types:
        raise SourceSchemaError(
            owner, column, f"is missing {where} (columns: {', '.join(sorted(types))})"
        )
    if expected is not None and types[column] != expected:
        raise SourceSchemaError(
            owner,
            column,
            f"must be {expected.simpleString()} {where}, got {types[column].simpleString()}; "
            "cast it first (a timestamp without time zone is not an instant)",
        )


def check_offline_rows(
    rows: DataFrame, keys: Sequence[str], owner: str, where: str
) -> dict[str, DataType]:
    """Check offline rows' own columns; return the frame's column types by name.

    Offline rows hold the ``keys``, ``event_timestamp`` and ``created_timestamp`` (both
    ``timestamp``, i.e. instants), each column once, and keys of a key type (:func:`check_key`).
    ``owner`` and ``where`` as in :func:`check_type`.

    Raises:
        SourceSchemaError: Naming ``owner`` and the first column that breaks a rule.
    """
    from pyspark.sql.types import TimestampType

    types = column_types(rows, owner)
    for column in (EVENT_TIMESTAMP, CREATED_TIMESTAMP):
        check_type(types, column, TimestampType(), owner, where)
    for key in keys:
        check_type(types, key, None, owner, where)
        check_key(types, key, owner)
    return types


def check_key(types: dict[str, DataType], column: str, owner: str) -> None:
    """Fail unless ``column`` (in ``types``) can be a key: not an array, map or struct."""
    if not is_atomic(types[column]):
        raise SourceSchemaError(
            owner, column, f"has type {types[column].simpleString()}, not a key type"
        )


def check_orderable(types: dict[str, DataType], column: str, owner: str) -> None:
    """Fail unless Spark can sort by ``column`` (in ``types``): ties are broken by its values."""
    if not is_orderable(types[column]):
        raise SourceSchemaError(
            owner,
            column,
            f"has type {types[column].simpleString()}, which Spark cannot order "
            "(needed to break ties deterministically)",
        )


def is_integral(data_type: DataType) -> bool:
    """A byte, short, int or long."""
    from pyspark.sql.types import IntegralType

    return isinstance(data_type, IntegralType)


def is_atomic(data_type: DataType) -> bool:
    """Not an array, map or struct: a type an entity key can have."""
    from pyspark.sql.types import ArrayType, MapType, StructType

    return not isinstance(data_type, (ArrayType, MapType, StructType))


def is_orderable(data_type: DataType) -> bool:
    """Spark can sort by it (no map or variant inside): needed to break ties deterministically."""
    from pyspark.sql.types import ArrayType, MapType, StructType, VariantType

    if isinstance(data_type, (MapType, VariantType)):
        return False
    if isinstance(data_type, ArrayType):
        return is_orderable(data_type.elementType)
    if isinstance(data_type, StructType):
        return all(is_orderable(f.dataType) for f in data_type.fields)
    return True
