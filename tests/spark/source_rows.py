"""Shared givens of the source tests: a feature table, its entity, and checking rows of a frame."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from feast_spark.definitions import Entity, Feature, FeatureTable, FileSource
from feast_spark.spark.row_checks import check_rows
from feast_spark.specs import Window

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pyspark.sql import DataFrame, Row

    from feast_spark.definitions import BatchSource

INGESTED = datetime(2024, 2, 1, 12, 0, tzinfo=UTC)
DRIVER = Entity("driver_id", "INT64")


def at(day: int, hour: int = 0) -> datetime:
    return datetime(2024, 1, day, hour, tzinfo=UTC)


def instant(value: datetime | None) -> datetime | None:
    """A collected (naive, local) timestamp as an aware UTC instant."""
    return None if value is None else value.astimezone(UTC)


def table(
    *features: Feature, name: str = "driver_stats", source: FileSource | None = None
) -> FeatureTable:
    return FeatureTable(
        name=name,
        entities=["driver_id"],
        features=list(features) or [Feature("trips", "INT64")],
        batch_source=source or FileSource(path="unused", event_timestamp_column="ts"),
    )


def to_offline_rows(
    frame: DataFrame,
    feature_table: FeatureTable,
    entities: Sequence[Entity],
    source: BatchSource,
    window: Window | None,
    ingested_at: datetime,
) -> tuple[DataFrame, DataFrame]:
    """``(valid rows, rejected rows)`` of :func:`check_rows`, for tests that need no counts.

    Example (``trips`` declared INT64)::

        driver_id  ts                    trips
        1          2024-01-01T10:00:00Z  "7"     ->  valid:    1  2024-01-01 10:00:00  ...  7
        2          2024-01-01T11:00:00Z  "x"         rejected: trips: x is not a valid INT64
    """
    rows = check_rows(frame, feature_table, entities, source, window, ingested_at)
    return rows.valid(), rows.rejected()


def checked(
    frame: DataFrame, feature_table: FeatureTable, window: Window | None = None
) -> tuple[list[Row], list[Row]]:
    valid, rejected = to_offline_rows(
        frame, feature_table, [DRIVER], feature_table.batch_source, window, INGESTED
    )
    return valid.collect(), rejected.collect()
