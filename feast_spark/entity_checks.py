"""Checks of entity rows held in memory, done before any Spark work is started for them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from feast_spark.definitions import Entity
from feast_spark.errors import ENTITY_ROWS, SourceSchemaError

if TYPE_CHECKING:
    import pyarrow as pa


def check_entity_rows(rows: pa.Table, entities: Sequence[Entity], timestamp_column: str) -> None:
    """Fail fast when entity rows cannot be joined: a missing or mistyped column, or no rows.

    Raises:
        SourceSchemaError: Naming the column, its type and what was expected.
    """
    check_entity_schema(rows.schema, rows.num_rows, entities, timestamp_column)


def check_entity_parquet(path: str, entities: Sequence[Entity], timestamp_column: str) -> None:
    """:func:`check_entity_rows` for a local parquet file or folder, from its metadata only."""
    import pyarrow.dataset as ds

    from feast_spark.staging import refuse_nanosecond_times

    dataset = ds.dataset(path, format="parquet", partitioning="hive")
    check_entity_schema(dataset.schema, dataset.count_rows(), entities, timestamp_column)
    refuse_nanosecond_times(dataset.schema, ENTITY_ROWS, path, "pass the DataFrame itself")


def check_entity_schema(
    schema: pa.Schema, num_rows: int, entities: Sequence[Entity], timestamp_column: str
) -> None:
    """:func:`check_entity_rows` given the schema and the row count."""
    import pyarrow.types as pt

    columns = schema.names
    names = ", ".join(columns)
    for entity in entities:
        if entity.name not in columns:
            raise SourceSchemaError(
                ENTITY_ROWS,
                entity.name,
                f"is missing (an entity of a requested table); columns: {names}",
            )
        arrow_type = schema.field(entity.name).type
        if not entity.value_type.holds_arrow(arrow_type):
            raise SourceSchemaError(
                ENTITY_ROWS,
                entity.name,
                f"is {arrow_type} in the entity rows, declared {entity.value_type.value}",
            )
    if timestamp_column not in columns:
        raise SourceSchemaError(
            ENTITY_ROWS,
            timestamp_column,
            f"is missing: entity rows need a timestamp column (columns: {names}); "
            "name yours with timestamp_column=",
        )
    ts_type = schema.field(timestamp_column).type
    if not (pt.is_timestamp(ts_type) or pt.is_date(ts_type) or pt.is_string(ts_type)):
        raise SourceSchemaError(
            ENTITY_ROWS,
            timestamp_column,
            f"is {ts_type}; use timestamps, dates or ISO-8601 strings "
            "(or a FileSource with timestamp_format for epoch numbers)",
        )
    if num_rows == 0:
        raise SourceSchemaError(
            ENTITY_ROWS, timestamp_column, "has no rows; a training set needs some"
        )
