"""Feature rows that cannot match are dropped before the shuffle: by time, then by key and time.

By time: outside the entity rows' range widened by ``max_age`` (literal bounds, which Delta skips
files by). By key and time together, in the first of these ways that applies:

* where each key has few entity rows (at most :attr:`JoinTuning.point_pruning_max_rows_per_key`,
  hot keys aside) and there are at most :attr:`JoinTuning.key_pruning_max_keys` of them, the
  entity rows themselves are broadcast, with no aggregate before the scan, and a feature row is
  kept only within ``[ts - max_age, ts]`` of some entity row of its key (exact);
* otherwise a bloom filter of the (key, time bucket) pairs the entity rows want, buckets a
  fraction of ``max_age`` (Spark's own filter, a few MiB for millions of entity rows, built by a
  subquery); a feature row is kept when its own pair may be in it. Where a key's entity rows
  want nearly all of its time range anyway, the filter holds keys alone;
* where the session has no bloom filter, each key's earliest and latest entity timestamp are
  broadcast, and a feature row is kept only within ``[earliest - max_age, latest]`` of its key.

A kept row that no entity row wants only costs the window a row: the window still decides.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from feast_spark.columns import CREATED_TIMESTAMP, EVENT_TIMESTAMP
from feast_spark.join_tuning import JoinTuning
from feast_spark.spark.identifiers import quote as _quote
from feast_spark.spark.point_in_time import columns as cols
from feast_spark.spark.point_in_time.columns import broadcast_keys, same_keys
from feast_spark.spark.point_in_time.inputs import FeatureTableInput, max_age_micros
from feast_spark.spark.point_in_time.skew import TimeSplit
from feast_spark.spark.point_in_time.summary import EntitySummary

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from feast_spark.spark.bloom_filter import SparkBloomFilters


def prune_by_time(table: FeatureTableInput, low_us: int | None, high_us: int | None) -> DataFrame:
    """The table's rows that can be a candidate for some entity row, and only needed columns."""
    from pyspark.sql import functions as sf

    rows = table.rows
    keep: Column = sf.col(EVENT_TIMESTAMP).isNotNull()
    for key in table.entity_columns:
        keep = keep & sf.col(_quote(key)).isNotNull()
    if high_us is None or low_us is None:
        keep = sf.lit(False)  # no entity row with a timestamp: nothing can match
    else:
        # Literal bounds (constant-folded) so Delta/parquet can skip files on statistics.
        keep = keep & (sf.col(EVENT_TIMESTAMP) <= sf.timestamp_micros(sf.lit(high_us)))
        max_age_us = max_age_micros(table)
        if max_age_us is not None:
            low = low_us - max_age_us
            keep = keep & (sf.col(EVENT_TIMESTAMP) >= sf.timestamp_micros(sf.lit(low)))
    columns = [*table.entity_columns, *table.feature_columns, EVENT_TIMESTAMP, CREATED_TIMESTAMP]
    return rows.filter(keep).select(*[sf.col(_quote(c)) for c in columns])


def key_pruning(
    entity_rows: DataFrame,
    ts_column: str,
    keys: Sequence[str],
    summary: EntitySummary,
    split: TimeSplit | None,
    tuning: JoinTuning,
) -> Callable[[DataFrame, int | None], DataFrame] | None:
    """How a table's feature rows that no entity row of their key can match are dropped.

    The returned function takes the rows and the table's ``max_age`` in µs. In order of
    preference: each entity row as a bound (:func:`entity_row_bounds`, exact); a bloom filter
    of (key, time bucket) (:class:`BloomPruning`, for any number of rows per key and up to
    :meth:`SparkBloomFilters.capacity` items); each key's time range (:func:`key_ranges`,
    where the filter is out of reach). ``None``: too many keys for any; the rows are pruned by
    time only.
    """
    bounds = entity_row_bounds(entity_rows, ts_column, keys, summary, split, tuning)
    if bounds is None:
        bloom = BloomPruning.of(entity_rows, ts_column, keys, summary, tuning)
        if bloom is not None:
            return bloom.prune
        bounds = key_ranges(entity_rows, ts_column, keys, summary, tuning)
    if bounds is None:
        return None
    return functools.partial(within_bounds, bounds=bounds, keys=keys)


def present_rows(entity_rows: DataFrame, ts_column: str, keys: Sequence[str]) -> DataFrame:
    """The entity rows that can match: no null key, no null timestamp."""
    from pyspark.sql import functions as sf

    present = sf.col(_quote(ts_column)).isNotNull()
    for key in keys:
        present = present & sf.col(_quote(key)).isNotNull()
    return entity_rows.where(present)


