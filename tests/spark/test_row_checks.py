"""Mapping, casting and validating rows of a source (spark.row_checks, spark.conversions)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from pyspark.sql import Row
from pyspark.testing import assertDataFrameEqual

from feast_spark.definitions import Feature, FileSource
from feast_spark.errors import ConfigError, SourceSchemaError
from feast_spark.spark.row_checks import check_rows
from feast_spark.specs import Window

from .source_rows import DRIVER, INGESTED, at, checked, instant, table, to_offline_rows

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def assert_frames_equal(actual: DataFrame, expected: DataFrame | list[Row]) -> None:
    """pyspark's assertDataFrameEqual: schema checked, rows in any order."""
    assertDataFrameEqual(actual, expected)


@contextmanager
def no_spark_job(spark: SparkSession) -> Iterator[None]:
    """Fail if any Spark job runs inside the block."""
    group = "must-not-run"
    spark.sparkContext.setJobGroup(group, "schema checks must not run Spark jobs")
    try:
        yield
    finally:
        jobs = spark.sparkContext.statusTracker().getJobIdsForGroup(group)
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]
        assert list(jobs) == []


# --- mapping and casting ------------------------------------------------------------------------


def test_mapping_and_exact_casts_give_offline_rows(spark: SparkSession) -> None:
    # given a source with other column names, narrower types and string/epoch timestamps
    source = FileSource(
        path="unused",
        event_timestamp_column="ts",
        created_timestamp_column="written_ms",
        field_mapping={"driver_id": "driver", "trips": "trip_count"},
        timestamp_format="iso8601",
    )
    frame = spark.createDataFrame(
        [(7, "2024-01-01T10:00:00Z", "2024-01-01T11:30:00+01:00", 3, 4.5)],
        "driver int, ts string, written_ms string, trip_count int, rating float",
    )
    feature_table = table(Feature("trips", "INT64"), Feature("rating", "DOUBLE"), source=source)

    # when the rows are checked
    valid, rejected = to_offline_rows(frame, feature_table, [DRIVER], source, None, INGESTED)

    # then names and types are the declared ones, and the values are exact
    assert rejected.collect() == []
    assert valid.schema.simpleString() == (
        "struct<driver_id:bigint,event_timestamp:timestamp,created_timestamp:timestamp,"
        "trips:bigint,rating:double>"
    )
    expected = [Row(driver_id=7, event_timestamp=at(1, 10),
                    created_timestamp=at(1, 10) + timedelta(minutes=30), trips=3, rating=4.5)]  # fmt: skip
    assert_frames_equal(valid, spark.createDataFrame(expected, valid.schema))


def test_created_timestamp_is_the_ingestion_time_for_in_memory_rows_without_one(
    spark: SparkSession,
) -> None:
    # given in-memory rows (not read from files) without a created column
    frame = spark.createDataFrame([(1, at(1), 5)], "driver_id bigint, ts timestamp, trips bigint")

    # when checked
    valid, _ = checked(frame, table())

    # then created_timestamp is the ingestion time
    assert [instant(r.created_timestamp) for r in valid] == [INGESTED]


