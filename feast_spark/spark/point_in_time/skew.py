"""Hot keys: a key holding a large share of the entity rows is split by time across tasks.

All rows of one key would land in one window partition, sorted and scanned by a single task; a key
with 30% of the rows makes that task 30% of the work, a straggler on any cluster. So the entity
summary also finds the heaviest keys (an ``approx_top_k`` sketch), and a key with at least
:attr:`JoinTuning.hot_key_min_share` of the entity rows (and :attr:`JoinTuning.hot_key_min_rows`)
is split by time. Its window is partitioned by ``(key, bucket)``, the buckets cutting the entity
time range into equal spans. An entity row's latest candidate may lie in an earlier bucket, so the
feature rows at each bucket's latest event time are also copied into every later bucket: the
latest of those copies is the latest row before the bucket starts (ties included), and it sorts
before all of the bucket's own rows. The latest times come from an aggregate of the hot keys'
timestamps (a narrow second read of the feature rows, two columns), broadcast. A hot key's rows
arrive in random time order, and the window's sort would compare them pairwise from all over
memory; so where the key is one integral column, a hot key's rows are first radix-sorted by time,
and the window's sort finds them nearly in order. Other keys are unaffected. A key hot only in the
feature rows (few entity rows) is not detected; per-key pruning removes its rows outside its
entity rows' range.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from feast_spark.columns import EVENT_TIMESTAMP
from feast_spark.join_tuning import JoinTuning
from feast_spark.spark.identifiers import quote as _quote
from feast_spark.spark.point_in_time import columns as cols
from feast_spark.spark.point_in_time.columns import broadcast_keys, same_keys
from feast_spark.spark.point_in_time.inputs import FeatureTableInput, max_age_micros
from feast_spark.spark.point_in_time.summary import EntitySummary

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

_PRESORT_TIME_SLOTS = 1 << 40  # of a hot key's time range, for TimeSplit.presort_order


@dataclass(frozen=True)
class TimeSplit:
    """How the rows of hot keys are cut by time so that several tasks share them.

    A hot key's window is partitioned by ``(key, bucket)``, the bucket being the entity time
    range cut into ``buckets`` equal spans (feature rows before the range go to the first).
    An entity row's candidates may lie in earlier buckets, so each bucket also receives, from
    every earlier bucket and table, that bucket's feature rows at its latest event time
    (:meth:`spread`). Other keys keep bucket -1.
    """

    keys: tuple[str, ...]
    hashes: tuple[int, ...]
    low_us: int
    width_us: int
    buckets: int
    reach_us: int = 0

    @classmethod
    def of(
        cls,
        entity_rows: DataFrame,
        group: Sequence[FeatureTableInput],
        summary: EntitySummary,
        tuning: JoinTuning,
    ) -> TimeSplit | None:
        """The split for this key set, or ``None`` when it has no hot key (or no time range)."""
        keys = tuple(sorted(group[0].entity_columns))
        hashes = summary.hot_keys.get(keys, ())
        if not hashes or summary.low_us is None or summary.high_us is None:
            return None
        buckets = tuning.hot_key_time_buckets or min(64, max(2, shuffle_partitions(entity_rows)))
        width_us = (summary.high_us - summary.low_us) // buckets + 1
        # How far before the entity rows feature rows can matter: for the presort's time scale.
        reach_us = max((max_age_micros(table) or 0 for table in group), default=0)
        return cls(keys, hashes, summary.low_us, width_us, buckets, reach_us)

    def is_hot(self) -> Column:
        """True on the rows of a hot key (hash collisions only split one more key)."""
        from pyspark.sql import functions as sf

        return sf.xxhash64(*[sf.col(_quote(k)) for k in self.keys]).isin(list(self.hashes))

    def bucket(self, ts: Column) -> Column:
        """The bucket of a row of a hot key at ``ts``; -1 for other keys."""
        from pyspark.sql import functions as sf

        offset = sf.unix_micros(ts) - sf.lit(self.low_us)
        index = sf.call_function("div", offset, sf.lit(self.width_us))
        clipped = sf.least(sf.greatest(index, sf.lit(0)), sf.lit(self.buckets - 1))
        return sf.when(self.is_hot(), clipped).otherwise(sf.lit(-1)).cast("int")

    def presort_order(self, key: Column) -> Column:
        """A long to radix-sort the rows of one integral key column by, before the window.

        Other keys' rows sort by key, as without a split. A hot key's rows arrive in random time
        order; sorted by key alone, they would leave the window's sort to order hundreds of
        thousands of rows of one key by time, each comparison reading two rows far apart in
        memory. So they sort first, by time, and the window's sort finds them nearly in order.
        """
        from pyspark.sql import functions as sf

        origin = self.low_us - self.reach_us
        step = (self.low_us + self.width_us * self.buckets - origin) // _PRESORT_TIME_SLOTS + 1
        slot = sf.call_function(
            "div", sf.unix_micros(sf.col(cols.TS)) - sf.lit(origin), sf.lit(step)
        )
        slot = sf.coalesce(slot, sf.lit(0))  # null timestamps match nothing; any slot will do
        slot = sf.least(sf.greatest(slot, sf.lit(0)), sf.lit(_PRESORT_TIME_SLOTS - 1))
        hot_first = sf.lit(-(2**63)) + slot
        return sf.when(sf.col(cols.SALT) >= 0, hot_first).otherwise(key.cast("long"))

    def spread(self, rows: DataFrame, all_rows: DataFrame) -> DataFrame:
        """``rows`` with ``_pit_time_bucket``; rows at a bucket's latest time go to later ones too.

        Each row is in its own bucket. An entity row's latest candidate outside its own bucket
        is the last row (by the window's order) of the latest earlier bucket with rows, which is
        among that bucket's rows at its latest event time: among the copies. The latest times
        are an aggregate of two columns (key and timestamp) of ``all_rows``, the rows pruned by
        time only, broadcast. Where key bounds pruned a bucket's latest rows from ``rows``, no
        entity row of that key can match any row of that bucket (it is after the key's last
        entity row or before its first one's ``max_age``), so nothing is lost.
        """
        from pyspark.sql import functions as sf

        ts = sf.col(EVENT_TIMESTAMP)
        latest = (
            all_rows.where(self.is_hot())
            .groupBy(
                *broadcast_keys(self.keys),
                self.bucket(ts).alias(cols.LATEST_BUCKET),
            )
            .agg(sf.max(ts).alias(cols.LATEST))
        )
        own = rows.withColumn(cols.SALT, self.bucket(ts))
        same_bucket = same_keys(self.keys) & (sf.col(cols.SALT) == sf.col(cols.LATEST_BUCKET))
        buckets = sf.when(
            ts == sf.col(cols.LATEST), sf.sequence(sf.col(cols.SALT), sf.lit(self.buckets - 1))
        ).otherwise(sf.array(sf.col(cols.SALT)))
        return own.join(sf.broadcast(latest), same_bucket, "left").select(
            *[sf.col(_quote(c)) for c in rows.columns], sf.explode(buckets).alias(cols.SALT)
        )


def shuffle_partitions(frame: DataFrame) -> int:
    """``spark.sql.shuffle.partitions``; 8 where it is not a number (Databricks' ``auto``)."""
    try:
        return int(frame.sparkSession.conf.get("spark.sql.shuffle.partitions") or 8)
    except ValueError:
        return 8