def per_key_range(rows: DataFrame, ts_column: str, keys: Sequence[str]) -> DataFrame:
    """Each key's earliest and latest entity timestamp (µs): ``_pit_key_low``, ``_pit_key_high``."""
    from pyspark.sql import functions as sf

    ts = sf.unix_micros(sf.col(_quote(ts_column)))
    return rows.groupBy(*broadcast_keys(keys)).agg(
        sf.min(ts).alias(cols.KEY_LOW), sf.max(ts).alias(cols.KEY_HIGH)
    )


def entity_row_bounds(
    entity_rows: DataFrame,
    ts_column: str,
    keys: Sequence[str],
    summary: EntitySummary,
    split: TimeSplit | None,
    tuning: JoinTuning,
) -> DataFrame | None:
    """Each entity row as a time bound of its key, to broadcast; ``None``: not applicable.

    Applies where no key (hot keys aside) holds more than
    :attr:`JoinTuning.point_pruning_max_rows_per_key` entity rows and there are at most
    :attr:`JoinTuning.key_pruning_max_keys` of them. The rows are read as they are, with no
    aggregate. Columns: ``_pit_key_<n>`` (the keys, renamed) and ``_pit_key_low`` (µs), one
    instant per bound
    (a narrower broadcast than two). With
    a split, hot keys are aggregated to their range (a feature row walks its key's bounds), and
    every bound has ``_pit_key_high`` too.
    """
    from pyspark.sql import functions as sf

    heaviest = summary.heaviest_rows.get(tuple(sorted(keys)))
    if (
        heaviest is None
        or heaviest > tuning.point_pruning_max_rows_per_key
        or not 0 < summary.rows <= tuning.key_pruning_max_keys
    ):
        return None
    present = present_rows(entity_rows, ts_column, keys)
    ts = sf.unix_micros(sf.col(_quote(ts_column)))
    renamed = broadcast_keys(keys)
    if not split:
        return sf.broadcast(present.select(*renamed, ts.alias(cols.KEY_LOW)))
    hot = split.is_hot()
    points = present.where(~hot).select(*renamed, ts.alias(cols.KEY_LOW), ts.alias(cols.KEY_HIGH))
    return sf.broadcast(points.unionByName(per_key_range(present.where(hot), ts_column, keys)))


def key_ranges(
    entity_rows: DataFrame,
    ts_column: str,
    keys: Sequence[str],
    summary: EntitySummary,
    tuning: JoinTuning,
) -> DataFrame | None:
    """Each key's entity time range, to broadcast; ``None``: too many keys to broadcast.

    At most :attr:`JoinTuning.key_pruning_max_keys` keys. Columns as in
    :func:`entity_row_bounds`, with both times.
    """
    from pyspark.sql import functions as sf

    distinct_keys = summary.distinct_keys.get(tuple(sorted(keys)))
    if distinct_keys is None or distinct_keys > tuning.key_pruning_max_keys:
        return None
    present = present_rows(entity_rows, ts_column, keys)
    return sf.broadcast(per_key_range(present, ts_column, keys))