def test_values_that_do_not_fit_are_rejected_with_their_reason(spark: SparkSession) -> None:
    # given strings, fractions, overflows, bad timestamps and a null key
    frame = spark.createDataFrame(
        [
            (1, "2024-01-01T00:00:00Z", "12", 3.0, 5),
            (2, "2024-01-01T00:00:00Z", "abc", 3.0, 5),
            (3, "2024-01-01T00:00:00Z", "12", 3.5, 5),
            (4, "2024-01-01T00:00:00Z", "12", 3.0, 2**40),
            (5, "not a time", "12", 3.0, 5),
            (None, "2024-01-01T00:00:00Z", "12", 3.0, 5),
            (6, None, "12", 3.0, 5),
            (7, "2024-01-01T00:00:00Z", None, None, None),
        ],
        "driver_id bigint, ts string, trips string, legs double, small bigint",
    )
    feature_table = table(
        Feature("trips", "INT64"), Feature("legs", "INT64"), Feature("small", "INT32")
    )

    # when checked
    valid, rejected = checked(frame, feature_table)

    # then each bad value costs its row, with the column, the value and the problem
    assert sorted(r.driver_id for r in valid) == [1, 7]
    assert [r.legs for r in valid if r.driver_id == 1] == [3]  # 3.0 is a whole number
    reasons = sorted(r.reason for r in rejected)
    assert reasons == sorted(
        [
            "trips: abc is not a valid INT64",
            "legs: 3.5 is not a whole number (INT64)",
            "small: 1099511627776 is out of INT32's range",
            "event_timestamp (source column ts): not a time is not an ISO-8601 timestamp",
            "driver_id: entity key is null",
            "event_timestamp (source column ts): is null",
        ]
    )
    # and the raw source row is kept as JSON
    by_reason = {r.reason: r for r in rejected}
    assert '"trips":"abc"' in by_reason["trips: abc is not a valid INT64"].source_row


def test_all_problems_of_a_row_are_reported_together(spark: SparkSession) -> None:
    frame = spark.createDataFrame(
        [(1, at(1), "x", "y")], "driver_id bigint, ts timestamp, trips string, legs string"
    )
    _, rejected = checked(frame, table(Feature("trips", "INT64"), Feature("legs", "INT32")))
    assert [r.reason for r in rejected] == [
        "trips: x is not a valid INT64; legs: y is not a valid INT32"
    ]


def test_floating_and_boolean_rules(spark: SparkSession) -> None:
    # given values that a float/double/bool can or cannot hold exactly
    frame = spark.createDataFrame(
        [
            (1, 2**53, 0.1, 2**24, "true", 1),
            (2, 2**53 + 1, 1e39, 2**24 + 1, "maybe", 2),
        ],
        "driver_id bigint, big bigint, wide double, mid int, flag string, bit int",
    )
    feature_table = table(
        Feature("big", "DOUBLE"),
        Feature("wide", "FLOAT"),
        Feature("mid", "FLOAT"),
        Feature("flag", "BOOL"),
        Feature("bit", "BOOL"),
    )
    frame = frame.withColumn("ts", frame.driver_id.cast("timestamp"))

    valid, rejected = checked(frame, feature_table)

    # then the exact ones pass (0.1 rounds to the nearest float, as FLOAT asks)
    assert len(valid) == 1
    assert valid[0].big == float(2**53) and valid[0].flag is True and valid[0].bit is True
    assert valid[0].wide == pytest.approx(0.1)
    assert rejected[0].reason == (
        "big: 9007199254740993 cannot be held exactly by a DOUBLE; "
        "wide: 1.0E39 is out of FLOAT's range; "
        "mid: 16777217 cannot be held exactly by a FLOAT; "
        "flag: maybe is not a valid BOOL; bit: 2 is not a valid BOOL (0 or 1)"
    )


def test_epoch_timestamps_per_timestamp_format(spark: SparkSession) -> None:
    # given epoch numbers in each unit, fractional and out of range ones
    seconds = int(at(1).timestamp())
    cases = {
        "epoch_seconds": [(1, seconds), (2, 10**12)],
        "epoch_millis": [(1, seconds * 1000), (2, -(10**17))],
        "epoch_micros": [(1, seconds * 10**6), (2, 2**63 - 1)],
    }
    for fmt, rows in cases.items():
        source = FileSource(path="unused", event_timestamp_column="ts", timestamp_format=fmt)
        frame = spark.createDataFrame(rows, "driver_id bigint, ts bigint").withColumn(
            "trips", frame_lit()
        )
        valid, rejected = checked(frame, table(source=source))
        assert [instant(r.event_timestamp) for r in valid] == [at(1)], fmt
        unit = fmt.removeprefix("epoch_")
        assert [r.reason for r in rejected] == [
            f"event_timestamp (source column ts): {rows[1][1]} is not an epoch in {unit} "
            "of years 1-9999"
        ], fmt

    # and fractional seconds round to the microsecond
    source = FileSource(
        path="unused", event_timestamp_column="ts", timestamp_format="epoch_seconds"
    )
    frame = spark.createDataFrame(
        [(1, seconds + 0.25), (2, float("nan"))], "driver_id bigint, ts double"
    )
    valid, rejected = checked(frame.withColumn("trips", frame_lit()), table(source=source))
    assert [instant(r.event_timestamp) for r in valid] == [
        datetime(2024, 1, 1, 0, 0, 0, 250000, tzinfo=UTC)
    ]
    assert len(rejected) == 1


