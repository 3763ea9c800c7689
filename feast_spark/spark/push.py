"""Push: a small batch of rows from a file straight to the online store (and the offline table).

For services that compute features themselves and have no Kafka (Feast's push source). The rows
look like the table's batch source rows: entity columns, the batch source's event timestamp
column, its created timestamp column if it names one, and the features, named by its
``field_mapping``. They are checked exactly like a batch ingest's
(:func:`feast_spark.spark.row_checks.check_rows`, no window, event times at most the job's start
plus ``future_event_time_allowance``) and written like a stream's micro-batch
(:func:`feast_spark.spark.checked_writes.write_checked`):

- **online**: the latest valid row per key; an older row pushed after a newer one never
  regresses the value (the store keeps the newest event time, then created time);
- **rejected**: rows failing a check go to the table's rejected-rows table under the job id,
  with their reason and the row as JSON;
- **offline** (``to="both"``): the valid rows are appended to the Delta offline table in one
  commit with ``txnAppId`` = the job id: a rerun of the same job appends nothing more. Two pushes
  (two job ids) of the same file append it twice (an ingest in add mode, by contrast, skips the
  rows the table holds already): push is for fresh rows, ingest for files that may be read again.

A file with no rows fails the job (:class:`~feast_spark.errors.NothingToPushError`), before
anything is written; a missing column fails it naming the column
(:class:`~feast_spark.errors.SourceSchemaError`).

Example (``trips`` INT64, online holds driver 1 at 12:00 with 9)::

    driver_id  ts                    trips    online / rejected
    1          2024-01-01T10:00:00Z  5        not written: older than the 12:00 value online
    2          2024-01-01T10:00:00Z  x        rejected: trips: x is not a valid INT64
    3          2024-01-01T10:00:00Z  4        online: 3 -> 4 (10:00)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pyspark.sql import SparkSession

from feast_spark.definitions import FeatureTable
from feast_spark.errors import JobSpecError, NothingToPushError
from feast_spark.online.base import OnlineTableSchema
from feast_spark.online.stores import open_online_store
from feast_spark.online_store_config import serialize_online_store
from feast_spark.spark.checked_writes import WriteTargets, write_checked
from feast_spark.spark.offline_store import ensure_table, table_version
from feast_spark.spark.rejected_rows import rejected_table_path
from feast_spark.spark.row_checks import check_rows
from feast_spark.spark.sources import read_source
from feast_spark.specs import JobSpec, PushOptions
from feast_spark.staging import source_at


@dataclass(frozen=True)
class PushOutcome:
    """What a push did.

    Attributes:
        table: The feature table.
        to: ``online`` or ``both``.
        path: The rows pushed.
        rows_read: Rows in the file.
        rows_rejected: Rows failing a check.
        rows_written: Rows written online (the latest per key; a key's row older than the one
            online is sent but kept out by the store).
        rows_expired: Latest rows not written online because ``max_age`` had passed.
        rows_offline: Valid rows appended to the offline table (0 with ``to="online"``).
        offline_version: The offline table's version after the append (None: online only).
        rejected_path: The rejected-rows table.
    """

    table: str
    to: str
    path: str
    rows_read: int
    rows_rejected: int
    rows_written: int
    rows_expired: int
    rows_offline: int
    offline_version: int | None
    rejected_path: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the job's result details)."""
        return {
            "table": self.table,
            "to": self.to,
            "path": self.path,
            "rows_read": self.rows_read,
            "rows_rejected": self.rows_rejected,
            "rows_written": self.rows_written,
            "rows_expired": self.rows_expired,
            "rows_offline": self.rows_offline,
            "offline_version": self.offline_version,
            "rejected_path": self.rejected_path,
        }


def push_rows(spark: SparkSession, spec: JobSpec, received_at: datetime) -> PushOutcome:
    """Check the spec's rows and write them online (and offline); see the module docstring.

    Args:
        spark: The session.
        spec: A ``push`` spec: one table, its entities, :class:`~feast_spark.specs.PushOptions`.
        received_at: The job's start: the limit of event times (plus the allowance), the
            ``rejected_at`` of rejected rows.

    Raises:
        JobSpecError: The spec does not describe one push.
        SourceSchemaError: A column is missing, or its type can never hold the declared one.
        NothingToPushError: The file has no rows.
    """
    options, table = _check(spec)
    entities = [e for e in spec.entities if e.name in table.entities]
    source = source_at(options.path, table.batch_source)
    frame = read_source(spark, source, table_name=table.name)
    latest = received_at + spec.future_allowance
    checked = check_rows(frame, table, entities, source, None, received_at, latest_event=latest)
    if frame.isEmpty():
        raise NothingToPushError(table.name, options.path)
    store = serialize_online_store(options.online_store)
    schema = OnlineTableSchema.of(spec.project, table, entities)
    with open_online_store(store) as online:
        online.ensure_table(schema)
    table_path = spec.offline_table_path(table.name)
    offline_path = table_path if options.to == "both" else None
    if offline_path is not None:
        ensure_table(spark, offline_path, table, entities)
    targets = WriteTargets(table, schema, store, rejected_table_path(table_path), offline_path)
    done = write_checked(
        checked, targets, record_id=spec.job_id, txn_app_id=spec.job_id, txn_version=0,
        received_at=received_at,
    )  # fmt: skip
    return PushOutcome(
        table=table.name,
        to=options.to,
        path=options.path,
        rows_read=done.read,
        rows_rejected=done.rejected,
        rows_written=done.written,
        rows_expired=done.expired,
        rows_offline=done.offline,
        offline_version=None if offline_path is None else table_version(spark, offline_path),
        rejected_path=targets.rejected_path,
    )


def _check(spec: JobSpec) -> tuple[PushOptions, FeatureTable]:
    if len(spec.feature_tables) != 1:
        raise JobSpecError(
            "feature_tables", f"a push writes one table, got {len(spec.feature_tables)}"
        )
    if not isinstance(spec.options, PushOptions):
        raise JobSpecError("options", "a push job takes push options")
    table = spec.feature_tables[0]
    missing = [name for name in table.entities if name not in {e.name for e in spec.entities}]
    if missing:
        raise JobSpecError(
            "entities", f"no definition of {', '.join(missing)} (used by {table.name})"
        )
    return spec.options, table
