"""Write checked rows where they go: the latest row per key online, rejections, offline once.

One function, :func:`write_checked`, for both writers of small batches: a stream's micro-batch
(:mod:`feast_spark.spark.stream`) and a push (:mod:`feast_spark.spark.push`). Given rows checked
by :func:`feast_spark.spark.row_checks.check_rows`, it

1. writes the latest valid row per key online with the materialize writer
   (:func:`feast_spark.spark.materialize.write_online`): the event time is the write timestamp
   and the store keeps a row only if it is newer than the one it holds, so an older row written
   later never regresses a value; rows older than ``max_age`` expire (counted, not written).
   The same Spark job counts the rows (valid and rejected) as they pass: a small batch pays
   for each job's scheduling, so there is no counting job of its own;
2. records the rejected rows, with their reason, in the table's rejected-rows table under
   ``record_id``, once per ``(txn_app_id, txn_version)`` (Delta skips a replayed append);
3. with an offline table, appends the valid rows to it in one Delta commit carrying
   ``txnAppId``/``txnVersion``: a second write with the same pair is skipped by Delta.

Every step is idempotent for a given ``record_id`` and ``(txn_app_id, txn_version)``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pyspark.sql import DataFrame, Observation
from pyspark.sql import types as T  # noqa: N812

from feast_spark.definitions import FeatureTable
from feast_spark.online.base import OnlineTableSchema
from feast_spark.spark.commit_retry import DEFAULT_RETRY, _retrying
from feast_spark.spark.materialize import online_columns, online_rows, write_online
from feast_spark.spark.offline_writes import _aligned
from feast_spark.spark.rejected_rows import write_rejected
from feast_spark.spark.row_checks import CheckedRows
from feast_spark.specs import Window


@dataclass(frozen=True)
class WriteTargets:
    """Where checked rows of one table go.

    Attributes:
        table: The feature table.
        schema: Its online table (created beforehand).
        store: The online store's settings as a mapping (shipped to the executors).
        rejected_path: The table's rejected-rows table (created at the first rejection).
        offline_path: The Delta offline table, created beforehand (None: online only).
    """

    table: FeatureTable
    schema: OnlineTableSchema
    store: Mapping[str, Any]
    rejected_path: str
    offline_path: str | None = None


@dataclass(frozen=True)
class ExtraRejected:
    """Rows rejected before the checks (a stream's unparseable messages).

    Attributes:
        rows: Shaped as ``CheckedRows.rejected()``.
        counted: An observation upstream of the checked rows whose ``unparseable`` figure counts
            them as the online write runs (no counting job of their own).
    """

    rows: DataFrame
    counted: Observation


@dataclass(frozen=True)
class WrittenRows:
    """What :func:`write_checked` did.

    Attributes:
        read: Rows given (valid, failing a check, and the extra rejected rows).
        rejected: Rows rejected (failing a check, and the extra rejected rows).
        written: Rows written online (one per key).
        expired: Latest rows not written online because ``max_age`` had passed.
        offline: Valid rows sent to the offline table (0 without one; a replayed write counts
            them again, though Delta skips it).
        offline_schema: The offline table's schema (None without one): pass it back to spare
            reading it at the next write.
        seconds: Time per step (``online``, ``rejected``, ``offline``), for the batch log.
    """

    read: int = 0
    rejected: int = 0
    written: int = 0
    expired: int = 0
    offline: int = 0
    offline_schema: T.StructType | None = None
    seconds: Mapping[str, float] = field(default_factory=dict)


def write_checked(
    checked: CheckedRows,
    targets: WriteTargets,
    *,
    record_id: str,
    txn_app_id: str,
    txn_version: int,
    received_at: datetime,
    extra_rejected: ExtraRejected | None = None,
    offline_schema: T.StructType | None = None,
    online_tasks: int | None = None,
) -> WrittenRows:
    """Write ``checked`` online, its rejections, and (with an offline table) its valid rows.

    Args:
        checked: Rows checked by :func:`~feast_spark.spark.row_checks.check_rows` (cached here
            for the offline append, which reads them a second time).
        targets: Where they go.
        record_id: The id the rejected rows are recorded under (``ingestion_job_id``).
        txn_app_id: Delta's ``txnAppId`` of the offline append.
        txn_version: Delta's ``txnVersion`` of the offline append.
        received_at: When the rows were received (``rejected_at`` of the rejections).
        extra_rejected: Rows rejected before the checks, recorded with the others.
        offline_schema: The offline table's schema, if known.
        online_tasks: None: the latest valid row per key is picked by a Spark aggregation
            (any number of rows), then written in the cluster's parallelism. A number: the
            valid rows are written by key in that many tasks (one: no shuffle), the store
            picking each key's latest row (``write_online``'s ``by_key``); for a batch small
            enough for a task to hold its share in memory.

    Raises:
        pyspark.errors.PySparkException: A write failed (nothing is half-written online: the
            store keeps the newest row whatever the order; offline and rejected writes are
            single commits).
    """
    offline = targets.offline_path is not None
    if offline:
        checked = CheckedRows(checked.rows.persist(), checked.columns)
    try:
        return _write(checked, targets, record_id, txn_app_id, txn_version, received_at,
                      extra_rejected, offline_schema, online_tasks)  # fmt: skip
    finally:
        if offline:
            checked.rows.unpersist()


def _write(
    checked: CheckedRows,
    targets: WriteTargets,
    record_id: str,
    txn_app_id: str,
    txn_version: int,
    received_at: datetime,
    extra_rejected: ExtraRejected | None,
    offline_schema: T.StructType | None,
    online_tasks: int | None,
) -> WrittenRows:
    seconds: dict[str, float] = {}
    began = time.monotonic()
    # One Spark job checks, counts and writes the latest valid row per key online; a batch
    # without valid rows writes nothing but is still counted.
    counted = Observation()
    observed = checked.observed(counted).valid()
    table = targets.table
    if online_tasks is None:  # any size: the latest row per key by an aggregation first
        latest, by_key = online_rows(observed, table, Window()), None
    else:
        latest, by_key = online_columns(observed, table), table.entities
    online = write_online(latest, targets.schema, targets.store, tasks=online_tasks, by_key=by_key)
    figures = counted.get
    rows, rejected = int(figures.get("rows") or 0), int(figures.get("rejected") or 0)
    extra = 0 if extra_rejected is None else int(extra_rejected.counted.get["unparseable"] or 0)
    valid = rows - rejected
    seconds["online"], began = time.monotonic() - began, time.monotonic()
    if rejected or extra:
        all_rejected = checked.rejected()
        if extra_rejected is not None:
            all_rejected = all_rejected.unionByName(extra_rejected.rows)
        write_rejected(
            checked.rows.sparkSession, all_rejected, targets.rejected_path, record_id, None,
            received_at, private=True, txn=(txn_app_id, txn_version),
        )  # fmt: skip
    seconds["rejected"], began = time.monotonic() - began, time.monotonic()
    offline = 0
    if valid and targets.offline_path is not None:
        offline_schema = append_offline(
            checked.valid(), targets.offline_path, txn_app_id, txn_version, offline_schema
        )
        offline = valid
    seconds["offline"] = time.monotonic() - began
    return WrittenRows(rows + extra, rejected + extra, online.written, online.expired, offline,
                       offline_schema, seconds)  # fmt: skip


def append_offline(
    rows: DataFrame,
    path: str,
    app_id: str,
    version: int,
    schema: T.StructType | None = None,
) -> T.StructType:
    """Append valid rows to the offline table, exactly once per ``(app_id, version)``.

    Delta records ``(txnAppId, txnVersion)`` in the commit and skips a later write with a
    version it has already seen for that app id: a replayed batch adds nothing. The table must
    exist (and hold every declared column): see
    :func:`~feast_spark.spark.offline_store.ensure_table`. Returns the table's schema, which a
    caller passes back as ``schema`` to spare reading it for every batch.
    """
    if schema is None:
        schema = rows.sparkSession.read.format("delta").load(path).schema
    aligned = _aligned(rows, schema)

    def attempt() -> None:
        (
            aligned.write.format("delta")
            .mode("append")
            .option("txnAppId", app_id)
            .option("txnVersion", str(version))
            .option("userMetadata", f"{app_id}-{version}")
            .save(path)
        )

    _retrying(attempt, what=f"append to {path}", job_id=app_id, retry=DEFAULT_RETRY)
    return schema
