"""The online/offline consistency audit's findings and report (pure Python).

The audit (``feast-spark audit TABLE``, :mod:`feast_spark.spark.audit` for the Spark side)
compares, key by key, what the online store holds with what materialize would have written from
the offline table: the latest row per key (latest ``event_timestamp``, then ``created_timestamp``,
then greatest values), rows dated beyond now plus ``future_event_time_allowance`` left out, and no
row expected when its retention has ended (``event_timestamp + 2 * max_age <= now``). Values are
compared in the stored form both sides share (:mod:`feast_spark.online.base`): timestamps as
microseconds, an empty list as null, a FLOAT as its 32-bit value.

Kinds of finding:

============== ============================================================================
missing_online offline's latest row is retained, the online store has no row for the key
online_only    the online store holds a retained row for a key with no offline row (found
               only when every key is audited: the online table is then enumerated)
differs        both hold a row and the event time or feature values differ (``cells``)
============== ============================================================================

A key whose offline row has expired and that the online store does not hold is consistent.

Example (one differing cell)::

    Finding(kind="differs", key={"driver_id": 1001}, cells=("conv_rate",),
            offline={"event_timestamp": "2024-01-01T10:00:00.000000+00:00", "conv_rate": 0.5},
            online={"event_timestamp": "2024-01-01T10:00:00.000000+00:00", "conv_rate": 0.7})
"""

from __future__ import annotations

import base64
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from feast_spark.columns import EVENT_TIMESTAMP
from feast_spark.errors import ArgumentError
from feast_spark.online.base import (
    OnlineTableSchema,
    StoredRow,
    from_micros,
    is_retained,
    user_value,
)
from feast_spark.online_store_config import OnlineStoreConfig
from feast_spark.specs import AuditOptions

MISSING_ONLINE = "missing_online"
ONLINE_ONLY = "online_only"
DIFFERS = "differs"
#: Kinds of finding, in report order.
KINDS = (MISSING_ONLINE, ONLINE_ONLY, DIFFERS)
#: Examples kept per kind by default.
DEFAULT_EXAMPLES = 5

# Records of a partition's tally (see Tally.records): (record, name, n, detail).
_CHECKED = "checked"
_COUNT = "count"
_CELL = "cell"
_EXAMPLE = "example"
#: Spark DDL of a tally's records.
TALLY_DDL = "record string, name string, n long, detail string"


@dataclass(frozen=True)
class Finding:
    """One key found inconsistent.

    Attributes:
        kind: ``missing_online``, ``online_only`` or ``differs``.
        key: The entity key, ``{entity: value}`` in JSON form.
        cells: Columns that differ (``differs`` only): ``event_timestamp`` and feature names.
        offline: The offline side: its event time and, for ``differs``, the differing values.
        online: The online side, likewise.
    """

    kind: str
    key: Mapping[str, Any]
    cells: tuple[str, ...] = ()
    offline: Mapping[str, Any] | None = None
    online: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "kind": self.kind,
            "key": dict(self.key),
            "cells": list(self.cells),
            "offline": None if self.offline is None else dict(self.offline),
            "online": None if self.online is None else dict(self.online),
        }


def json_value(value: Any) -> Any:
    """A value in user form as JSON: instants ISO-8601 UTC, bytes base64, NaN/inf as strings."""
    if isinstance(value, datetime):
        # one form for every instant, as the CLI's JSON: UTC with microseconds
        moment = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.isoformat(timespec="microseconds")
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return value


def key_document(schema: OnlineTableSchema, key: Sequence[Any], *, stored: bool) -> dict[str, Any]:
    """``{entity: value}`` of a key (``stored``: given in stored form, timestamps in micros)."""
    return {
        name: json_value(user_value(value, value_type) if stored else value)
        for (name, value_type), value in zip(schema.entities, key, strict=True)
    }


