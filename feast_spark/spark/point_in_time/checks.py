"""Checks of the join's inputs: fail early, naming the table and column."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from feast_spark.columns import CREATED_TIMESTAMP, EVENT_TIMESTAMP
from feast_spark.errors import ENTITY_ROWS, DefinitionError, SourceSchemaError
from feast_spark.spark.point_in_time import columns as cols
from feast_spark.spark.point_in_time.inputs import FeatureTableInput
from feast_spark.spark.schema import (
    check_offline_rows,
    check_orderable,
    check_type,
    column_types,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def check_inputs(
    entity_rows: DataFrame, tables: Sequence[FeatureTableInput], ts_column: str
) -> None:
    """Fail early, naming the table and column, instead of deep in a Spark analysis error."""
    from pyspark.sql import DataFrame
    from pyspark.sql.types import TimestampType

    if not isinstance(entity_rows, DataFrame):
        raise TypeError(f"entity_rows must be a pyspark DataFrame, got {type(entity_rows)!r}")
    if isinstance(tables, (str, bytes)) or not isinstance(tables, Sequence):
        raise TypeError(f"tables must be a sequence of FeatureTableInput, got {type(tables)!r}")
    entity_types = column_types(entity_rows, ENTITY_ROWS)
    check_type(entity_types, ts_column, TimestampType(), ENTITY_ROWS, "in the entity rows")

    output_names = {c.lower(): ENTITY_ROWS for c in entity_rows.columns}
    seen: set[str] = set()
    for table in tables:
        if not isinstance(table, FeatureTableInput):
            raise TypeError(f"tables must hold FeatureTableInput, got {type(table)!r}")
        if not isinstance(table.rows, DataFrame):
            raise TypeError(
                f"feature table '{table.name}': rows must be a pyspark DataFrame, "
                f"got {type(table.rows)!r}"
            )
        if table.name in seen:
            raise DefinitionError("feature table", table.name, "is requested more than once")
        seen.add(table.name)
        check_table_definition(table)

        for name in (*table.entity_columns, *table.feature_columns):
            if name.startswith(cols.RESERVED_PREFIX):
                raise SourceSchemaError(table.name, name, "is a name reserved for the join")
        table_types = check_offline_rows(
            table.rows, table.entity_columns, table.name, "in the feature rows"
        )
        for key in table.entity_columns:
            if key not in entity_types:
                raise SourceSchemaError(
                    table.name, key, "is missing from the entity rows (it is this table's key)"
                )
            if entity_types[key] != table_types[key]:
                raise SourceSchemaError(
                    table.name,
                    key,
                    f"is {table_types[key].simpleString()} in the feature rows but "
                    f"{entity_types[key].simpleString()} in the entity rows; cast one to the other",
                )
        for feature in table.feature_columns:
            check_type(table_types, feature, None, table.name, "in the feature rows")
            check_orderable(table_types, feature, table.name)
            output = table.output_column(feature)
            if output.lower() in output_names:
                raise SourceSchemaError(
                    table.name,
                    feature,
                    f"would be written as '{output}', which {output_names[output.lower()]} "
                    "already have; rename the column or the table",
                )
            output_names[output.lower()] = f"feature table '{table.name}' would"


def check_table_definition(table: FeatureTableInput) -> None:
    """A table's own rules: keys and features present, distinct, not reserved; max_age > 0."""
    kind = "feature table"
    if not table.entity_columns:
        raise DefinitionError(kind, table.name, "needs at least one entity column")
    if not table.feature_columns:
        raise DefinitionError(kind, table.name, "needs at least one feature column")
    for label, names in (("entity", table.entity_columns), ("feature", table.feature_columns)):
        if len(set(names)) != len(names):
            raise DefinitionError(kind, table.name, f"{label} columns repeat: {list(names)}")
    reserved = {EVENT_TIMESTAMP, CREATED_TIMESTAMP}
    for name in (*table.entity_columns, *table.feature_columns):
        if name in reserved:
            raise DefinitionError(kind, table.name, f"'{name}' cannot be an entity or feature")
        if name in table.entity_columns and name in table.feature_columns:
            raise DefinitionError(kind, table.name, f"'{name}' is both an entity and a feature")
    if table.max_age is not None and table.max_age <= timedelta(0):
        raise DefinitionError(kind, table.name, f"max_age must be positive, got {table.max_age}")
