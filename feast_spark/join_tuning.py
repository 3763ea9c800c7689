"""Tuning of the point-in-time join: when it prunes by key, and when it splits a hot key by time.

Pure Python, so that a job spec can carry it; :mod:`feast_spark.spark.point_in_time` takes it as an
argument.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from feast_spark.errors import ConfigError


@dataclass(frozen=True)
class JoinTuning:
    """Knobs of :func:`~feast_spark.spark.point_in_time.point_in_time_join`; defaults suit most.

    Attributes:
        key_pruning_max_keys: Most time bounds of one key set broadcast to prune by key: its
            distinct entity keys, or its entity rows where each is a bound. The broadcast holds
            a key and one or two longs per bound, about 115 bytes each: a million bounds stay
            near a tenth of a 2 GB executor.
        point_pruning_max_rows_per_key: Most entity rows of one (not hot) key for pruning by each
            entity row rather than by key. Each feature row walks its key's entity rows in the
            broadcast join, so their number must stay small.
        hot_key_min_share: Share of the entity rows a key must hold to be split by time.
        hot_key_min_rows: Fewest entity rows of a key split by time: below that, one task handles
            it quickly anyway.
        hot_keys_max: Most hot keys per key set (the heaviest, from one approximate top-k sketch).
        hot_key_time_buckets: Time buckets a hot key is split into; ``None``:
            ``spark.sql.shuffle.partitions``, 2 to 64.
        bloom_time_splits: Bucket widths tried for bloom filter pruning, as fractions of
            ``max_age``, finest first. An entity row puts ``splits + 1`` pairs in the filter and
            keeps feature rows up to ``max_age * (1 + 1 / splits)`` before it: finer buckets
            prune more but hold more pairs.
        bloom_buckets_min_pruned_share: Least expected share of a key's feature rows its time
            buckets must prune; else the filter holds keys alone. With many entity rows per key
            their buckets cover the key's whole time range, and building their pairs is work for
            nothing.
        bloom_filter: ``False`` never prunes with a bloom filter, as in a session that has none
            (Spark Connect): per-key time ranges are used instead.
    """

    key_pruning_max_keys: int = 1_000_000
    point_pruning_max_rows_per_key: int = 32
    hot_key_min_share: float = 0.05
    hot_key_min_rows: int = 10_000
    hot_keys_max: int = 8
    hot_key_time_buckets: int | None = None
    bloom_time_splits: tuple[int, ...] = (4, 2, 1)
    bloom_buckets_min_pruned_share: float = 0.1
    bloom_filter: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.hot_key_min_share <= 1.0:
            raise self._error("hot_key_min_share", self.hot_key_min_share, "a share from 0 to 1")
        if not 0.0 <= self.bloom_buckets_min_pruned_share <= 1.0:
            raise self._error(
                "bloom_buckets_min_pruned_share",
                self.bloom_buckets_min_pruned_share,
                "a share from 0 to 1",
            )
        if self.hot_keys_max < 1:
            raise self._error("hot_keys_max", self.hot_keys_max, "at least 1")
        if self.hot_key_time_buckets is not None and self.hot_key_time_buckets < 2:
            raise self._error(
                "hot_key_time_buckets", self.hot_key_time_buckets, "at least 2, or null"
            )
        if not self.bloom_time_splits or any(s < 1 for s in self.bloom_time_splits):
            raise self._error(
                "bloom_time_splits", list(self.bloom_time_splits), "a list of whole numbers >= 1"
            )

    @staticmethod
    def _error(key: str, value: object, expected: str) -> ConfigError:
        return ConfigError(f"join_tuning.{key}", value, "the job spec", f"must be {expected}")

    def to_dict(self) -> dict[str, Any]:
        """The settings that differ from the defaults (JSON-ready)."""
        default = JoinTuning()
        changed = {k: v for k, v in asdict(self).items() if getattr(default, k) != v}
        if "bloom_time_splits" in changed:
            changed["bloom_time_splits"] = list(changed["bloom_time_splits"])
        return changed

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> JoinTuning:
        """Parse :meth:`to_dict`'s output; an unknown key is an error naming it."""
        if not data:
            return cls()
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"join_tuning.{unknown[0]}",
                data[unknown[0]],
                "the job spec",
                f"is not a tuning setting; known: {', '.join(sorted(known))}",
            )
        values = dict(data)
        if "bloom_time_splits" in values:
            values["bloom_time_splits"] = tuple(values["bloom_time_splits"])
        return cls(**values)


DEFAULT_TUNING = JoinTuning()
"""The tuning a join uses when it is given none."""