def frame_lit() -> Any:
    from pyspark.sql import functions as F  # noqa: N812

    return F.lit(1).cast("bigint")


def test_list_features_are_checked_element_by_element(spark: SparkSession) -> None:
    frame = spark.createDataFrame(
        [(1, at(1), [1.0, 2.0, None]), (2, at(1), [1.0, 3.5])],
        "driver_id bigint, ts timestamp, visits array<double>",
    )
    valid, rejected = checked(frame, table(Feature("visits", "INT64_LIST")))
    assert [(r.driver_id, r.visits) for r in valid] == [(1, [1, 2, None])]
    assert [r.reason for r in rejected] == [
        "visits: [1.0, 3.5] has an element that is not a valid INT64"
    ]


def test_window_keeps_its_rows_and_rejects_unplaceable_ones(spark: SparkSession) -> None:
    # given rows before, in and after the window, and one without an event time
    frame = spark.createDataFrame(
        [(1, at(1, 23), 1), (2, at(2), 1), (3, at(2, 23), 1), (4, at(3), 1), (5, None, 1)],
        "driver_id bigint, ts timestamp, trips bigint",
    )

    # when checked for [Jan 2, Jan 3)
    valid, rejected = checked(frame, table(), Window(at(2), at(3)))

    # then the half-open window keeps 2 and 3; 5 cannot be placed and is rejected
    assert sorted(r.driver_id for r in valid) == [2, 3]
    assert [r.reason for r in rejected] == ["event_timestamp (source column ts): is null"]


#: Window starts where literals used to go wrong: year 1, both sides of the 1582 Gregorian switch
#: (java.sql.Timestamp is Julian before it), the epoch, a far future and the last day Spark holds.
CALENDAR_EDGES = [
    datetime(1, 1, 2, tzinfo=UTC),
    datetime(1582, 10, 4, tzinfo=UTC),
    datetime(1582, 10, 15, tzinfo=UTC),
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(2099, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 30, tzinfo=UTC),
]


def test_windows_at_every_calendar_edge_keep_exactly_their_rows(spark: SparkSession) -> None:
    micro = timedelta(microseconds=1)
    for start in CALENDAR_EDGES:
        # given rows one microsecond either side of both bounds of a one-day window
        end = start + timedelta(days=1)
        instants = [start - micro, start, end - micro, end]
        frame = spark.createDataFrame(
            [(i, t, i) for i, t in enumerate(instants)], "driver_id bigint, ts timestamp, trips int"
        )

        # when checked for that window
        valid, rejected = checked(frame, table(), Window(start, end))

        # then exactly the rows within [start, end) are kept, at their exact instants
        kept = sorted((r.driver_id, instant(r.event_timestamp)) for r in valid)
        assert kept == [(1, start), (2, end - micro)], start
        assert rejected == []


# --- schema errors, before any Spark job ----------------------------------------------------------


