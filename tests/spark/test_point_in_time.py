"""Point-in-time join: explicit cases, input checks, and an independent oracle on random data."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest
from pyspark.sql import functions as sf
from pyspark.testing import assertDataFrameEqual

from feast_spark.errors import DefinitionError, SourceSchemaError
from feast_spark.join_tuning import JoinTuning
from feast_spark.spark import bloom_filter
from feast_spark.spark.point_in_time import (
    EntitySummary,
    FeatureTableInput,
    point_in_time_join,
    pruning,
    skew,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

T0 = datetime(2021, 3, 28, 0, 30, tzinfo=UTC)  # 30 min before Europe's spring-forward
MS = timedelta(milliseconds=1)
US = timedelta(microseconds=1)


def at(seconds: float = 0, *, micros: int = 0) -> datetime:
    return T0 + timedelta(seconds=seconds, microseconds=micros)


def assert_same_rows(actual: DataFrame, expected: DataFrame) -> None:
    """Same schema, same rows in any order, duplicates counted (pyspark's assertDataFrameEqual)."""
    assertDataFrameEqual(actual, expected)


def feature_rows(
    spark: SparkSession, keys: Sequence[str], features: str, rows: Sequence[tuple[Any, ...]]
) -> DataFrame:
    """Offline rows from tuples: keys..., features..., event_timestamp, created_timestamp."""
    key_ddl = ", ".join(f"{k} bigint" for k in keys)
    ddl = f"{key_ddl}, {features}, event_timestamp timestamp, created_timestamp timestamp"
    return spark.createDataFrame(list(rows), ddl)


def entity_rows(spark: SparkSession, rows: Sequence[tuple[Any, ...]]) -> DataFrame:
    return spark.createDataFrame(list(rows), "driver bigint, event_timestamp timestamp, tag string")


def driver_table(
    rows: DataFrame, max_age: timedelta | None = None, features: tuple[str, ...] = ("rate",)
) -> FeatureTableInput:
    return FeatureTableInput("driver", ("driver",), features, max_age, rows)


# ---------------------------------------------------------------------------------------------
# Explicit cases


def test_feature_400_ms_after_the_entity_timestamp_does_not_match(spark: SparkSession) -> None:
    # given a feature row 400 ms after the entity row, and an older one
    rows = feature_rows(
        spark,
        ["driver"],
        "rate double",
        [(1, 0.1, at(-60), at(-60)), (1, 0.9, at() + 400 * MS, at())],
    )
    entities = entity_rows(spark, [(1, at(), "a")])
    # when
    result = point_in_time_join(entities, [driver_table(rows)])
    # then the older row wins
    assert_same_rows(
        result.select("tag", "driver__rate"),
        spark.createDataFrame([("a", 0.1)], "tag string, driver__rate double"),
    )


def test_one_microsecond_after_does_not_match_but_equal_does(spark: SparkSession) -> None:
    # given rows at the entity timestamp and one microsecond after it
    rows = feature_rows(
        spark, ["driver"], "rate double", [(1, 0.5, at(), at()), (1, 0.6, at() + US, at())]
    )
    entities = entity_rows(spark, [(1, at(), "a")])
    # when
    result = point_in_time_join(entities, [driver_table(rows)])
    # then the row at exactly the entity timestamp wins
    assert [r.driver__rate for r in result.collect()] == [0.5]


def test_row_exactly_max_age_old_matches_one_microsecond_older_does_not(
    spark: SparkSession,
) -> None:
    # given a table with max_age 10 s and entity rows 10 s and 10 s + 1 us after a feature row
    rows = feature_rows(spark, ["driver"], "rate double", [(1, 0.5, at(), at())])
    entities = entity_rows(spark, [(1, at(10), "exactly"), (1, at(10) + US, "older")])
    # when
    result = point_in_time_join(entities, [driver_table(rows, timedelta(seconds=10))])
    # then
    expected = spark.createDataFrame(
        [("exactly", 0.5), ("older", None)], "tag string, driver__rate double"
    )
    assert_same_rows(result.select("tag", "driver__rate"), expected)


def test_max_age_beyond_timestamp_range_is_no_limit(spark: SparkSession) -> None:
    # given a row 8000 years before the entity row and the largest timedelta as max_age
    old = datetime(1, 1, 1, tzinfo=UTC)
    rows = feature_rows(spark, ["driver"], "rate double", [(1, 0.5, old, old)])
    entities = entity_rows(spark, [(1, datetime(8000, 1, 1, tzinfo=UTC), "a")])
    # when
    result = point_in_time_join(entities, [driver_table(rows, timedelta.max)])
    # then no overflow, and the row matches
    assert [r.driver__rate for r in result.collect()] == [0.5]


def test_null_in_latest_row_is_not_back_filled(spark: SparkSession) -> None:
    # given an older row with values and a newer row with nulls
    rows = feature_rows(
        spark,
        ["driver"],
        "rate double, trips int",
        [(1, 0.5, 7, at(-20), at(-20)), (1, None, 8, at(-10), at(-10))],
    )
    entities = entity_rows(spark, [(1, at(), "a")])
    # when
    result = point_in_time_join(entities, [driver_table(rows, features=("rate", "trips"))])
    # then the newer row comes out as stored
    assert [(r.driver__rate, r.driver__trips) for r in result.collect()] == [(None, 8)]


def test_no_candidate_gives_nulls(spark: SparkSession) -> None:
    # given: an unknown key, a row that is too new, a row that is too old, a null key
    rows = feature_rows(
        spark,
        ["driver"],
        "rate double, trips int",
        [
            (1, 0.5, 7, at(5), at(5)),
            (2, 0.5, 7, at(-100), at(-100)),
            (None, 0.5, 7, at(-1), at(-1)),
        ],
    )
    entities = entity_rows(
        spark, [(1, at(), "new"), (2, at(), "old"), (3, at(), "x"), (None, at(), "n")]
    )
    # when
    result = point_in_time_join(
        entities, [driver_table(rows, timedelta(seconds=60), ("rate", "trips"))]
    )
    # then
    assert result.count() == 4
    assert {(r.driver__rate, r.driver__trips) for r in result.collect()} == {(None, None)}


def test_null_entity_timestamp_matches_nothing(spark: SparkSession) -> None:
    rows = feature_rows(spark, ["driver"], "rate double", [(1, 0.5, at(-5), at(-5))])
    entities = entity_rows(spark, [(1, None, "none"), (1, at(), "some")])
    result = point_in_time_join(entities, [driver_table(rows)])
    assert sorted((r.tag, r.driver__rate) for r in result.collect()) == [
        ("none", None),
        ("some", 0.5),
    ]


def test_event_tie_is_won_by_latest_created_then_by_greatest_values(spark: SparkSession) -> None:
    # given rows tied on event time; two of them also tied on created time
    rows = feature_rows(
        spark,
        ["driver"],
        "rate double, name string",
        [
            (1, 0.9, "late-created", at(-10), at(-10)),  # created earliest
            (1, 0.1, "b", at(-10), at(-5)),
            (1, 0.1, "a", at(-10), at(-5)),
            (1, None, "z", at(-10), at(-5)),
            (2, 0.3, "x", at(-10), None),  # null created counts as oldest
            (2, 0.2, "y", at(-10), at(-20)),
        ],
    )
    entities = entity_rows(spark, [(1, at(), "one"), (2, at(), "two")])
    # when the frame is read in any partitioning
    tables = [driver_table(rows, features=("rate", "name"))]
    results = [
        point_in_time_join(entities, [driver_table(rows.repartition(n), features=("rate", "name"))])
        for n in (1, 3)
    ]
    results.append(point_in_time_join(entities, tables))
    # then (0.1, "b") > (0.1, "a") > (None, "z"): features compare in declared order, null first
    expected = spark.createDataFrame(
        [("one", 0.1, "b"), ("two", 0.2, "y")],
        "tag string, driver__rate double, driver__name string",
    )
    for result in results:
        assert_same_rows(result.select("tag", "driver__rate", "driver__name"), expected)


def test_duplicates_kept_and_pass_through_columns_unchanged(spark: SparkSession) -> None:
    # given entity rows with odd pass-through columns, two of them identical
    rows = feature_rows(spark, ["driver"], "rate double", [(1, 0.5, at(-5), at(-5))])
    schema = (
        "driver bigint, `odd.name` string, event_timestamp timestamp, "
        "nested struct<a: int, b: array<string>>, m map<string, int>, label string"
    )
    data = [
        (1, "x", at(), (1, ["p"]), {"k": 1}, "dup"),
        (1, "x", at(), (1, ["p"]), {"k": 1}, "dup"),
        (2, None, at(1), None, None, "other"),
    ]
    entities = spark.createDataFrame(data, schema)
    # when
    result = point_in_time_join(entities, [driver_table(rows)])
    # then the columns are the entity columns, in order, then the feature
    assert result.columns == [*entities.columns, "driver__rate"]
    assert result.schema.fields[: len(entities.columns)] == entities.schema.fields
    expected = entities.withColumn(
        "driver__rate", sf.when(sf.col("driver") == 1, sf.lit(0.5)).cast("double")
    )
    # map columns cannot be compared as rows: compare them apart
    assert_same_rows(result.drop("m"), expected.drop("m"))
    assert sorted(str(r.m) for r in result.collect()) == sorted(
        str(r.m) for r in entities.collect()
    )


def test_tables_with_different_entities_in_one_request(spark: SparkSession) -> None:
    # given driver, customer and (driver, customer) tables, and a second driver table
    ts = "event_timestamp timestamp, created_timestamp timestamp"
    driver = spark.createDataFrame([(1, 0.5, at(-5), at(-5))], f"driver bigint, rate double, {ts}")
    driver_daily = spark.createDataFrame(
        [(1, 40, at(-9), at(-9))], f"driver bigint, trips int, {ts}"
    )
    customer = spark.createDataFrame(
        [("c", "gold", at(-1), at(-1))], f"customer string, tier string, {ts}"
    )
    pair = spark.createDataFrame(
        [("c", 1, 3, at(-2), at(-2)), ("c", 2, 4, at(-2), at(-2))],
        f"customer string, driver bigint, rides int, {ts}",
    )
    entities = spark.createDataFrame(
        [(1, "c", at()), (2, "c", at()), (1, "d", at())],
        "driver bigint, customer string, event_timestamp timestamp",
    )
    tables = [
        FeatureTableInput("driver", ("driver",), ("rate",), None, driver),
        FeatureTableInput("customer", ("customer",), ("tier",), None, customer),
        FeatureTableInput("pair", ("driver", "customer"), ("rides",), None, pair),
        FeatureTableInput("daily", ("driver",), ("trips",), timedelta(seconds=9), driver_daily),
    ]
    # when
    result = point_in_time_join(entities, tables)
    # then
    expected = spark.createDataFrame(
        [
            (1, "c", at(), 0.5, "gold", 3, 40),
            (2, "c", at(), None, "gold", 4, None),
            (1, "d", at(), 0.5, None, None, 40),
        ],
        "driver bigint, customer string, event_timestamp timestamp, driver__rate double, "
        "customer__tier string, pair__rides int, daily__trips int",
    )
    assert_same_rows(result, expected)


def three_tables_over_two_key_sets(
    spark: SparkSession,
) -> tuple[DataFrame, list[FeatureTableInput]]:
    ts = "event_timestamp timestamp, created_timestamp timestamp"
    one = spark.createDataFrame([(1, 0.5, at(), at())], f"driver bigint, a double, {ts}")
    two = spark.createDataFrame([(1, 0.5, at(), at())], f"driver bigint, b double, {ts}")
    three = spark.createDataFrame([("c", 0.5, at(), at())], f"customer string, c double, {ts}")
    entities = spark.createDataFrame(
        [(1, "c", at())], "driver bigint, customer string, event_timestamp timestamp"
    )
    tables = [
        FeatureTableInput("one", ("driver",), ("a",), timedelta(days=1), one),
        FeatureTableInput("two", ("driver",), ("b",), None, two),
        FeatureTableInput("three", ("customer",), ("c",), None, three),
    ]
    return entities, tables


DAY = 86_400


def executed_plan(frame: DataFrame) -> str:
    return str(frame._jdf.queryExecution().executedPlan().toString())


def test_one_shuffle_of_feature_rows_per_key_set_pruned_by_broadcast_entity_rows(
    spark: SparkSession,
) -> None:
    # given three tables over two key sets, and few entity keys
    entities, tables = three_tables_over_two_key_sets(spark)
    # when
    plan = executed_plan(point_in_time_join(entities, tables))
    # then one shuffle of the rows per key set, and each table's feature rows meet the
    # broadcast time bounds of their key set (its entity rows: few per key)
    assert plan.count("REPARTITION_BY_COL") == 2, plan
    assert plan.count("BroadcastHashJoin") == 3, plan
    assert "SortMergeJoin" not in plan and "ShuffledHashJoin" not in plan, plan


def key_pruning_tuning(mode: str, base: JoinTuning | None = None) -> JoinTuning:
    """Tuning that makes the join prune feature rows by key as ``mode`` says (few rows per key).

    Modes in the join's order of preference: ``entity-row-bounds``, ``bloom-filter`` (entity
    rows are not bounds), ``key-ranges`` (no bloom filter either, as in a session without one)
    and ``time-only`` (too many keys to broadcast, too).
    """
    order = ["entity-row-bounds", "bloom-filter", "key-ranges", "time-only"]
    step = order.index(mode)
    changes: dict[str, Any] = {}
    if step >= 1:
        changes["point_pruning_max_rows_per_key"] = -1
    if step >= 2:
        changes["bloom_filter"] = False
    if step >= 3:
        changes["key_pruning_max_keys"] = -1
    return dataclasses.replace(base or JoinTuning(), **changes)


@pytest.mark.parametrize(
    ("mode", "kept_rates"),
    [
        ("entity-row-bounds", [2.0, 3.0, 6.0]),
        ("bloom-filter", [2.0, 3.0, 6.0]),
        ("key-ranges", [2.0, 3.0, 4.0, 6.0]),
        ("time-only", [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]),
    ],
)
def test_feature_rows_no_entity_row_of_their_key_can_match_are_pruned(
    spark: SparkSession, mode: str, kept_rates: list[float]
) -> None:
    # given entity rows of key 1 on days 10, 12 and 16, of key 2 on day 20 (one with a null
    # time), and a table with max_age 2 days
    tuning = key_pruning_tuning(mode)
    entities = entity_rows(
        spark,
        [
            (1, at(10 * DAY), "a"), (1, at(12 * DAY), "b"), (1, at(16 * DAY), "c"),
            (2, at(20 * DAY), "d"), (2, None, "e"),
        ],
    )  # fmt: skip
    rows = feature_rows(
        spark, ["driver"], "rate double",
        [
            (1, 1.0, at(7 * DAY), at(7 * DAY)),    # before day 10 - max_age (2 days): never a candidate
            (1, 2.0, at(8 * DAY), at(8 * DAY)),    # exactly day 10 - max_age: kept
            (1, 3.0, at(12 * DAY), at(12 * DAY)),  # exactly an entity time: kept
            (1, 4.0, at(13 * DAY), at(13 * DAY)),  # within key 1's range, not 2 days before a row
            (2, 5.0, at(12 * DAY), at(12 * DAY)),  # within key 1's range, before key 2's
            (2, 6.0, at(19 * DAY), at(19 * DAY)),  # kept
            (3, 7.0, at(15 * DAY), at(15 * DAY)),  # no entity row has key 3
            (1, 8.0, at(17 * DAY), at(17 * DAY)),  # after key 1's latest entity time
        ],
    )  # fmt: skip
    summary = EntitySummary.of(entities, "event_timestamp", [("driver",)])
    # when
    prune = pruning.key_pruning(entities, "event_timestamp", ["driver"], summary, None, tuning)
    kept = rows if prune is None else prune(rows, 2 * DAY * 1_000_000)
    # then only rows some entity row of the same key can reach remain: a range per key keeps
    # what lies between its entity rows too; the bloom filter's half-day buckets (max_age / 4)
    # keep no more here, where every row lies a day or more from a bound
    assert sorted(r.rate for r in kept.collect()) == kept_rates
    assert kept.columns == rows.columns
    assert (prune is None) == (mode == "time-only")


def test_entity_row_bounds_carry_one_instant_and_key_ranges_two(spark: SparkSession) -> None:
    # given key 1 with entity rows at 0 s and 5 s, key 2 at 3 s, and a row with a null time
    rows = [(1, at(0), "a"), (1, at(5), "b"), (2, at(3), "c"), (2, None, "d")]
    entities = entity_rows(spark, rows)
    summary = EntitySummary.of(entities, "event_timestamp", [("driver",)])
    tuning = JoinTuning()
    # when
    points = pruning.entity_row_bounds(
        entities, "event_timestamp", ["driver"], summary, None, tuning
    )
    ranges = pruning.key_ranges(entities, "event_timestamp", ["driver"], summary, tuning)
    # then each entity row with a time is a bound of one instant; each key has one range
    assert points is not None and ranges is not None
    assert points.columns == ["_pit_key_0", "_pit_key_low"]
    assert points.count() == 3
    assert ranges.columns == ["_pit_key_0", "_pit_key_low", "_pit_key_high"]
    assert ranges.count() == 2


def test_entity_rows_are_bounds_only_when_each_key_has_few_of_them(spark: SparkSession) -> None:
    # given 3 entity rows of one key, and 2 of another
    rows = [(1, at(n), "x") for n in range(3)] + [(2, at(n), "y") for n in range(2)]
    entities = entity_rows(spark, rows)
    summary = EntitySummary.of(entities, "event_timestamp", [("driver",)])

    def bounds(tuning: JoinTuning) -> int | None:
        found = pruning.entity_row_bounds(
            entities, "event_timestamp", ["driver"], summary, None, tuning
        )
        return None if found is None else found.count()

    # when / then: the heaviest key has 3 rows (> 2): no bound per entity row
    assert summary.heaviest_rows == {("driver",): 3}
    assert bounds(JoinTuning(point_pruning_max_rows_per_key=2)) is None
    # and with at most 3 rows per key allowed, one bound per entity row
    assert bounds(JoinTuning(point_pruning_max_rows_per_key=3)) == 5
    # and above the broadcast limit, none, nor key ranges
    too_many = JoinTuning(point_pruning_max_rows_per_key=3, key_pruning_max_keys=1)
    assert bounds(too_many) is None
    assert pruning.key_ranges(entities, "event_timestamp", ["driver"], summary, too_many) is None


@pytest.mark.parametrize(
    ("mode", "filters", "broadcasts"), [("bloom-filter", 3, 0), ("key-ranges", 0, 3)]
)
def test_many_entity_rows_per_key_prune_before_the_same_single_shuffle(
    spark: SparkSession, mode: str, filters: int, broadcasts: int
) -> None:
    # given three tables over two key sets, where entity rows are too many per key for bounds
    # (and, key-ranges, a session without Spark's bloom filter: Spark Connect, or internals that
    # moved)
    tuning = key_pruning_tuning(mode)
    entities, tables = three_tables_over_two_key_sets(spark)
    # when
    plan = executed_plan(point_in_time_join(entities, tables, tuning=tuning))
    # then one shuffle per key set, each table's rows filtered before it: by a bloom filter that
    # a subquery builds once per key set and max_age, or by a broadcast of the key set's ranges
    assert plan.count("REPARTITION_BY_COL") == 2, plan
    assert plan.count("might_contain") == filters, plan
    assert ("bloom_filter_agg" in plan) == (filters > 0), plan
    assert plan.count("BroadcastHashJoin") == broadcasts, plan


def test_bloom_buckets_are_the_finest_that_fit_else_keys_alone() -> None:
    # given 1,000 entity rows over 100 keys and 100 days, max_age 10 days
    day_us = DAY * 1_000_000
    summary = EntitySummary(0, 100 * day_us, rows=1_000)

    def buckets(capacity: int, max_age_us: int | None = 10 * day_us) -> tuple[int | None, int]:
        return pruning.bloom_buckets(summary, 100, max_age_us, capacity, JoinTuning())

    # when / then: quarter buckets (2.5 days); a key's 10 rows want at most the 46 buckets of
    # its 110 days (entity range plus max_age), fewer than their 5 pairs each
    assert buckets(10_000) == (10 * day_us // 4, 4_600)
    # and halves where quarters do not fit: 24 per key
    assert buckets(4_599) == (10 * day_us // 2, 2_400)
    # and 5 pairs per entity row bound it where max_age is short (1 day, quarters of it)
    assert buckets(10_000, day_us) == (day_us // 4, 5_000)
    # and keys alone where not even whole max_age buckets (13 per key) fit, or with no max_age
    assert buckets(1_299) == (None, 100)
    assert buckets(10_000, None) == (None, 100)
    # and where a key's 100 entity rows want nearly all of its 110 days anyway
    many = EntitySummary(0, 100 * day_us, rows=10_000)
    assert pruning.bloom_buckets(many, 100, 10 * day_us, 10**9, JoinTuning()) == (None, 100)


def test_entity_row_and_feature_names_may_not_use_the_joins_prefix(
    spark: SparkSession, simple: tuple[DataFrame, DataFrame]
) -> None:
    entities, rows = simple
    renamed = rows.withColumnRenamed("rate", "_pit_key_0")
    with pytest.raises(SourceSchemaError, match="'_pit_key_0' is a name reserved for the join"):
        point_in_time_join(entities, [driver_table(renamed, features=("_pit_key_0",))])


@pytest.fixture
def bloom_filters_too_small(spark: SparkSession) -> Iterator[None]:
    """Spark's bloom filters capped at 7 bits: no item fits at 8 bits each."""
    before = spark.conf.get(bloom_filter.MAX_BITS_CONF, None)
    spark.conf.set(bloom_filter.MAX_BITS_CONF, "7")
    yield
    if before is None:
        spark.conf.unset(bloom_filter.MAX_BITS_CONF)
    else:
        spark.conf.set(bloom_filter.MAX_BITS_CONF, before)


def test_no_key_pruning_above_the_distinct_key_limit_and_bloom_filter_cap(
    spark: SparkSession, bloom_filters_too_small: None
) -> None:
    # given more distinct entity keys than the broadcast limit and than a bloom filter holds
    tuning = JoinTuning(key_pruning_max_keys=0)
    entities, tables = three_tables_over_two_key_sets(spark)
    # when
    plan = executed_plan(point_in_time_join(entities, tables, tuning=tuning))
    # then only the two shuffles of the rows, and no join or filter by key at all
    assert plan.count("Exchange hashpartitioning") == 2, plan
    assert "Join" not in plan and "might_contain" not in plan, plan


def test_key_pruning_keeps_every_feature_row_an_entity_row_can_match(
    spark: SparkSession,
) -> None:
    # given feature rows of keys 1-3 and entity rows of keys 2 and 3, one with a null key
    rows = feature_rows(
        spark, ["driver"], "rate double",
        [(k, float(k), at(), at()) for k in (1, 2, 3)],
    )  # fmt: skip
    entities = entity_rows(spark, [(2, at(), "a"), (3, at(), "b"), (None, at(), "c")])
    # when
    result = point_in_time_join(entities, [driver_table(rows)])
    # then keys 2 and 3 find their rows and the null key matches nothing
    got = sorted((r.tag, r.driver__rate) for r in result.collect())
    assert got == [("a", 2.0), ("b", 3.0), ("c", None)]


SPLIT_HOT_KEYS = JoinTuning(hot_key_min_rows=1, hot_key_min_share=0.0, hot_key_time_buckets=5)
"""Every key among the heaviest few counts as hot; its rows are cut into 5 time buckets."""


def test_summary_names_the_keys_holding_a_large_share_of_the_entity_rows(
    spark: SparkSession,
) -> None:
    # given key 1 on 6 of 10 entity rows, key 2 on 3, key 3 on 1
    tuning = JoinTuning(hot_key_min_rows=2, hot_key_min_share=0.5)
    keys = [1] * 6 + [2] * 3 + [3]
    entities = entity_rows(spark, [(k, at(n), "x") for n, k in enumerate(keys)])
    # when
    summary = EntitySummary.of(entities, "event_timestamp", [("driver",)], tuning)
    # then only key 1 is hot, named by the same hash the join computes
    expected = spark.range(1).select(sf.xxhash64(sf.lit(1).cast("bigint"))).first()[0]
    assert summary.hot_keys == {("driver",): (expected,)}
    assert summary.distinct_keys == {("driver",): 3}


def test_hot_key_buckets_follow_shuffle_partitions_or_default_when_not_a_number() -> None:
    # given sessions whose shuffle partitions are a number, and Databricks' "auto"
    def frame(value: str) -> Any:
        return SimpleNamespace(
            sparkSession=SimpleNamespace(conf={"spark.sql.shuffle.partitions": value})
        )

    # when / then
    assert skew.shuffle_partitions(frame("24")) == 24
    assert skew.shuffle_partitions(frame("auto")) == 8


def test_a_split_presorts_hot_rows_first_by_time_and_other_rows_by_key(
    spark: SparkSession,
) -> None:
    # given a split over [100 s, 200 s] reaching 50 s back (max_age); rows of hot key 1 (in
    # buckets 0-3) and of keys 5 and 7 (bucket -1) at several times
    low_us = int(at(100).timestamp()) * 1_000_000
    split = skew.TimeSplit(("driver",), (0,), low_us, 25_000_001, 4, 50_000_000)
    seconds = [0, 50, 60, 150, 250, 400]
    rows = spark.createDataFrame(
        [(1, s, at(s), 0) for s in seconds] + [(k, s, at(s), -1) for k in (7, 5) for s in seconds],
        "driver bigint, s int, _pit_ts timestamp, _pit_time_bucket int",
    )
    # when
    order = {
        (r.driver, r.s): r.order
        for r in rows.select(
            "driver", "s", split.presort_order(sf.col("driver")).alias("order")
        ).collect()
    }
    # then the hot key's rows come first, in time order (all before the reach alike); then
    # the other keys' rows, by key
    hot = [order[(1, s)] for s in seconds]
    assert hot == sorted(hot) and len(set(hot)) == 5, hot
    assert hot[0] == hot[1]
    assert max(hot) < order[(5, 0)] == order[(5, 400)] < order[(7, 0)] == order[(7, 400)]


def test_a_hot_keys_rows_are_split_by_time_and_see_rows_of_earlier_buckets(
    spark: SparkSession,
) -> None:
    # given hot key 1 with entity rows every 10 s over 5 time buckets, its feature rows before
    # the range and in the fourth bucket only, and key 2 beside it
    entities = entity_rows(
        spark, [(1, at(s), f"k1@{s}") for s in (0, 10, 20, 30, 40)] + [(2, at(35), "k2@35")]
    )
    rows = feature_rows(
        spark, ["driver"], "rate double",
        [
            (1, 1.0, at(-5), at(-5)),   # before the entity range: first bucket
            (1, 2.0, at(31), at(31)),   # fourth bucket
            (1, 3.0, at(31), None),     # same event time, null created: loses to 2.0
            (2, 4.0, at(-1), at(-1)),
        ],
    )  # fmt: skip
    # when
    joined = point_in_time_join(
        entities, [driver_table(rows, max_age=timedelta(seconds=30))], tuning=SPLIT_HOT_KEYS
    )
    # then the rows are shuffled once, by key and time bucket, the rows at each bucket's
    # latest time copied into the later ones beforehand (a broadcast of those times)
    plan = executed_plan(joined)
    windows = [line for line in plan.splitlines() if "Window [last" in line]
    assert windows and all("_pit_time_bucket" in line for line in windows), plan
    assert plan.count("REPARTITION_BY_COL") == 1, plan
    assert "_pit_latest_bucket" in plan and "Generate explode" in plan, plan
    # and each row sees the latest earlier row, across empty buckets, within max_age
    got = sorted((r.tag, r.driver__rate) for r in joined.collect())
    assert got == [
        ("k1@0", 1.0),
        ("k1@10", 1.0),
        ("k1@20", 1.0),
        ("k1@30", None),  # 1.0 is 35 s old
        ("k1@40", 2.0),
        ("k2@35", None),  # 36 s old
    ]


# ---------------------------------------------------------------------------------------------
# Input checks


@pytest.fixture
def simple(spark: SparkSession) -> tuple[DataFrame, DataFrame]:
    rows = feature_rows(spark, ["driver"], "rate double", [(1, 0.5, at(), at())])
    return entity_rows(spark, [(1, at(), "a")]), rows


def test_missing_key_in_entity_rows(simple: tuple[DataFrame, DataFrame]) -> None:
    entities, rows = simple
    with pytest.raises(SourceSchemaError, match="'driver' is missing from the entity rows") as info:
        point_in_time_join(entities.drop("driver"), [driver_table(rows)])
    assert (info.value.table, info.value.column) == ("driver", "driver")


def test_missing_entity_timestamp(simple: tuple[DataFrame, DataFrame]) -> None:
    entities, rows = simple
    with pytest.raises(SourceSchemaError, match="'ts' is missing in the entity rows"):
        point_in_time_join(entities, [driver_table(rows)], entity_timestamp_column="ts")


@pytest.mark.parametrize("column", ["rate", "event_timestamp", "created_timestamp", "driver"])
def test_missing_column_in_feature_rows(simple: tuple[DataFrame, DataFrame], column: str) -> None:
    entities, rows = simple
    with pytest.raises(SourceSchemaError, match=f"'{column}' is missing in the feature rows"):
        point_in_time_join(entities, [driver_table(rows.drop(column))])


def test_timestamp_types_are_checked(simple: tuple[DataFrame, DataFrame]) -> None:
    entities, rows = simple
    as_string = entities.withColumn("event_timestamp", sf.col("event_timestamp").cast("string"))
    with pytest.raises(SourceSchemaError, match="must be timestamp in the entity rows, got string"):
        point_in_time_join(as_string, [driver_table(rows)])
    ntz = rows.withColumn("created_timestamp", sf.col("created_timestamp").cast("timestamp_ntz"))
    with pytest.raises(SourceSchemaError, match="got timestamp_ntz"):
        point_in_time_join(entities, [driver_table(ntz)])


def test_key_types_must_agree(simple: tuple[DataFrame, DataFrame]) -> None:
    entities, rows = simple
    with pytest.raises(
        SourceSchemaError, match="is bigint in the feature rows but int in the entity"
    ):
        point_in_time_join(
            entities.withColumn("driver", sf.col("driver").cast("int")), [driver_table(rows)]
        )


def test_output_column_collision(simple: tuple[DataFrame, DataFrame]) -> None:
    entities, rows = simple
    with pytest.raises(SourceSchemaError, match="'driver__rate'"):
        point_in_time_join(entities.withColumn("driver__rate", sf.lit(1)), [driver_table(rows)])


def test_table_definition_checks(simple: tuple[DataFrame, DataFrame]) -> None:
    entities, rows = simple
    with pytest.raises(DefinitionError, match="requested more than once"):
        point_in_time_join(entities, [driver_table(rows), driver_table(rows)])
    with pytest.raises(DefinitionError, match="max_age must be positive"):
        point_in_time_join(entities, [driver_table(rows, timedelta(0))])
    with pytest.raises(DefinitionError, match="at least one feature"):
        point_in_time_join(entities, [driver_table(rows, features=())])


def test_unorderable_feature_is_refused(
    spark: SparkSession, simple: tuple[DataFrame, DataFrame]
) -> None:
    entities, rows = simple
    with_map = rows.withColumn("props", sf.create_map(sf.lit("k"), sf.lit(1)))
    with pytest.raises(SourceSchemaError, match="cannot order"):
        point_in_time_join(entities, [driver_table(with_map, features=("props",))])


def test_wrong_argument_types(simple: tuple[DataFrame, DataFrame]) -> None:
    entities, rows = simple
    with pytest.raises(TypeError):
        point_in_time_join(entities.collect(), [driver_table(rows)])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        point_in_time_join(entities, driver_table(rows))  # type: ignore[arg-type]


def test_no_tables_returns_entity_rows(simple: tuple[DataFrame, DataFrame]) -> None:
    entities, _ = simple
    assert_same_rows(point_in_time_join(entities, []), entities)


def test_empty_entity_rows(spark: SparkSession, simple: tuple[DataFrame, DataFrame]) -> None:
    _, rows = simple
    result = point_in_time_join(entity_rows(spark, []), [driver_table(rows)])
    assert result.count() == 0
    assert result.columns == ["driver", "event_timestamp", "tag", "driver__rate"]


# ---------------------------------------------------------------------------------------------
# Oracle: plain Python over the same rows, written without looking at the Spark job


@dataclass(frozen=True)
class Table:
    name: str
    keys: tuple[str, ...]
    features: tuple[str, ...]
    max_age: timedelta | None
    rows: list[dict[str, Any]]  # keys, features, event_timestamp, created_timestamp (aware)


def order_key(value: Any) -> tuple[Any, ...]:
    """Spark's ascending order: null first; arrays element-wise, then by length."""
    if value is None:
        return (0,)
    if isinstance(value, list):
        return (1, tuple(order_key(v) for v in value))
    return (1, value)


def oracle(
    entities: list[dict[str, Any]], tables: list[Table], ts_column: str, seen: set[str]
) -> list[dict[str, Any]]:
    """The expected output rows; ``seen`` collects which edge cases decided a result."""
    out = []
    for entity in entities:
        row = dict(entity)
        when = entity[ts_column]
        for table in tables:
            best = None
            if when is not None and all(entity[k] is not None for k in table.keys):
                candidates = [
                    f
                    for f in table.rows
                    if all(f[k] == entity[k] for k in table.keys)
                    and f["event_timestamp"] is not None
                    and f["event_timestamp"] <= when
                    and (table.max_age is None or f["event_timestamp"] >= when - table.max_age)
                ]
                if candidates:

                    def rank(f: dict[str, Any], table: Table = table) -> tuple[Any, ...]:
                        return (
                            f["event_timestamp"],
                            order_key(f["created_timestamp"]),
                            tuple(order_key(f[name]) for name in table.features),
                        )

                    best = max(candidates, key=rank)
                    tied = [
                        f for f in candidates if f["event_timestamp"] == best["event_timestamp"]
                    ]
                    if len(tied) > 1:
                        seen.add("event tie")
                    if len({rank(f)[:2] for f in tied}) < len(tied):
                        seen.add("event and created tie")
                    if (
                        table.max_age is not None
                        and best["event_timestamp"] == when - table.max_age
                    ):
                        seen.add("exactly max_age old")
                    if any(best[name] is None for name in table.features):
                        seen.add("null in winner")
                    if best["event_timestamp"].microsecond % 250_000:
                        seen.add("sub-grid timestamp")
            for name in table.features:
                row[f"{table.name}__{name}"] = None if best is None else best[name]
        out.append(row)
    return out


OFFSETS = [
    timezone(timedelta(hours=2)),
    timezone(timedelta(hours=-5)),
    UTC,
    timezone(timedelta(hours=5, minutes=30)),
]


def random_instant(rng: random.Random, steps: int) -> datetime:
    """On a 250 ms grid (ties, rows exactly max_age old) with occasional 1 us or 400 ms nudges."""
    nudge = rng.choice([0, 0, 0, 0, 1, -1, 400_000])
    return T0 + timedelta(microseconds=rng.randrange(steps) * 250_000 + nudge)


def as_text(moment: datetime | None, rng: random.Random) -> str | None:
    """An ISO string in a random UTC offset: parsed by Spark, compared as an instant."""
    return None if moment is None else moment.astimezone(rng.choice(OFFSETS)).isoformat()


def maybe(rng: random.Random, value: Any, null_rate: float = 0.2) -> Any:
    return None if rng.random() < null_rate else value


def random_tables(rng: random.Random) -> list[Table]:
    specs = [
        ("driver", ("driver",), ("rate", "trips"), timedelta(seconds=2)),
        ("daily", ("driver",), ("tags",), None),
        ("customer", ("customer",), ("tier",), None),
        ("pair", ("customer", "driver"), ("rides", "rate"), timedelta(milliseconds=1500)),
    ]
    makers = {
        "rate": lambda: maybe(rng, rng.choice([0.5, 1.5, 2.25])),
        "trips": lambda: maybe(rng, rng.randrange(3)),
        "tags": lambda: maybe(rng, [maybe(rng, rng.choice("ab")) for _ in range(rng.randrange(3))]),
        "tier": lambda: maybe(rng, rng.choice(["gold", "silver", "bronze"])),
        "rides": lambda: maybe(rng, rng.randrange(1000)),
    }
    tables = []
    for name, keys, features, max_age in specs:
        rows = []
        for _ in range(rng.randrange(80, 160)):
            row: dict[str, Any] = {
                "driver": maybe(rng, rng.randrange(6), 0.02),
                "customer": maybe(rng, rng.choice(["c0", "c1", "c2", "ç3"]), 0.02),
                "event_timestamp": maybe(rng, random_instant(rng, 40), 0.02),
                "created_timestamp": maybe(rng, T0 + timedelta(seconds=rng.randrange(3)), 0.05),
            }
            row.update({f: makers[f]() for f in features})
            rows.append(row)
        # Exact copies of some rows: full ties that any choice resolves the same way.
        rows += [dict(r) for r in rng.sample(rows, 5)]
        tables.append(Table(name, keys, features, max_age, rows))
    return tables


def random_entities(rng: random.Random) -> list[dict[str, Any]]:
    rows = [
        {
            "row_id": i,
            "driver": maybe(rng, rng.randrange(7), 0.03),
            "customer": maybe(rng, rng.choice(["c0", "c1", "c2", "ç3", "c4"]), 0.03),
            "ts": maybe(rng, random_instant(rng, 48), 0.02),
            "note": maybe(rng, rng.choice(["x", "y"])),
        }
        for i in range(rng.randrange(150, 250))
    ]
    return rows + [dict(r) for r in rng.choices(rows, k=30)]  # duplicate entity rows


FEATURE_DDL = {
    "rate": "double",
    "trips": "int",
    "tags": "array<string>",
    "tier": "string",
    "rides": "bigint",
}
KEY_DDL = {"driver": "bigint", "customer": "string"}


def to_spark(
    spark: SparkSession, rows: list[dict[str, Any]], columns: dict[str, str], rng: random.Random
) -> DataFrame:
    """Rows with their timestamp columns sent as offset strings and parsed by Spark."""
    stamps = [c for c, t in columns.items() if t == "timestamp"]
    ddl = ", ".join(f"`{c}` {'string' if t == 'timestamp' else t}" for c, t in columns.items())
    data = [tuple(as_text(r[c], rng) if c in stamps else r[c] for c in columns) for r in rows]
    df = spark.createDataFrame(data, ddl)
    for c in stamps:
        df = df.withColumn(c, sf.to_timestamp(sf.col(c)))
    return df


# Berlin: the long (CI) run only; a plain pytest runs every pruning mode once, in UTC.
@pytest.fixture(params=["UTC", pytest.param("Europe/Berlin", marks=pytest.mark.slow)])
def session_time_zone(spark: SparkSession, request: pytest.FixtureRequest) -> Iterator[str]:
    """Results must not depend on the session time zone (Berlin changes to summer time at T0)."""
    before = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", request.param)
    yield str(request.param)
    spark.conf.set("spark.sql.session.timeZone", before or "UTC")


@pytest.mark.parametrize("split", [False, True], ids=["whole-keys", "hot-keys-split-by-time"])
@pytest.mark.parametrize(
    ("seed", "key_pruning"),
    [
        (1, "entity-row-bounds"),
        # More seeds of a pruning mode already covered: the long (CI) run only.
        pytest.param(2, "entity-row-bounds", marks=pytest.mark.slow),
        pytest.param(3, "entity-row-bounds", marks=pytest.mark.slow),
        (4, "bloom-filter"),
        pytest.param(5, "bloom-filter", marks=pytest.mark.slow),
        (6, "key-ranges"),
        (7, "time-only"),
    ],
)
def test_agrees_with_oracle_on_random_data(
    spark: SparkSession,
    session_time_zone: str,
    seed: int,
    key_pruning: str,
    split: bool,
) -> None:
    # given random tables and entity rows with ties, nulls, duplicates, sub-second offsets
    # (and, split, the heaviest keys of each key set cut into time buckets), feature rows
    # pruned by key as key_pruning says
    tuning = key_pruning_tuning(key_pruning, SPLIT_HOT_KEYS if split else JoinTuning())
    rng = random.Random(seed)
    tables = random_tables(rng)
    entities = random_entities(rng)
    entity_columns = {
        "row_id": "int",
        "driver": "bigint",
        "customer": "string",
        "ts": "timestamp",
        "note": "string",
    }
    inputs = [
        FeatureTableInput(
            t.name,
            t.keys,
            t.features,
            t.max_age,
            to_spark(
                spark,
                t.rows,
                {
                    **{k: KEY_DDL[k] for k in t.keys},
                    **{f: FEATURE_DDL[f] for f in t.features},
                    "event_timestamp": "timestamp",
                    "created_timestamp": "timestamp",
                },
                rng,
            ).repartition(3),
        )
        for t in tables
    ]
    # when
    result = point_in_time_join(
        to_spark(spark, entities, entity_columns, rng),
        inputs,
        entity_timestamp_column="ts",
        tuning=tuning,
    )
    # then it matches the oracle row for row, timestamps compared as microseconds
    seen: set[str] = set()
    expected_rows = oracle(entities, tables, "ts", seen)
    feature_columns = [f"{t.name}__{f}" for t in tables for f in t.features]
    assert result.columns == [*entity_columns, *feature_columns]
    plan = executed_plan(result)
    assert ("_pit_time_bucket" in plan) == split
    # (a key set whose entity rows are not all bounds goes on to a bloom filter)
    bounds, bloom = "LeftSemi" in plan, "might_contain" in plan
    assert {
        "entity-row-bounds": bounds,
        "bloom-filter": bloom and not bounds,
        "key-ranges": bounds and not bloom,
        "time-only": not bounds and not bloom,
    }[key_pruning], plan
    for row in expected_rows:
        row["ts"] = None if row["ts"] is None else (row["ts"] - T0) // US
    actual = result.withColumn(
        "ts", sf.unix_micros("ts") - sf.lit((T0 - datetime(1970, 1, 1, tzinfo=UTC)) // US)
    )
    expected = spark.createDataFrame(
        [tuple(r[c] for c in actual.columns) for r in expected_rows], actual.schema
    )
    assert_same_rows(actual, expected)
    # and the random data did exercise the edge cases
    assert seen == {
        "event tie",
        "event and created tie",
        "exactly max_age old",
        "null in winner",
        "sub-grid timestamp",
    }
    assert any(r["driver__trips"] is None for r in expected_rows)
