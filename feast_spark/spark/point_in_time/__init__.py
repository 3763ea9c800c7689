"""The point-in-time join: feature values as they were known at each entity row's timestamp.

Rules (Feast 0.9-0.11 historical retrieval), for each entity row and each requested feature table:

1. Candidates are the table's rows with the same entity key whose ``event_timestamp`` is at or
   before the entity row's timestamp and, when the table has ``max_age``, at or after
   ``entity timestamp - max_age``. Both bounds are inclusive; timestamps compare as instants with
   microsecond precision.
2. The candidate with the latest ``event_timestamp`` wins, then the latest ``created_timestamp``
   (a null ``created_timestamp`` counts as the oldest). If rows are still tied, the one whose
   feature values are greatest wins, comparing the features in declared order with Spark's
   ordering (null first, i.e. smallest). The choice therefore depends only on the rows, never
   on partitioning or on the order in which Spark reads them.
3. The chosen row's values are returned as stored, nulls included: a null in the winning row is
   not replaced by an older value. No candidate gives nulls for all of that table's features.
4. Every entity row comes out exactly once (duplicates stay duplicates) with all of its columns
   unchanged, followed by ``<table>__<feature>`` for every requested feature.

A null entity key or a null entity timestamp matches nothing. Feature rows with a null key or a
null ``event_timestamp`` are never candidates.

Algorithm (no join-then-rank): per set of entity columns, the entity rows and the feature rows are
unioned into one frame and shuffled once by key. A window ordered by
``(timestamp, created_timestamp with entity rows last, feature values)`` carries the last feature
row seen so far to every entity row with ``last(..., ignorenulls=True)`` over a running frame. The
features travel as one struct so that null values inside the winning row survive ``ignorenulls``.
The ``max_age`` bound is then checked on the carried row's event timestamp: if the latest row at or
before the entity timestamp is too old, every earlier row is too. Work is linear in the number of
rows after a sort, whatever the number of feature rows per key.

Before the shuffle, feature rows that cannot match are dropped (:mod:`.pruning`), and a key
holding a large share of the entity rows is split by time across tasks (:mod:`.skew`). Tuning
is a :class:`JoinTuning` passed as an argument.

Modules: :mod:`.join` (the union and window), :mod:`.pruning`, :mod:`.skew`,
:mod:`.summary` (what the join knows of the entity rows before it starts), :mod:`.checks`
(inputs), :mod:`.inputs`, :mod:`.columns` (helper column names); the tuning is
:class:`feast_spark.join_tuning.JoinTuning`.
"""

from feast_spark.join_tuning import JoinTuning
from feast_spark.spark.point_in_time.inputs import FeatureTableInput
from feast_spark.spark.point_in_time.join import point_in_time_join
from feast_spark.spark.point_in_time.summary import EntitySummary

__all__ = ["EntitySummary", "FeatureTableInput", "JoinTuning", "point_in_time_join"]
