"""Names of the helper columns the join adds; entity and feature names may not start so."""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from feast_spark.spark.identifiers import quote as _quote

if TYPE_CHECKING:
    from pyspark.sql import Column

RESERVED_PREFIX = "_pit_"
TS = "_pit_ts"
# Orders rows of equal timestamp: a feature row's created time in µs (a null one as the oldest),
# then the entity rows. One long instead of a flag and a timestamp keeps shuffled rows narrow.
ORDER = "_pit_order"
ENTITY_ORDER = 2**63 - 1  # above every created time (year 9999 is below 2**58 µs)
NULL_CREATED_ORDER = -(2**63)
ENTITY_ROW = "_pit_entity_row"
FEATURES = "_pit_features_"  # + table index within a key group
FEATURE_TS = "_pit_feature_ts_"  # + table index: the carried feature row's event time
KEY_LOW = "_pit_key_low"
KEY_HIGH = "_pit_key_high"
SALT = "_pit_time_bucket"  # splits a hot key's window by time; -1 for other keys
BOUND_KEY = "_pit_key_"  # + position: an entity key in the broadcast bounds
LATEST_BUCKET = "_pit_latest_bucket"  # a hot key's time bucket, with ...
LATEST = "_pit_latest"  # ... the latest event time of its feature rows in it
BLOOM_BUCKET = "_pit_bloom_bucket"  # a time bucket an entity row wants (bloom pruning)
SPARK_TIMESTAMP_SPAN = timedelta(days=366 * 10_000)


def broadcast_keys(keys: Sequence[str]) -> list[Column]:
    """The key columns renamed ``_pit_key_<n>`` for a broadcast side, so names never clash."""
    from pyspark.sql import functions as sf

    return [sf.col(_quote(k)).alias(f"{BOUND_KEY}{n}") for n, k in enumerate(keys)]


def same_keys(keys: Sequence[str]) -> Column:
    """A row's keys equal the broadcast side's (:func:`broadcast_keys`), in the same order."""
    from pyspark.sql import functions as sf

    columns = [sf.col(_quote(k)) == sf.col(f"{BOUND_KEY}{n}") for n, k in enumerate(keys)]
    return functools.reduce(operator.and_, columns)
