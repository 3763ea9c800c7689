"""What the join knows of the entity rows before it starts: one aggregate computes it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from feast_spark.join_tuning import DEFAULT_TUNING, JoinTuning
from feast_spark.spark.identifiers import quote as _quote

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, Row


@dataclass(frozen=True)
class EntitySummary:
    """What the join must know of the entity rows before it starts; one aggregate computes it.

    Attributes:
        low_us: Earliest entity timestamp in microseconds since the epoch (None: no timestamp).
        high_us: Latest entity timestamp, likewise.
        distinct_keys: Approximate number of distinct non-null keys per key set (the entity
            column names, sorted); a key set missing here is never used to prune.
        hot_keys: Per key set, the ``xxhash64`` of each key holding at least
            :attr:`JoinTuning.hot_key_min_share` and :attr:`JoinTuning.hot_key_min_rows` of the
            entity rows; such a key's rows are split by time across tasks instead of landing in one.
        rows: Number of entity rows (0: unknown).
        heaviest_rows: Per key set, the approximate entity rows of its heaviest key that is not
            hot; missing where the sketch cannot tell (every key it returned is hot).
    """

    low_us: int | None
    high_us: int | None
    distinct_keys: Mapping[tuple[str, ...], int] = field(default_factory=dict)
    hot_keys: Mapping[tuple[str, ...], tuple[int, ...]] = field(default_factory=dict)
    rows: int = 0
    heaviest_rows: Mapping[tuple[str, ...], int] = field(default_factory=dict)

    @staticmethod
    def aggregates(
        ts_column: str,
        key_sets: Iterable[Iterable[str]],
        values: Mapping[str, Column] | None = None,
        tuning: JoinTuning = DEFAULT_TUNING,
    ) -> list[Column]:
        """Aggregate columns for :meth:`from_row`, to add to an aggregate the caller runs anyway.

        ``values`` gives the expression of a column by name where it is not the column itself
        (the converted value of a raw source column, say).
        """
        from pyspark.sql import functions as sf

        def value(name: str) -> Column:
            return values[name] if values and name in values else sf.col(_quote(name))

        ts = sf.unix_micros(value(ts_column))
        columns = [
            sf.min(ts).alias("_pit_low"),
            sf.max(ts).alias("_pit_high"),
            sf.count(sf.lit(1)).alias("_pit_rows"),
        ]
        for n, keys in enumerate(key_sets_of(key_sets)):
            present = ts.isNotNull()
            for key in keys:
                present = present & value(key).isNotNull()
            # One column counts as it is; several as one hash (a struct costs more to build).
            # Hot keys are named by the hash whatever the key: the join recomputes it per row.
            hashed = sf.xxhash64(*[value(k) for k in keys])
            one = value(keys[0]) if len(keys) == 1 else hashed
            count = sf.approx_count_distinct(sf.when(present, one))
            heaviest = sf.call_function(
                "approx_top_k", sf.when(present, hashed), sf.lit(tuning.hot_keys_max)
            )
            columns += [count.alias(f"_pit_keys_{n}"), heaviest.alias(f"_pit_hot_{n}")]
        return columns

    @classmethod
    def from_row(
        cls, row: Row, key_sets: Iterable[Iterable[str]], tuning: JoinTuning = DEFAULT_TUNING
    ) -> EntitySummary:
        """The summary from the row of an aggregate that included :meth:`aggregates`."""
        sets = key_sets_of(key_sets)
        counts = {keys: int(row[f"_pit_keys_{n}"]) for n, keys in enumerate(sets)}
        hot_rows = max(tuning.hot_key_min_rows, tuning.hot_key_min_share * row["_pit_rows"])
        hot: dict[tuple[str, ...], tuple[int, ...]] = {}
        heaviest: dict[tuple[str, ...], int] = {}
        for n, keys in enumerate(sets):
            top = [t for t in row[f"_pit_hot_{n}"] or () if t["item"] is not None]
            hot[keys] = tuple(int(t["item"]) for t in top if t["count"] >= hot_rows)
            others = [int(t["count"]) for t in top if t["count"] < hot_rows]
            if others or len(top) < tuning.hot_keys_max:  # a short list holds every key
                heaviest[keys] = max(others, default=0)
        return cls(row["_pit_low"], row["_pit_high"], counts, hot, row["_pit_rows"], heaviest)

    @classmethod
    def of(
        cls,
        entity_rows: DataFrame,
        ts_column: str,
        key_sets: Iterable[Iterable[str]],
        tuning: JoinTuning = DEFAULT_TUNING,
    ) -> EntitySummary:
        """Run the aggregate over ``entity_rows`` (one Spark job)."""
        sets = key_sets_of(key_sets)
        row = entity_rows.agg(*cls.aggregates(ts_column, sets, tuning=tuning)).first()
        if row is None:  # pragma: no cover - a global aggregate always returns a row
            return cls(None, None)
        return cls.from_row(row, sets, tuning)


def key_sets_of(key_sets: Iterable[Iterable[str]]) -> list[tuple[str, ...]]:
    """Distinct key sets, each as its sorted names, in first-seen order."""
    return list(dict.fromkeys(tuple(sorted(keys)) for keys in key_sets))
