"""Ingestion: a batch source into a feature table's Delta offline table, in one of two modes.

What an ingest does depends on the window it is given, and only rows of an explicitly named
window are ever deleted:

=================  ============================================================================
window             what the table gets
=================  ============================================================================
``--start`` and    **replace**: the rows with ``start <= event_timestamp < end`` become exactly
``--end``          the source's valid rows in that window (one ``replaceWhere`` commit). Rows
                   of the window that the source no longer has are deleted and counted
                   (``rows_deleted``). Rows outside the window are never touched.
none, or only      **add**: the source's valid rows (cut to the one bound given) that the table
one bound          does not hold yet are appended; nothing is deleted or changed. A row is
                   identified by all its values (keys, event and created time, features), so a
                   rerun adds nothing and the table is exactly as after the first run.
=================  ============================================================================

Why two modes: Feast's ``ingest`` adds the source's rows, and a file holding one day must never
wipe the others (an open bound used to replace everything on its side: an empty file emptied the
table). A correction in add mode is a new row: it wins the point-in-time join when its
``created_timestamp`` is later (without a created column, a rewritten file's modification time
is later). To remove rows, replace the window that holds them. Replace mode is also the cheap
one (a plain write); add mode costs a join of the source with the table's rows in the source's
time range (``MERGE ... WHEN NOT MATCHED THEN INSERT``, which skips files outside that range).

Both modes are single atomic Delta commits, retried from the source when a concurrent job's
commit conflicts, so concurrent ingests of one table all land. A run that changes nothing (a
rerun in add mode, an empty window over an empty window) commits nothing, since Delta records no
empty commit, and SUCCEEDS: its outcome says ``committed=False`` and gives the table's current
version.

Example (table: Jan 1 and Jan 2; source: one Jan 2 row)::

    no window / --start only   ->  Jan 1, Jan 2, the source's row added (rows_deleted 0)
    --start Jan 2 --end Jan 3  ->  Jan 1, the source's row (Jan 2's old rows deleted and counted)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F  # noqa: N812 (the conventional alias)

from feast_spark.columns import EVENT_TIMESTAMP
from feast_spark.definitions import BatchSource, Entity, FeatureTable
from feast_spark.errors import JobFailedError, JobSpecError
from feast_spark.spark.commit_retry import DEFAULT_RETRY, RetryPolicy, _retrying
from feast_spark.spark.feature_statistics import (
    FeatureFigures,
    feature_figures,
    quantile_sample,
    to_statistics,
)
from feast_spark.spark.identifiers import quote
from feast_spark.spark.offline_store import (
    _add_missing_columns,
    missing_columns,
    read_offline_table,
    table_version,
)
from feast_spark.spark.offline_writes import _LAST_COMMIT, _aligned, _private_session, _write
from feast_spark.spark.rejected_rows import rejected_table_path, write_rejected
from feast_spark.spark.row_checks import REJECT_REASON, CheckedRows, check_rows
from feast_spark.spark.sources import read_source
from feast_spark.specs import Window
from feast_spark.statistics import IngestStatistics, write_statistics

REPLACE = "replace"
ADD = "add"
# Delta's conf for the userMetadata of commits made by SQL/merge (the writer option is per write).
_USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"


@dataclass(frozen=True)
class IngestOutcome:
    """What an ingest did.

    Attributes:
        rows_read: Rows of the window (valid + rejected).
        rows_written: Rows added to the offline table (replace mode: every valid row).
        rows_rejected: Rows written to the rejected-rows table.
        delta_version: The offline table's version holding the result: the one committed, or
            the current one when nothing was committed.
        rejected_version: Rejected-rows table version committed (None when nothing was rejected).
        table_path: The offline table.
        rejected_path: The rejected-rows table.
        mode: ``replace`` (both bounds given) or ``add``.
        rows_deleted: Rows removed from the table (replace mode: the window's rows before).
        rows_present: Add mode: valid rows the table held already (not added again).
        committed: Whether the offline table got a new version.
        statistics: The feature statistics recorded for that version (None: nothing committed,
            or statistics off); see :mod:`feast_spark.statistics`.
    """

    rows_read: int
    rows_written: int
    rows_rejected: int
    delta_version: int | None
    rejected_version: int | None
    table_path: str
    rejected_path: str
    mode: str = REPLACE
    rows_deleted: int = 0
    rows_present: int = 0
    committed: bool = True
    statistics: IngestStatistics | None = None


def ingest_mode(window: Window | None) -> str:
    """``replace`` when both bounds are given, else ``add`` (see the module docstring)."""
    if window is not None and window.start is not None and window.end is not None:
        return REPLACE
    return ADD


def ingest_table(
    spark: SparkSession,
    *,
    table: FeatureTable,
    entities: Sequence[Entity],
    source: BatchSource,
    window: Window | None,
    table_path: str,
    job_id: str,
    ingested_at: datetime,
    max_rejected_fraction: float = 1.0,
    future_allowance: timedelta | None = None,
    retry: RetryPolicy = DEFAULT_RETRY,
    statistics: bool = True,
) -> IngestOutcome:
    """Read ``source``, check its rows and replace ``window`` with them, or add them.

    Order, so that a failure commits nothing or can be rerun:

    1. Schema checks on the driver (source columns, table column types): no Spark job yet.
    2. When ``max_rejected_fraction < 1``: one counting pass; above the fraction the job fails
       and commits nothing to either table. (At the default 1.0 the counts come from the write
       itself, at no extra cost, except for a merge in add mode, which needs one pass for the
       valid rows' time range first.)
    3. Add new feature columns to an existing table (metadata only).
    4. One commit of the valid rows (module docstring), which creates the table the first
       time (retried on conflicts).
    5. When rows were rejected: one commit of them to the rejected-rows table (a second pass
       over the source, filtered to the rejected rows). If the job dies between 4 and 5, its
       result is missing or FAILED and a rerun writes both again.
    6. When 4 committed: the feature statistics, computed by the pass of 4 (or, for a merge,
       by its time-range pass), written to ``<table_path>.statistics/<version>.json``.

    Example (window ``[Jan 1, Jan 2)``)::

        source                      offline table (window replaced)   <table>.rejected
        1  Jan 1 10:00  trips "7"   1  Jan 1 10:00  7  2024-01-01
        2  Jan 1 11:00  trips "x"                                      trips: x is not a valid INT64
        3  Jan 5 09:00  trips "1"   (outside the window: not read into either table)

    Args:
        spark: The session.
        table: The feature table.
        entities: Its entities.
        source: Where the rows are.
        window: The window (its bounds choose the mode).
        table_path: The offline table.
        job_id: The job (commit ``userMetadata``, rejected rows).
        ingested_at: The job's start.
        max_rejected_fraction: Fail above this share of rejected rows.
        future_allowance: Reject rows whose event time is later than ``ingested_at`` plus
            this (None: no limit).
        retry: Conflict retry policy.
        statistics: Record feature statistics (:mod:`feast_spark.statistics`).

    Returns:
        Counts, versions and paths.

    Raises:
        SourceSchemaError: The source does not fit the definition (before any Spark job).
        OfflineLayoutError: The table is still partitioned by day (nothing committed).
        CompatibilityError: The table has a column of another type.
        JobSpecError: ``max_rejected_fraction`` is not within [0, 1].
        JobFailedError: Too many rows were rejected (nothing committed), or commits kept
            conflicting.

    """
    if not 0.0 <= max_rejected_fraction <= 1.0:
        raise JobSpecError(
            "options.max_rejected_fraction", f"{max_rejected_fraction} is not within [0, 1]"
        )
    session = _private_session(spark)
    frame = read_source(session, source, window, table_name=table.name)
    latest = None if future_allowance is None else ingested_at + future_allowance
    checked = check_rows(frame, table, entities, source, window, ingested_at, latest_event=latest)
    # Type conflicts fail here, before any pass over the data.
    missing = missing_columns(session, table_path, table, entities)
    mode = ingest_mode(window)
    # Statistics of the valid rows, aggregated where rejected rows pass too: observed with the
    # counts by the write (one observation), or by add mode's time-range pass for a merge.
    sample = quantile_sample(frame) if statistics else 1
    valid = f"{quote(REJECT_REASON)} IS NULL"
    figures = feature_figures(session, table, valid, sample=sample) if statistics else None
    span = None
    if max_rejected_fraction < 1.0:
        span = _span(checked, figures if mode == ADD else None)
    if span is not None:
        _check_rejected(job_id, span.rows, span.rejected, max_rejected_fraction)
    if missing:
        _retrying(
            lambda: _add_missing_columns(session, table_path, table, entities),
            what=f"alter {table_path}",
            job_id=job_id,
            retry=retry,
        )

    if mode == ADD:
        outcome, values = _add(session, checked, span, table_path, job_id, table, entities,
                               retry, figures)  # fmt: skip
    else:
        outcome, values = _replace(session, checked, table_path, window, job_id, table,
                                   entities, retry, figures)  # fmt: skip
    rejected_version = None
    if outcome.rows_rejected:
        rejected_version = write_rejected(
            session, checked.rejected(), outcome.rejected_path, job_id, window, ingested_at,
            retry=retry, private=True,
        )  # fmt: skip
    recorded = None
    if outcome.committed and outcome.delta_version is not None and values is not None:
        recorded = to_statistics(values, table, version=outcome.delta_version, job_id=job_id,
                                 ingested_at=ingested_at, mode=mode)  # fmt: skip
        write_statistics(table_path, recorded)
    return replace(outcome, rejected_version=rejected_version, statistics=recorded)


# --- replace mode -------------------------------------------------------------------------------


def _replace(
    session: SparkSession,
    checked: CheckedRows,
    table_path: str,
    window: Window | None,
    job_id: str,
    table: FeatureTable,
    entities: Sequence[Entity],
    retry: RetryPolicy,
    figures: FeatureFigures | None,
) -> tuple[IngestOutcome, Mapping[str, Any] | None]:
    counts: dict[str, Any] = {}

    def attempt() -> int | None:
        observation = Observation()  # one per action: a retry recounts
        rows = checked.observed(observation, figures).valid()
        version = _write(session, rows, table_path, window, job_id, table=table,
                         entities=entities, private=True)  # fmt: skip
        counts.update(observation.get)
        return version

    version = _retrying(attempt, what=f"write {table_path}", job_id=job_id, retry=retry)
    rows_read, rows_rejected = int(counts["rows"]), int(counts["rejected"])
    deleted = 0 if version is None else _rows_replaced(session, table_path, version, window)
    outcome = IngestOutcome(
        rows_read=rows_read,
        rows_written=rows_read - rows_rejected,
        rows_rejected=rows_rejected,
        delta_version=version if version is not None else table_version(session, table_path),
        rejected_version=None,
        table_path=table_path,
        rejected_path=rejected_table_path(table_path),
        mode=REPLACE,
        rows_deleted=deleted,
        committed=version is not None,
    )
    return outcome, (figures.figures(counts) if figures is not None else None)


def _rows_replaced(spark: SparkSession, path: str, version: int, window: Window | None) -> int:
    """Rows of ``window`` in the snapshot the commit ``version`` replaced (0 if it created it).

    Counted at the commit's read version, so a concurrent commit before it cannot skew it.
    Data skipping limits the count to the window's files.
    """
    from delta.tables import DeltaTable

    row = (
        DeltaTable.forPath(spark, path)
        .history()
        .where(F.col("version") == version)
        .select("readVersion")
        .first()
    )
    read_version = None if row is None else row["readVersion"]
    if read_version is None:
        return 0
    bounds = window or Window()
    return read_offline_table(
        spark, path, bounds.start, bounds.end, version=int(read_version)
    ).count()


# --- add mode -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Span:
    """Counts of the checked rows and the valid rows' event-time range (and statistics)."""

    rows: int
    rejected: int
    first_us: int | None
    last_us: int | None
    figures: Mapping[str, Any] | None = None


def _span(checked: CheckedRows, figures: FeatureFigures | None = None) -> _Span:
    """One pass: rows, rejected rows, earliest and latest valid event time; ``figures`` too."""
    valid_us = F.when(F.col(REJECT_REASON).isNull(), F.unix_micros(F.col(EVENT_TIMESTAMP)))
    counts = (
        F.count(F.lit(1)).alias("rows"),
        F.count(F.col(REJECT_REASON)).alias("rejected"),
        F.min(valid_us).alias("first"),
        F.max(valid_us).alias("last"),
    )
    if figures is None:
        row = checked.rows.agg(*counts).first()
        values = {} if row is None else row.asDict()
    else:
        values = figures.aggregate(checked.rows, *counts)
    if not values:  # pragma: no cover - a global aggregate always returns a row
        return _Span(0, 0, None, None)
    return _Span(int(values["rows"]), int(values["rejected"]), values["first"], values["last"],
                 values if figures else None)  # fmt: skip


def _add(
    session: SparkSession,
    checked: CheckedRows,
    span: _Span | None,
    table_path: str,
    job_id: str,
    table: FeatureTable,
    entities: Sequence[Entity],
    retry: RetryPolicy,
    figures: FeatureFigures | None = None,
) -> tuple[IngestOutcome, Mapping[str, Any] | None]:
    """Add mode (module docstring); ``span`` is computed here when a merge needs it.

    Statistics: ``figures`` observed by the first write, which creates the table; else
    computed by the span pass (over the source's valid rows).
    """
    done: dict[str, Any] = {"span": span, "figures": None}

    def attempt() -> int | None:
        if table_version(session, table_path) is None:
            # The first write creates the table, counting as it goes. If another job creates it
            # meanwhile, this write fails or conflicts, and the rows are merged into that table.
            observation = Observation()
            rows = checked.observed(observation, figures).valid()
            try:
                version = _write(session, rows, table_path, Window(), job_id, table=table,
                                 entities=entities, private=True, create_only=True)  # fmt: skip
            except AnalysisException:
                if table_version(session, table_path) is None:
                    raise
            else:
                counts = observation.get
                done["span"] = _Span(int(counts["rows"]), int(counts["rejected"]), None, None)
                done["added"] = int(counts["rows"]) - int(counts["rejected"])
                done["figures"] = None if figures is None else figures.figures(counts)
                return version
        if done["span"] is None or (figures and done["span"].figures is None):
            done["span"] = _span(checked, figures)
        rows_span: _Span = done["span"]
        done["figures"] = rows_span.figures
        done["added"] = 0
        if rows_span.rows == rows_span.rejected:
            return None
        done["added"] = _merge_new_rows(session, checked.valid(), table_path, rows_span, job_id)
        if done["added"] == 0:
            return None
        last = session.conf.get(_LAST_COMMIT, None)
        return None if last in (None, "", "None") else int(str(last))

    version = _retrying(attempt, what=f"add to {table_path}", job_id=job_id, retry=retry)
    final: _Span = done["span"]
    added = int(done["added"])
    outcome = IngestOutcome(
        rows_read=final.rows,
        rows_written=added,
        rows_rejected=final.rejected,
        delta_version=version if version is not None else table_version(session, table_path),
        rejected_version=None,
        table_path=table_path,
        rejected_path=rejected_table_path(table_path),
        mode=ADD,
        rows_present=final.rows - final.rejected - added,
        committed=version is not None,
    )
    return outcome, done["figures"]


def _merge_new_rows(
    spark: SparkSession, rows: DataFrame, path: str, span: _Span, job_id: str
) -> int:
    """``MERGE`` inserting the rows the table does not hold (all columns equal, nulls too).

    The target side is cut to the rows' event-time range, so Delta reads only the files whose
    statistics overlap it. Returns the rows inserted.
    """
    from delta.tables import DeltaTable

    target = DeltaTable.forPath(spark, path)
    schema = target.toDF().schema
    source = _aligned(rows, schema)
    same = [f"t.{quote(c)} <=> s.{quote(c)}" for c in schema.fieldNames()]
    condition = F.expr(" AND ".join(same))
    if span.first_us is not None and span.last_us is not None:
        first, last = (
            F.timestamp_micros(F.lit(span.first_us)),
            F.timestamp_micros(F.lit(span.last_us)),
        )
        time = F.col(f"t.{EVENT_TIMESTAMP}")
        condition = condition & (time >= first) & (time <= last)
    spark.conf.unset(_LAST_COMMIT)
    spark.conf.set(_USER_METADATA, job_id)
    try:
        metrics = (
            target.alias("t")
            .merge(source.alias("s"), condition)
            .whenNotMatchedInsertAll()
            .execute()
            .first()
        )
    finally:
        spark.conf.unset(_USER_METADATA)
    return 0 if metrics is None else int(metrics["num_inserted_rows"])


# --- helpers ------------------------------------------------------------------------------------


def _check_rejected(job_id: str, read: int, rejected: int, max_fraction: float) -> None:
    fraction = rejected / read if read else 0.0
    if fraction > max_fraction:
        raise JobFailedError(
            job_id,
            "FAILED",
            f"{rejected} of {read} rows rejected ({fraction:.2%}), above max_rejected_fraction "
            f"{max_fraction:g}; nothing was committed. Fix the source, or raise the threshold",
        )
