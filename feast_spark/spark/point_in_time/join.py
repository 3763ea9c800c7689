"""The join itself: entity and feature rows unioned, one shuffle per key set, a running window.

The running ``last(...)`` window carries the latest feature row to every entity row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from feast_spark.columns import CREATED_TIMESTAMP, EVENT_TIMESTAMP
from feast_spark.join_tuning import DEFAULT_TUNING, JoinTuning
from feast_spark.spark.identifiers import quote as _quote
from feast_spark.spark.point_in_time import columns as cols
from feast_spark.spark.point_in_time.checks import check_inputs
from feast_spark.spark.point_in_time.inputs import FeatureTableInput, max_age_micros
from feast_spark.spark.point_in_time.pruning import key_pruning, prune_by_time
from feast_spark.spark.point_in_time.skew import TimeSplit
from feast_spark.spark.point_in_time.summary import EntitySummary
from feast_spark.spark.schema import is_integral

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame
    from pyspark.sql.types import DataType


def point_in_time_join(
    entity_rows: DataFrame,
    tables: Sequence[FeatureTableInput],
    *,
    entity_timestamp_column: str = EVENT_TIMESTAMP,
    entity_summary: EntitySummary | None = None,
    tuning: JoinTuning = DEFAULT_TUNING,
) -> DataFrame:
    """Add to every entity row the feature values that were current at its timestamp.

    Rules are in the package docstring (:mod:`feast_spark.spark.point_in_time`). In short: per
    table, the row with the same key whose ``event_timestamp`` is the latest at or before the
    entity timestamp (and not older than ``max_age``), ties broken by ``created_timestamp`` then
    by the feature values; its values are
    returned as stored, nulls included.

    Feature rows that cannot match are dropped before the shuffle: those outside the entity
    rows' time range (minus ``max_age``), and those that no entity row of their own key can
    match (a broadcast join with the entity rows' timestamps, a bloom filter of keys and time
    buckets, or a broadcast of each key's earliest and latest one; :mod:`.pruning`).
    A key holding a large share of the entity rows is split by time across tasks
    (:mod:`.skew`), at the cost of a second read of the keys and timestamps of the feature rows.
    For all this it runs one aggregate over ``entity_rows`` right away (:class:`EntitySummary`),
    unless ``entity_summary`` is given; cache ``entity_rows`` if it is expensive. The rest is
    lazy: one shuffle per distinct set of entity columns, none for the entity rows alone.

    Args:
        entity_rows: Key columns named as the entities, the timestamp column and any other
            columns, which pass through unchanged.
        tables: The feature tables to join; names must be unique.
        entity_timestamp_column: The ``TimestampType`` column of ``entity_rows`` to join at.
        entity_summary: The entity rows' summary, when the caller computed it already (add
            :meth:`EntitySummary.aggregates` to an aggregate it runs anyway); saves a pass.
        tuning: When to prune by key and how to split hot keys (:class:`JoinTuning`).

    Returns:
        ``entity_rows`` with every row exactly once, plus ``<table>__<feature>`` columns in the
        order of ``tables`` and their ``feature_columns``.

    Raises:
        TypeError: An argument is not a DataFrame / FeatureTableInput.
        SourceSchemaError: A column is missing, has the wrong type or collides with another.
        DefinitionError: A table name is repeated, a table has no entity or feature columns, or
            ``max_age`` is not positive.

    Example:
        ``driver`` has ``max_age`` = 1 hour; ``customer`` has none::

            entity_rows
            +------+--------+-------------------+
            |driver|customer|    event_timestamp|
            +------+--------+-------------------+
            |     1|       a|2021-01-01 10:00:00|
            |     1|       a|2021-01-01 10:00:00|
            |     1|       b|2021-01-01 12:00:00|
            |     2|       a|2021-01-01 10:00:00|
            +------+--------+-------------------+

            driver rows
            +------+----+-----------------------+-------------------+
            |driver|rate|        event_timestamp|  created_timestamp|
            +------+----+-----------------------+-------------------+
            |     1| 0.5|2021-01-01 09:00:00    |2021-01-01 09:00:00|
            |     1| 0.7|2021-01-01 09:00:00    |2021-01-01 09:30:00|
            |     1|null|2021-01-01 09:59:59    |2021-01-01 10:00:00|
            |     1| 0.9|2021-01-01 10:00:00.400|2021-01-01 10:00:01|
            +------+----+-----------------------+-------------------+

            customer rows
            +--------+------+-------------------+-------------------+
            |customer|orders|    event_timestamp|  created_timestamp|
            +--------+------+-------------------+-------------------+
            |       a|     3|2020-06-01 00:00:00|2020-06-01 00:00:00|
            +--------+------+-------------------+-------------------+

            point_in_time_join(entity_rows, [driver, customer])
            +------+--------+-------------------+------------+----------------+
            |driver|customer|    event_timestamp|driver__rate|customer__orders|
            +------+--------+-------------------+------------+----------------+
            |     1|       a|2021-01-01 10:00:00|        null|               3| (1)
            |     1|       a|2021-01-01 10:00:00|        null|               3| (2)
            |     1|       b|2021-01-01 12:00:00|        null|            null| (3)
            |     2|       a|2021-01-01 10:00:00|        null|               3| (4)
            +------+--------+-------------------+------------+----------------+

        (1) The latest driver row at or before 10:00 is the one at 09:59:59: its null is kept.
        (2) Duplicate entity rows stay duplicates. (3) The latest driver row at or before 12:00,
        at 10:00:00.4, is older than 1 hour; no customer row has key 'b'. (4) No driver row for 2.
        Without the null row at 09:59:59, rows at 10:00 would get 0.7: same event time as 0.5 but
        created later. The row at 10:00:00.4 is 400 ms after the entity timestamp and never
        matches it.

    """
    check_inputs(entity_rows, tables, entity_timestamp_column)
    if not tables:
        return entity_rows

    from pyspark.sql import functions as sf

    groups = group_by_entity_columns(tables)
    key_sets = [group[0].entity_columns for group in groups]
    summary = entity_summary or EntitySummary.of(
        entity_rows, entity_timestamp_column, key_sets, tuning
    )
    output_columns = list(entity_rows.columns)
    for table in tables:
        output_columns += [table.output_column(f) for f in table.feature_columns]

    result = entity_rows
    for group in groups:
        in_time = [prune_by_time(table, summary.low_us, summary.high_us) for table in group]
        pruned = in_time
        keys = list(group[0].entity_columns)
        split = TimeSplit.of(entity_rows, group, summary, tuning)
        by_key = key_pruning(entity_rows, entity_timestamp_column, keys, summary, split, tuning)
        if by_key is not None:
            pruned = [
                by_key(rows, max_age_micros(table))
                for table, rows in zip(group, in_time, strict=True)
            ]
        if split:
            pruned = [split.spread(*pair) for pair in zip(pruned, in_time, strict=True)]
        result = join_group(result, entity_timestamp_column, group, pruned, split)
    return result.select(*[sf.col(_quote(c)) for c in output_columns])


def join_group(
    entity_rows: DataFrame,
    ts_column: str,
    group: Sequence[FeatureTableInput],
    pruned: Sequence[DataFrame],
    split: TimeSplit | None = None,
) -> DataFrame:
    """Join the tables of one key set to the entity rows with a single shuffle.

    With ``split``, hot keys are partitioned by time bucket too: the entity rows get theirs
    here, the feature rows have a ``_pit_time_bucket`` column already (:meth:`TimeSplit.spread`).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as sf

    keys = group[0].entity_columns
    passthrough = [c for c in entity_rows.columns if c not in keys and c != ts_column]
    feature_structs = [features_struct(t) for t in group]
    struct_types = [
        rows.select(s).schema[0].dataType for s, rows in zip(feature_structs, pruned, strict=True)
    ]

    def null_of(data_type: DataType) -> Column:
        return sf.lit(None).cast(data_type)

    entity_row_struct = (
        sf.struct(*[sf.col(_quote(c)) for c in passthrough]) if passthrough else None
    )
    entity_side = entity_rows.select(
        *[sf.col(_quote(k)) for k in keys],
        sf.col(_quote(ts_column)).alias(cols.TS),
        sf.lit(cols.ENTITY_ORDER).alias(cols.ORDER),
        *([entity_row_struct.alias(cols.ENTITY_ROW)] if entity_row_struct is not None else []),
        *[null_of(t).alias(f"{cols.FEATURES}{i}") for i, t in enumerate(struct_types)],
        *([split.bucket(sf.col(_quote(ts_column))).alias(cols.SALT)] if split else []),
    )
    unioned = entity_side
    entity_row_type = entity_side.schema[cols.ENTITY_ROW].dataType if passthrough else None

    ts = sf.col(EVENT_TIMESTAMP)
    for i, rows in enumerate(pruned):
        feature_side = rows.select(
            *[sf.col(_quote(k)) for k in keys],
            ts.alias(cols.TS),
            order_of_feature_row().alias(cols.ORDER),
            *([null_of(entity_row_type).alias(cols.ENTITY_ROW)] if entity_row_type else []),
            *[
                (feature_structs[i] if j == i else null_of(t)).alias(f"{cols.FEATURES}{j}")
                for j, t in enumerate(struct_types)
            ],
            *([sf.col(cols.SALT)] if split else []),
        )
        unioned = unioned.unionByName(feature_side)

    # Group the rows by key first: a sort on the key alone is a radix sort on its prefix. The
    # window's own sort by (key, time, ...) then finds each key's rows side by side in memory;
    # comparing two rows of one key, which the key prefix cannot decide, costs a cache hit
    # instead of two random memory reads. The shuffle is the one the window needs anyway.
    key_columns = [sf.col(_quote(k)) for k in keys]
    partition_columns = [*key_columns, *([sf.col(cols.SALT)] if split else [])]
    unioned = unioned.repartition(*partition_columns)
    if split and len(keys) == 1 and is_integral(group[0].rows.schema[keys[0]].dataType):
        unioned = unioned.sortWithinPartitions(split.presort_order(key_columns[0]))
    else:
        unioned = unioned.sortWithinPartitions(*key_columns)

    # At equal timestamps feature rows sort before entity rows (candidates are "at or before");
    # among feature rows the last one is the winner: latest created, then greatest values.
    # Entity rows carry null structs, so they never hide a feature row from last(ignorenulls).
    # The winner's event time is carried beside its struct (for max_age) instead of inside it:
    # computed after the shuffle, it costs no shuffled bytes.
    window = (
        Window.partitionBy(*partition_columns)
        .orderBy(
            sf.col(cols.TS).asc_nulls_first(),
            sf.col(cols.ORDER).asc(),
            *[sf.col(f"{cols.FEATURES}{i}").asc_nulls_first() for i in range(len(group))],
        )
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    carried_time: list[Column] = []
    for i, table in enumerate(group):
        if max_age_micros(table) is not None:
            of_table = sf.when(sf.col(f"{cols.FEATURES}{i}").isNotNull(), sf.col(cols.TS))
            carried_time.append(
                sf.last(of_table, ignorenulls=True).over(window).alias(f"{cols.FEATURE_TS}{i}")
            )
    joined = unioned.select(
        *[sf.col(_quote(k)) for k in keys],
        sf.col(cols.TS),
        sf.col(cols.ORDER),
        *([sf.col(cols.ENTITY_ROW)] if passthrough else []),
        *[
            sf.last(sf.col(f"{cols.FEATURES}{i}"), ignorenulls=True)
            .over(window)
            .alias(f"{cols.FEATURES}{i}")
            for i in range(len(group))
        ],
        *carried_time,
    ).filter(sf.col(cols.ORDER) == sf.lit(cols.ENTITY_ORDER))

    def entity_column(name: str) -> Column:
        if name == ts_column:
            return sf.col(cols.TS).alias(name)
        if name in keys:
            return sf.col(_quote(name))
        return sf.col(cols.ENTITY_ROW).getField(name).alias(name)

    feature_columns: list[Column] = []
    for i, table in enumerate(group):
        chosen = sf.col(f"{cols.FEATURES}{i}")
        max_age_us = max_age_micros(table)
        if max_age_us is not None:
            oldest = sf.unix_micros(sf.col(cols.TS)) - sf.lit(max_age_us)
            in_range = sf.unix_micros(sf.col(f"{cols.FEATURE_TS}{i}")) >= oldest
            chosen = sf.when(in_range, chosen)
        feature_columns += [
            chosen.getField(f"f{n}").alias(table.output_column(feature))
            for n, feature in enumerate(table.feature_columns)
        ]
    return joined.select(*[entity_column(c) for c in entity_rows.columns], *feature_columns)


def order_of_feature_row() -> Column:
    """``_pit_order`` of a feature row: its created time in µs, a null one as the oldest."""
    from pyspark.sql import functions as sf

    return sf.coalesce(sf.unix_micros(sf.col(CREATED_TIMESTAMP)), sf.lit(cols.NULL_CREATED_ORDER))


def features_struct(table: FeatureTableInput) -> Column:
    """One feature row's values as a struct, under positional names (``f0``, ``f1``...).

    Ordering this struct orders by the feature values in declared order.
    """
    from pyspark.sql import functions as sf

    return sf.struct(
        *[sf.col(_quote(c)).alias(f"f{n}") for n, c in enumerate(table.feature_columns)],
    )


def group_by_entity_columns(
    tables: Sequence[FeatureTableInput],
) -> list[list[FeatureTableInput]]:
    """Tables sharing a key set, so that they share one shuffle; in first-seen order."""
    groups: dict[frozenset[str], list[FeatureTableInput]] = {}
    for table in tables:
        groups.setdefault(frozenset(table.entity_columns), []).append(table)
    return list(groups.values())
