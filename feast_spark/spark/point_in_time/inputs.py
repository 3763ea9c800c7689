"""One feature table's part in a point-in-time join."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from feast_spark.spark.point_in_time import columns as cols

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


@dataclass(frozen=True)
class FeatureTableInput:
    """What one feature table contributes to a point-in-time join.

    Attributes:
        name: Feature table name; prefixes the output columns (``<name>__<feature>``).
        entity_columns: Key columns, named as the entities; the entity rows must have them with
            the same Spark types.
        feature_columns: Requested feature columns, in output order.
        max_age: Oldest a feature row may be relative to the entity timestamp; ``None`` for no
            limit.
        rows: The offline rows: entity columns, feature columns, ``event_timestamp`` and
            ``created_timestamp`` (both ``TimestampType``); other columns are ignored.

    """

    name: str
    entity_columns: tuple[str, ...]
    feature_columns: tuple[str, ...]
    max_age: timedelta | None
    rows: DataFrame

    def output_column(self, feature: str) -> str:
        """The output column name of one of this table's features."""
        return f"{self.name}__{feature}"


def max_age_micros(table: FeatureTableInput) -> int | None:
    """``max_age`` in microseconds; ``None`` when it is unset or spans every Spark timestamp.

    Spark timestamps lie within years 1-9999, so a longer ``max_age`` bounds nothing, and
    treating it as no limit keeps ``timestamp - max_age`` far from long overflow (an error in
    ANSI mode).
    """
    if table.max_age is None or table.max_age >= cols.SPARK_TIMESTAMP_SPAN:
        return None
    return table.max_age // timedelta(microseconds=1)
