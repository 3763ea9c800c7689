"""Latest row per entity key: explicit cases, input checks, and a Python oracle on random data."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest
from pyspark.sql import functions as sf
from pyspark.testing import assertDataFrameEqual

from feast_spark.errors import SourceSchemaError
from feast_spark.spark.latest import latest_rows

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

T0 = datetime(2021, 3, 28, 0, 30, tzinfo=UTC)
SCHEMA = "driver bigint, rate double, event_timestamp timestamp, created_timestamp timestamp"


def at(seconds: float = 0) -> datetime:
    return T0 + timedelta(seconds=seconds)


def assert_same_rows(actual: DataFrame, expected: DataFrame) -> None:
    """Same schema, same rows in any order, duplicates counted (pyspark's assertDataFrameEqual)."""
    assertDataFrameEqual(actual, expected)


def test_latest_event_then_created_then_values_win(spark: SparkSession) -> None:
    # given
    rows = spark.createDataFrame(
        [
            (1, 0.5, at(0), at(0)),
            (1, None, at(10), at(10)),  # latest: its null is kept
            (2, 0.7, at(0), at(0)),
            (2, 0.8, at(0), at(5)),  # created later
            (3, 0.1, at(0), at(0)),
            (3, 0.2, at(0), at(0)),  # full tie on timestamps: greater value
            (3, None, at(0), at(0)),
            (4, 0.3, at(0), None),  # null created counts as oldest
            (4, 0.2, at(0), at(-100)),
        ],
        SCHEMA,
    )
    # when, in any partitioning
    for frame in (rows.coalesce(1), rows.repartition(4)):
        result = latest_rows(frame, ["driver"])
        # then
        expected = spark.createDataFrame(
            [
                (1, None, at(10), at(10)),
                (2, 0.8, at(0), at(5)),
                (3, 0.2, at(0), at(0)),
                (4, 0.2, at(0), at(-100)),
            ],
            SCHEMA,
        )
        assert_same_rows(result, expected)


def test_window_is_start_inclusive_end_exclusive(spark: SparkSession) -> None:
    # given rows at start - 1 us, start, end - 1 us and end
    us = timedelta(microseconds=1)
    start, end = at(0), at(60)
    rows = spark.createDataFrame(
        [
            (1, 0.1, start - us, start),
            (2, 0.2, start, start),
            (3, 0.3, end - us, end),
            (3, 0.4, end, end),
            (4, 0.5, end, end),
        ],
        SCHEMA,
    )
    # when
    result = latest_rows(rows, ["driver"], start=start, end=end)
    # then
    expected = spark.createDataFrame([(2, 0.2, start, start), (3, 0.3, end - us, end)], SCHEMA)
    assert_same_rows(result, expected)


def test_bounds_in_any_offset_are_the_same_instant(spark: SparkSession) -> None:
    rows = spark.createDataFrame([(1, 0.1, at(0), at(0)), (2, 0.2, at(1), at(1))], SCHEMA)
    plus_two = timezone(timedelta(hours=2))
    result = latest_rows(rows, ["driver"], start=at(1).astimezone(plus_two))
    assert [r.driver for r in result.collect()] == [2]


def test_null_keys_and_null_event_timestamps_are_dropped(spark: SparkSession) -> None:
    rows = spark.createDataFrame(
        [(None, 0.1, at(0), at(0)), (1, 0.2, None, at(0)), (1, 0.3, at(-5), at(0))], SCHEMA
    )
    result = latest_rows(rows, ["driver"])
    assert_same_rows(result, spark.createDataFrame([(1, 0.3, at(-5), at(0))], SCHEMA))


def test_compound_keys_and_column_order_kept(spark: SparkSession) -> None:
    # given a frame whose timestamps come first and keys last
    schema = "event_timestamp timestamp, `odd.name` string, created_timestamp timestamp, a string, b bigint"
    rows = spark.createDataFrame(
        [
            (at(0), "old", at(0), "x", 1),
            (at(1), "new", at(1), "x", 1),
            (at(0), "other", at(0), "x", 2),
            (at(2), "y", at(2), "y", 1),
        ],
        schema,
    )
    # when
    result = latest_rows(rows, ["a", "b"])
    # then
    assert result.columns == rows.columns
    expected = spark.createDataFrame(
        [
            (at(1), "new", at(1), "x", 1),
            (at(0), "other", at(0), "x", 2),
            (at(2), "y", at(2), "y", 1),
        ],
        schema,
    )
    assert_same_rows(result, expected)


def test_one_shuffle_and_partial_aggregation(spark: SparkSession) -> None:
    rows = spark.createDataFrame([(1, 0.1, at(0), at(0))], SCHEMA)
    plan = latest_rows(rows, ["driver"])._jdf.queryExecution().executedPlan().toString()
    assert plan.count("Exchange hashpartitioning") == 1, plan
    assert "partial_max" in plan, plan


# ---------------------------------------------------------------------------------------------
# Input checks


@pytest.fixture
def rows(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame([(1, 0.1, at(0), at(0))], SCHEMA)


@pytest.mark.parametrize("column", ["driver", "event_timestamp", "created_timestamp"])
def test_missing_column(rows: DataFrame, column: str) -> None:
    with pytest.raises(SourceSchemaError, match=f"'{column}' is missing") as info:
        latest_rows(rows.drop(column), ["driver"], table_name="driver_stats")
    assert info.value.table == "driver_stats"


def test_timestamp_type_checked(rows: DataFrame) -> None:
    as_string = rows.withColumn("event_timestamp", sf.col("event_timestamp").cast("string"))
    with pytest.raises(SourceSchemaError, match="must be timestamp in the rows, got string"):
        latest_rows(as_string, ["driver"])


def test_bounds_checked(rows: DataFrame) -> None:
    with pytest.raises(ValueError, match="has no time zone"):
        latest_rows(rows, ["driver"], end=datetime(2021, 1, 1))
    with pytest.raises(ValueError, match="must be before end"):
        latest_rows(rows, ["driver"], start=at(1), end=at(1))
    with pytest.raises(TypeError):
        latest_rows(rows, ["driver"], start="2021-01-01")  # type: ignore[arg-type]


def test_key_and_feature_types_checked(rows: DataFrame) -> None:
    with pytest.raises(ValueError, match="at least one column"):
        latest_rows(rows, [])
    with pytest.raises(SourceSchemaError, match="not a key type"):
        latest_rows(rows.withColumn("driver", sf.array("driver")), ["driver"])
    with pytest.raises(SourceSchemaError, match="cannot order"):
        latest_rows(rows.withColumn("m", sf.create_map(sf.lit("k"), sf.lit(1))), ["driver"])


# ---------------------------------------------------------------------------------------------
# Oracle on random data


def order_key(value: Any) -> tuple[Any, ...]:
    """Spark's ascending order: null first; arrays element-wise, then by length."""
    if value is None:
        return (0,)
    if isinstance(value, list):
        return (1, tuple(order_key(v) for v in value))
    return (1, value)


def oracle(
    rows: list[dict[str, Any]], keys: list[str], start: datetime | None, end: datetime | None
) -> list[dict[str, Any]]:
    best: dict[tuple[Any, ...], dict[str, Any]] = {}
    others = [c for c in rows[0] if c not in (*keys, "event_timestamp", "created_timestamp")]

    def rank(row: dict[str, Any]) -> tuple[Any, ...]:
        return (
            row["event_timestamp"],
            order_key(row["created_timestamp"]),
            tuple(order_key(row[c]) for c in others),
        )

    for row in rows:
        key = tuple(row[k] for k in keys)
        ts = row["event_timestamp"]
        if None in key or ts is None:
            continue
        if (start is not None and ts < start) or (end is not None and ts >= end):
            continue
        if key not in best or rank(row) > rank(best[key]):
            best[key] = row
    return list(best.values())


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_agrees_with_oracle_on_random_data(spark: SparkSession, seed: int) -> None:
    # given rows on a coarse grid (ties on both timestamps), nulls, and a random window
    rng = random.Random(seed)

    def maybe(value: Any) -> Any:
        return None if rng.random() < 0.2 else value

    data = [
        {
            "driver": rng.choice([0, 1, 2, 3, None]),
            "city": rng.choice(["a", "b"]),
            "tags": maybe([maybe(rng.choice("xy")) for _ in range(rng.randrange(3))]),
            "event_timestamp": maybe(
                T0
                + timedelta(milliseconds=250 * rng.randrange(20), microseconds=rng.choice([0, 1]))
            ),
            "rate": maybe(rng.choice([0.5, 1.5])),
            "created_timestamp": maybe(T0 + timedelta(seconds=rng.randrange(3))),
        }
        for _ in range(rng.randrange(200, 400))
    ]
    start = rng.choice([None, T0 + timedelta(seconds=1)])
    end = rng.choice([None, T0 + timedelta(seconds=4)])
    schema = (
        "driver bigint, city string, tags array<string>, event_timestamp timestamp, "
        "rate double, created_timestamp timestamp"
    )
    frame = spark.createDataFrame([tuple(r.values()) for r in data], schema).repartition(3)
    # when
    result = latest_rows(frame, ["driver", "city"], start=start, end=end)
    # then
    expected = oracle(data, ["driver", "city"], start, end)
    assert_same_rows(result, spark.createDataFrame([tuple(r.values()) for r in expected], schema))