def same_value(left: Any, right: Any, *, nan_is_null: bool = False) -> bool:
    """Whether two stored values are equal (NaN equals NaN; with ``nan_is_null`` also null).

    ``nan_is_null`` is for SQLite, which stores a NaN as NULL.
    """
    if left is None or right is None:
        if left is None and right is None:
            return True
        other = right if left is None else left
        return nan_is_null and isinstance(other, float) and math.isnan(other)
    if isinstance(left, float) and isinstance(right, float) and math.isnan(left):
        return math.isnan(right)
    if isinstance(left, list | tuple) and isinstance(right, list | tuple):
        return len(left) == len(right) and all(
            same_value(a, b, nan_is_null=nan_is_null) for a, b in zip(left, right, strict=True)
        )
    return bool(left == right)


def compare_row(
    schema: OnlineTableSchema,
    key: tuple[Any, ...],
    event_us: int,
    values: Sequence[Any],
    stored: StoredRow | None,
    *,
    now_us: int,
    nan_is_null: bool = False,
) -> Finding | None:
    """Compare offline's latest row of ``key`` with the stored row; None when consistent.

    Args:
        schema: The online table (features in the order of ``values`` and ``stored.values``).
        key: The key in stored form.
        event_us: Offline's latest event time, microseconds.
        values: Offline's latest feature values, stored form, in schema order.
        stored: What the online store returned for the key (None: no retained row).
        now_us: The audit's instant; retention is judged at it.
        nan_is_null: The store keeps a NaN as null (SQLite).
    """
    if stored is None:
        if not is_retained(event_us, schema.max_age, now_us):
            return None  # expired: materialize does not write it, the store drops it
        return Finding(
            MISSING_ONLINE,
            key_document(schema, key, stored=True),
            offline={EVENT_TIMESTAMP: json_value(from_micros(event_us))},
        )
    offline: dict[str, Any] = {EVENT_TIMESTAMP: json_value(from_micros(event_us))}
    online: dict[str, Any] = {EVENT_TIMESTAMP: json_value(from_micros(stored.event_timestamp_us))}
    cells = [EVENT_TIMESTAMP] if stored.event_timestamp_us != event_us else []
    for (name, value_type), mine, theirs in zip(
        schema.features, values, stored.values, strict=True
    ):
        if not same_value(mine, theirs, nan_is_null=nan_is_null):
            cells.append(name)
            offline[name] = json_value(user_value(mine, value_type))
            online[name] = json_value(user_value(theirs, value_type))
    if not cells:
        return None
    return Finding(DIFFERS, key_document(schema, key, stored=True), tuple(cells), offline, online)


def audit_options(
    online_store: OnlineStoreConfig, sample: int | None, examples: int = DEFAULT_EXAMPLES
) -> AuditOptions:
    """The audit job's options from a caller's values.

    Raises:
        ArgumentError: ``sample`` is not a whole number >= 1, or ``examples`` one >= 0.
    """
    for name, value, least in (("sample", sample, 1), ("examples", examples, 0)):
        if value is not None and (type(value) is not int or value < least):
            raise ArgumentError(name, value, f"give a whole number >= {least}")
    return AuditOptions(online_store, sample=sample, examples=examples)


class Tally:
    """Counts and the first examples of one Spark partition's findings.

    A partition sends a few records, not one per key: the driver then merges every partition's
    records (:meth:`AuditReport.from_records`), so the audit's result is small however many keys
    differ.
    """

    def __init__(self, examples: int = DEFAULT_EXAMPLES) -> None:
        self.examples = examples
        self.checked = 0
        self.counts: Counter[str] = Counter()
        self.cells: Counter[str] = Counter()
        self.kept: dict[str, list[Finding]] = {kind: [] for kind in KINDS}

    def add(self, finding: Finding | None, *, checked: bool = True) -> None:
        """Count one audited key (``checked``) and its finding, if any."""
        self.checked += int(checked)
        if finding is None:
            return
        self.counts[finding.kind] += 1
        self.cells.update(finding.cells)
        kept = self.kept[finding.kind]
        if len(kept) < self.examples:
            kept.append(finding)

    def records(self) -> list[tuple[str, str | None, int, str | None]]:
        """``(record, name, n, detail)`` rows (:data:`TALLY_DDL`)."""
        rows: list[tuple[str, str | None, int, str | None]] = [(_CHECKED, None, self.checked, None)]
        rows += [(_COUNT, kind, n, None) for kind, n in self.counts.items()]
        rows += [(_CELL, cell, n, None) for cell, n in self.cells.items()]
        rows += [
            (_EXAMPLE, kind, 1, json.dumps(f.to_dict(), sort_keys=True))
            for kind, kept in self.kept.items()
            for f in kept
        ]
        return rows

    def columns(self) -> dict[str, list[Any]]:
        """:meth:`records` as columns (for an Arrow batch)."""
        rows = self.records()
        return {
            name: [row[i] for row in rows]
            for i, name in enumerate(("record", "name", "n", "detail"))
        }