@pytest.mark.parametrize(
    ("ddl", "feature", "message"),
    [
        (
            "trips struct<a:int>",
            Feature("trips", "DOUBLE"),
            "feature table 'driver_stats': column 'trips' is struct<a:int> in the source, "
            "declared DOUBLE: no value of that type can be a single value",
        ),
        (
            "trips double",
            Feature("trips", "STRING"),
            "feature table 'driver_stats': column 'trips' is double in the source, declared "
            "STRING: only strings, integers, decimals and booleans have one exact text; "
            "convert it in the source",
        ),
        (
            "other bigint",
            Feature("trips", "INT64"),
            "feature table 'driver_stats': column 'trips' is missing from the source unused; "
            "its columns are driver_id, ts, other. Add it, or map it with field_mapping",
        ),
        (
            "trips bigint",
            Feature("trips", "INT64_LIST"),
            "feature table 'driver_stats': column 'trips' is bigint in the source, declared "
            "INT64_LIST: a list type needs an array column",
        ),
    ],
)
def test_impossible_columns_fail_before_any_spark_job(
    spark: SparkSession, ddl: str, feature: Feature, message: str
) -> None:
    frame = spark.createDataFrame([], f"driver_id bigint, ts timestamp, {ddl}")
    with no_spark_job(spark), pytest.raises(SourceSchemaError) as error:
        check_rows(frame, table(feature), [DRIVER], table(feature).batch_source, None, INGESTED)
    assert str(error.value) == message


def test_numeric_timestamps_need_an_epoch_format(spark: SparkSession) -> None:
    frame = spark.createDataFrame([], "driver_id bigint, ts bigint, trips bigint")
    with pytest.raises(SourceSchemaError, match="timestamp_format epoch_seconds, epoch_millis"):
        check_rows(frame, table(), [DRIVER], table().batch_source, None, INGESTED)


def test_a_session_outside_utc_is_refused(spark: SparkSession) -> None:
    frame = spark.createDataFrame([], "driver_id bigint, ts string, trips bigint")
    spark.conf.set("spark.sql.session.timeZone", "Europe/Paris")
    try:
        with pytest.raises(ConfigError, match="must be UTC"):
            check_rows(frame, table(), [DRIVER], table().batch_source, None, INGESTED)
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")


def test_a_plan_built_once_checks_each_frame_against_its_own_latest_event(
    spark: SparkSession,
) -> None:
    from pyspark.sql import functions as F  # noqa: N812

    # given one plan whose latest accepted event time is a column of the frames it checks
    # (a stream builds its checks once; each micro-batch brings its own bound)
    from feast_spark.online.base import to_micros
    from feast_spark.spark.row_checks import check_plan

    schema = "driver_id bigint, ts timestamp, trips bigint, bound decimal(20, 0)"
    day1, day3 = Decimal(to_micros(at(1))), Decimal(to_micros(at(3)))
    first = spark.createDataFrame([(1, at(2), 5, day1), (2, at(1), 6, day1)], schema)
    second = spark.createDataFrame([(1, at(2), 7, day3)], schema)
    plan = check_plan(
        first.schema, ["driver_id", "ts", "trips"], table(), [DRIVER], table().batch_source,
        None, landed_at=F.lit(INGESTED), latest_event=F.col("bound"),
    )  # fmt: skip

    # when it checks a first frame, then a second with a later bound
    rows_first = plan.apply(first).rows.orderBy("driver_id").collect()
    rows_second = plan.apply(second).rows.collect()

    # then a row later than its own frame's bound is rejected, with the bound in the reason
    assert rows_first[0]["_feast_reject_reason"].startswith(
        "event_timestamp (source column ts): 2024-01-02 00:00:00 is later than "
        "2024-01-01 00:00:00 UTC (the job's start plus future_event_time_allowance)"
    )
    assert rows_first[1]["_feast_reject_reason"] is None
    # and the same event time is valid in the second frame; the bound is not in source_row
    assert rows_second[0]["_feast_reject_reason"] is None
    assert '"bound"' not in rows_first[0]["_feast_source_row"]
    assert rows_first[0]["_feast_source_row"].startswith('{"driver_id":1,"ts":')
