"""Training datasets: entity rows prepared, offline tables read by range, point-in-time joined.

Pure functions of DataFrames around :func:`feast_spark.spark.point_in_time.point_in_time_join`;
``jobs/historical_retrieval.py`` wires them to a spec.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F  # noqa: N812 (the conventional alias)

from feast_spark.definitions import BatchSource, Entity, FeatureTable
from feast_spark.errors import ENTITY_ROWS, SourceSchemaError
from feast_spark.join_tuning import DEFAULT_TUNING, JoinTuning
from feast_spark.online.base import from_micros
from feast_spark.spark.conversions import convert_column
from feast_spark.spark.offline_store import read_offline_table
from feast_spark.spark.point_in_time import EntitySummary, FeatureTableInput, point_in_time_join
from feast_spark.spark.sources import read_source
from feast_spark.types import ValueType

_EARLIEST = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class EntityRows:
    """Entity rows ready to join, and the time range they need.

    Attributes:
        rows: Entity keys typed as declared, the timestamp column as a timestamp, other columns
            unchanged.
        timestamp_column: The timestamp column's name.
        summary: Time range (never empty here) and distinct keys, for the point-in-time join's
            pruning.
    """

    rows: DataFrame
    timestamp_column: str
    summary: EntitySummary

    @property
    def earliest(self) -> datetime:
        """Earliest entity timestamp."""
        return _instant(self.summary.low_us)

    @property
    def latest(self) -> datetime:
        """Latest entity timestamp."""
        return _instant(self.summary.high_us)


def prepare_entity_rows(
    spark: SparkSession,
    source: BatchSource,
    entities: Sequence[Entity],
    key_sets: Sequence[Sequence[str]] = (),
    tuning: JoinTuning = DEFAULT_TUNING,
) -> EntityRows:
    """Read entity rows and make their keys and timestamp exact, or fail naming the problem.

    Rules: ``field_mapping`` renames source columns to entity names; each entity column is
    converted to its declared type by the ingest rules (an int column for an INT64 entity is
    widened; a double is not a key); the timestamp column follows ``timestamp_format``
    (timestamps, ISO-8601 strings with or without offsets, epoch numbers). A value that cannot be
    converted fails the job, naming how many rows and the first one: silently dropping an entity
    row would shorten the training set. Null keys and null timestamps stay (they match nothing).

    Example (``driver_id`` INT64, ``timestamp_format: iso8601``)::

        driver_id:int  ts:string                    driver_id:bigint  ts:timestamp (UTC)
        1001           2024-01-01T10:00:00+02:00 ->  1001              2024-01-01 08:00:00
        1002           2024-01-01T10:00:00.25Z       1002              2024-01-01 10:00:00.25

    ``key_sets`` are the entity columns of the tables to join (``[["driver_id"]]``): the same
    pass counts their distinct keys and finds their hot keys (by ``tuning``), for the join.

    Raises:
        SourceSchemaError: A column is missing or of a type that cannot hold its declared type,
            a value does not convert, or the source has no rows.
    """
    raw = read_source(spark, source, table_name=ENTITY_ROWS)
    renames = {src: name for name, src in source.field_mapping.items() if src in raw.columns}
    frame = raw.withColumnsRenamed(renames) if renames else raw
    ts_column = source.event_timestamp_column
    conversions: dict[str, tuple[ValueType, str]] = {
        entity.name: (entity.value_type, "native") for entity in entities
    }
    conversions[ts_column] = (ValueType.UNIX_TIMESTAMP, source.timestamp_format)
    values = {}
    reasons = []
    for name, (value_type, timestamp_format) in conversions.items():
        value, reason = convert_column(
            ENTITY_ROWS, frame.schema, name, value_type, timestamp_format
        )
        values[name] = value
        if reason is not None:
            reasons.append(reason)
    rows = frame.withColumns(values)
    # One pass answers "any bad value?", "is it empty?", the time range and the distinct keys.
    problem = F.coalesce(*reasons) if reasons else F.lit(None).cast("string")
    summary = frame.agg(
        F.count(F.lit(1)).alias("rows"),
        F.count(problem).alias("bad"),
        F.first(problem, ignorenulls=True).alias("example"),
        *EntitySummary.aggregates(ts_column, key_sets, values, tuning),
    ).first()
    if summary is None or not summary["rows"]:
        raise SourceSchemaError(ENTITY_ROWS, source.path, "has no rows; a training set needs some")
    if summary["bad"]:
        raise SourceSchemaError(
            ENTITY_ROWS,
            source.path,
            f"has {summary['bad']} row(s) whose keys or timestamp cannot be converted, "
            f"e.g. {summary['example']}",
        )
    pruning = EntitySummary.from_row(summary, key_sets, tuning)
    if pruning.low_us is None or pruning.high_us is None:
        raise SourceSchemaError(ENTITY_ROWS, ts_column, "is null in every row")
    return EntityRows(rows, ts_column, pruning)


def build_training_dataset(
    spark: SparkSession,
    entity_rows: EntityRows,
    tables: Sequence[FeatureTable],
    features: Mapping[str, Sequence[str]],
    table_paths: Mapping[str, str],
    tuning: JoinTuning = DEFAULT_TUNING,
    *,
    table_versions: Mapping[str, int] | None = None,
) -> DataFrame:
    """Join every table's requested features to the entity rows, point in time correct.

    The entity rows are not aggregated again: their time range comes from
    :func:`prepare_entity_rows`. Each offline table is read only over
    ``[earliest - max_age, latest]`` of the entity rows (Delta skips files outside it),
    then joined by
    :func:`~feast_spark.spark.point_in_time.point_in_time_join` (rules and example there): one
    shuffle per set of entity columns, never join-then-rank.

    Args:
        spark: The session.
        entity_rows: From :func:`prepare_entity_rows`.
        tables: The feature tables, in output order.
        features: Requested features per table name.
        table_paths: Delta table path per table name.
        tuning: The join's tuning.
        table_versions: Delta version to read per table name (time travel); others at latest.
    """
    inputs = []
    for table in tables:
        # A max_age reaching before year 1 bounds nothing (and datetime cannot go there).
        reach = entity_rows.earliest - _EARLIEST
        start = (
            entity_rows.earliest - table.max_age
            if table.max_age and table.max_age < reach
            else None
        )
        end = entity_rows.latest + timedelta(microseconds=1)  # the bound is exclusive
        version = (table_versions or {}).get(table.name)
        rows = read_offline_table(spark, table_paths[table.name], start, end, version=version)
        inputs.append(
            FeatureTableInput(
                name=table.name,
                entity_columns=tuple(table.entities),
                feature_columns=tuple(features[table.name]),
                max_age=table.max_age,
                rows=rows,
            )
        )
    return point_in_time_join(
        entity_rows.rows,
        inputs,
        entity_timestamp_column=entity_rows.timestamp_column,
        entity_summary=entity_rows.summary,
        tuning=tuning,
    )


def _instant(micros: int | None) -> datetime:
    if micros is None:  # pragma: no cover - prepare_entity_rows refuses entity rows without times
        raise ValueError("the entity rows have no timestamp")
    return from_micros(micros)