@dataclass(frozen=True)
class AuditReport:
    """What an audit of one table found.

    Attributes:
        table: The feature table.
        online_table: The online table read.
        store: ``sqlite`` or ``cassandra``.
        audited_at: The instant retention and future rows were judged at.
        sample: Offline keys sampled (None: every key, and the online table enumerated).
        keys_checked: Offline keys whose online row was read.
        counts: Findings per kind (every kind present, zeros included).
        cells: Differing cells per column (``event_timestamp`` and feature names).
        examples: A few findings per kind, as JSON documents, ordered by key.
    """

    table: str
    online_table: str
    store: str
    audited_at: datetime
    sample: int | None
    keys_checked: int
    counts: Mapping[str, int] = field(default_factory=dict)
    cells: Mapping[str, int] = field(default_factory=dict)
    examples: Mapping[str, tuple[Mapping[str, Any], ...]] = field(default_factory=dict)

    @property
    def consistent(self) -> bool:
        """Whether nothing differs."""
        return not any(self.counts.get(kind, 0) for kind in KINDS)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the audit job's result details)."""
        return {
            "table": self.table,
            "online_table": self.online_table,
            "store": self.store,
            "audited_at": self.audited_at.isoformat(),
            "sample": self.sample,
            "keys_checked": self.keys_checked,
            "consistent": self.consistent,
            "counts": {kind: int(self.counts.get(kind, 0)) for kind in KINDS},
            "cells": dict(sorted(self.cells.items())),
            "examples": {kind: [dict(e) for e in self.examples.get(kind, ())] for kind in KINDS},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditReport:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: A field is missing or malformed.
        """
        try:
            return cls(
                table=str(data["table"]),
                online_table=str(data["online_table"]),
                store=str(data["store"]),
                audited_at=datetime.fromisoformat(data["audited_at"]),
                sample=None if data.get("sample") is None else int(data["sample"]),
                keys_checked=int(data["keys_checked"]),
                counts={k: int(v) for k, v in dict(data["counts"]).items()},
                cells={k: int(v) for k, v in dict(data.get("cells") or {}).items()},
                examples={k: tuple(v) for k, v in dict(data.get("examples") or {}).items()},
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"audit report field {error} is missing or malformed") from None

    @classmethod
    def from_records(
        cls,
        records: Iterable[Sequence[Any]],
        *,
        table: str,
        online_table: str,
        store: str,
        audited_at: datetime,
        sample: int | None,
        examples: int = DEFAULT_EXAMPLES,
    ) -> AuditReport:
        """Merge every partition's :meth:`Tally.records` into the report.

        Examples are the first ``examples`` per kind ordered by key, whatever the partitioning.
        """
        checked = 0
        counts: Counter[str] = Counter({kind: 0 for kind in KINDS})
        cells: Counter[str] = Counter()
        found: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
        for record, name, n, detail in records:
            if record == _CHECKED:
                checked += int(n)
            elif record == _COUNT:
                counts[str(name)] += int(n)
            elif record == _CELL:
                cells[str(name)] += int(n)
            elif record == _EXAMPLE:
                found[str(name)].append(json.loads(detail))
        kept = {
            kind: tuple(
                sorted(items, key=lambda f: json.dumps(f["key"], sort_keys=True))[:examples]
            )
            for kind, items in found.items()
        }
        return cls(
            table, online_table, store, audited_at, sample, checked, dict(counts), dict(cells), kept
        )