@dataclass(frozen=True)
class BloomPruning:
    """Feature rows dropped by a bloom filter of the (key, time bucket) pairs entity rows want.

    An entity row at ``ts`` wants its key's feature rows in ``[ts - max_age, ts]``; the filter
    holds its key with every time bucket that span meets, and a feature row is kept when its key
    with its own bucket may be in the filter. Buckets are ``max_age`` divided by the finest of
    :attr:`JoinTuning.bloom_time_splits` whose pairs fit the filter; without ``max_age``, or
    when none fits, the filter holds keys alone. A kept row at most one bucket past its entity
    row, or a false positive (a few percent at capacity), only costs the window a row: the window
    still decides. Unlike a broadcast of bounds, the filter stays a few MiB for millions of entity
    rows. Tables of one key set with the same ``max_age`` build the same subquery, which Spark
    runs once (``ReusedSubquery`` in the plan).
    """

    entity_rows: DataFrame  # with a key and a timestamp
    ts_column: str
    keys: tuple[str, ...]
    summary: EntitySummary
    distinct_keys: int
    filters: SparkBloomFilters
    tuning: JoinTuning

    @classmethod
    def of(
        cls,
        entity_rows: DataFrame,
        ts_column: str,
        keys: Sequence[str],
        summary: EntitySummary,
        tuning: JoinTuning,
    ) -> BloomPruning | None:
        """The pruning, or ``None`` where the session has no bloom filter or keys overflow it."""
        from feast_spark.spark.bloom_filter import SparkBloomFilters

        distinct_keys = summary.distinct_keys.get(tuple(sorted(keys)))
        filters = SparkBloomFilters.of(entity_rows.sparkSession) if tuning.bloom_filter else None
        if distinct_keys is None or filters is None or distinct_keys > filters.capacity():
            return None
        present = present_rows(entity_rows, ts_column, keys)
        return cls(present, ts_column, tuple(keys), summary, distinct_keys, filters, tuning)

    def prune(self, rows: DataFrame, max_age_us: int | None) -> DataFrame:
        """``rows`` without those no entity row of their key wants (a superset of the wanted)."""
        from pyspark.sql import functions as sf

        capacity = self.filters.capacity()
        width_us, items = bloom_buckets(
            self.summary, self.distinct_keys, max_age_us, capacity, self.tuning
        )
        keys = [sf.col(_quote(k)) for k in self.keys]
        ts = sf.unix_micros(sf.col(_quote(self.ts_column)))
        if width_us is None or max_age_us is None:
            wanted = self.entity_rows.select(sf.xxhash64(*keys))
            probe = sf.xxhash64(*keys)
        else:
            width = sf.lit(width_us)
            buckets = sf.sequence(
                sf.call_function("div", ts - sf.lit(max_age_us), width),
                sf.call_function("div", ts, width),
            )
            pairs = self.entity_rows.select(*keys, sf.explode(buckets).alias(cols.BLOOM_BUCKET))
            wanted = pairs.select(sf.xxhash64(*keys, sf.col(cols.BLOOM_BUCKET)))
            feature_ts = sf.unix_micros(sf.col(EVENT_TIMESTAMP))
            probe = sf.xxhash64(*keys, sf.call_function("div", feature_ts, width))
        return rows.where(self.filters.might_contain(wanted, items, probe))


def bloom_buckets(
    summary: EntitySummary,
    distinct_keys: int,
    max_age_us: int | None,
    capacity: int,
    tuning: JoinTuning,
) -> tuple[int | None, int]:
    """The bucket width (µs) of the finest split whose pairs fit, and the pairs to expect.

    Pairs are counted from above: ``splits + 1`` per entity row, and no more per key than its
    entity time range (plus ``max_age``) has buckets. ``(None, distinct_keys)``: keys alone, also
    where buckets would prune less than :attr:`JoinTuning.bloom_buckets_min_pruned_share` of a
    key's rows, were its entity rows spread evenly at random over the entity time range.
    """
    if max_age_us is None or summary.low_us is None or summary.high_us is None:
        return None, distinct_keys
    span_us = summary.high_us - summary.low_us + max_age_us
    rows_per_key = summary.rows / max(distinct_keys, 1)
    for splits in tuning.bloom_time_splits:
        width_us = -(-max_age_us // splits)
        items = distinct_keys * (span_us // width_us + 2)
        if summary.rows:
            items = min(items, summary.rows * (splits + 1))
        if items <= capacity:
            # Each entity row wants about max_age + width of the span: the share no row wants.
            unwanted = math.exp(-rows_per_key * (max_age_us + width_us) / span_us)
            if unwanted < tuning.bloom_buckets_min_pruned_share:
                break
            return width_us, items
    return None, distinct_keys


def within_bounds(
    rows: DataFrame, max_age_us: int | None, *, bounds: DataFrame, keys: Sequence[str]
) -> DataFrame:
    """The feature rows some entity row of their own key can match.

    A key's bound ``[low, high]`` (from :func:`entity_row_bounds` or :func:`key_ranges`;
    ``high`` is ``low`` where it has no ``_pit_key_high``) wants the feature rows in
    ``[low - max_age, high]``: rows of other keys, or outside every bound of their key, cannot
    win.
    """
    from pyspark.sql import functions as sf

    ts = sf.unix_micros(sf.col(EVENT_TIMESTAMP))
    wanted = ts <= sf.col(cols.KEY_HIGH if cols.KEY_HIGH in bounds.columns else cols.KEY_LOW)
    if max_age_us is not None:
        wanted = wanted & (ts >= sf.col(cols.KEY_LOW) - sf.lit(max_age_us))
    return rows.join(bounds, same_keys(keys) & wanted, "left_semi")
