"""Commits of rows to an offline table: one event-time window replaced per commit.

Each write is one atomic Delta commit (``replaceWhere`` on the window), recomputed from its
source and retried when a concurrent job's commit conflicts (:mod:`feast_spark.spark.commit_retry`).
The version a write committed is read from the job's private session, or else from the table
history by the job id each commit carries as ``userMetadata``. What an ingest writes (a window
replaced, or rows added) is :mod:`feast_spark.spark.ingest`; the table's layout and schema are
:mod:`feast_spark.spark.offline_store`.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F  # noqa: N812 (the conventional alias)
from pyspark.sql import types as T  # noqa: N812

from feast_spark.definitions import Entity, FeatureTable
from feast_spark.errors import NotFoundError, SourceSchemaError
from feast_spark.spark.commit_retry import DEFAULT_RETRY, RetryPolicy, _retrying
from feast_spark.spark.identifiers import quote as _quote
from feast_spark.spark.offline_store import (
    _table_properties,
    offline_schema,
    replace_predicate,
    table_version,
)
from feast_spark.specs import Window

# Set by Delta after every commit, per SparkSession.
_LAST_COMMIT = "spark.databricks.delta.lastCommitVersionInSession"


def write_window(
    spark: SparkSession,
    rows: DataFrame,
    path: str,
    window: Window | None,
    job_id: str,
    *,
    retry: RetryPolicy = DEFAULT_RETRY,
) -> int | None:
    """Replace the rows of ``window`` in the offline table at ``path`` with ``rows``.

    Rules:

    - One atomic Delta commit (``replaceWhere``): readers see the old window or the new one,
      never a mix. Running the same window again with the same source leaves the same rows;
      with corrected source data, the window holds exactly the new rows.
    - A window with an open bound replaces everything on that side: with both open, the table
      becomes exactly ``rows``. Ingest therefore calls this with both bounds only (or to create
      a table); without them it adds rows (:mod:`feast_spark.spark.ingest`).
    - Columns of the table that ``rows`` lacks (features removed from the definition) are
      written as null.
    - Commit conflicts with concurrent jobs are retried with backoff (the write is recomputed
      from its source each time); Delta never commits a partial write. On the unpartitioned
      layout every concurrent window write conflicts (Delta checks per partition), so
      concurrent jobs commit one after the other.

    Example (window ``[Jan 2, Jan 3)``)::

        table before     rows           table after
        Jan 1  a=1                      Jan 1  a=1
        Jan 2  a=2   +   Jan 2  a=20 -> Jan 2  a=20
        Jan 3  a=3                      Jan 3  a=3

    Args:
        spark: The session.
        rows: Offline rows (keys, timestamps, features), all inside ``window``.
        path: The table (it must exist: see :func:`ensure_table`).
        window: The event-time window the rows replace.
        job_id: Recorded as the commit's ``userMetadata``.
        retry: Conflict retry policy.

    Returns:
        The Delta version committed; None when there was nothing to commit (no rows written
        into a window that held none: Delta records no empty commit).

    Raises:
        JobFailedError: Concurrent commits kept conflicting through every retry.

    """
    return _retrying(
        lambda: _write(spark, rows, path, window, job_id),
        what=f"write {path}",
        job_id=job_id,
        retry=retry,
    )  # fmt: skip


def _write(
    spark: SparkSession,
    rows: DataFrame,
    path: str,
    window: Window | None,
    job_id: str,
    *,
    table: FeatureTable | None = None,
    entities: Sequence[Entity] = (),
    private: bool = False,
    create_only: bool = False,
) -> int | None:
    """One replaceWhere commit; creates the table (layout and properties) when there is none.

    ``create_only`` writes only if there is no table yet (else Delta raises
    ``AnalysisException``, and a table created concurrently makes the commit conflict): the
    first write of an add-mode ingest, which must never replace another job's rows.

    Creating the table with its first write saves a commit; if two jobs create it at once, one
    gets a conflict and its retry writes into the table the other created. Returns None when
    Delta committed nothing: a window with no rows written over a window with no rows (Delta
    skips empty commits).
    """
    from delta.tables import DeltaTable

    exists = DeltaTable.isDeltaTable(spark, path)
    if exists:
        schema = spark.read.format("delta").load(path).schema
    elif table is not None:
        schema = offline_schema(table, entities)
    else:
        raise NotFoundError("offline table", path, hint="create it first with ensure_table")
    aligned = _aligned(rows, schema)
    mode = "errorifexists" if create_only else "overwrite"
    writer = aligned.write.format("delta").mode(mode).option("userMetadata", job_id)
    if not exists and table is not None:
        for key, value in _table_properties(table).items():
            writer = writer.option(key, value)  # "delta.*" options become table properties
    predicate = replace_predicate(window)
    if predicate is not None:
        writer = writer.option("replaceWhere", predicate)
    before = table_version(spark, path) if exists else None
    if private:
        spark.conf.unset(_LAST_COMMIT)
    writer.save(path)
    return _committed_version(spark, path, job_id, private=private, after=before)


def _aligned(rows: DataFrame, schema: T.StructType) -> DataFrame:
    """``rows`` in the table's column order, with null for the table's columns it lacks."""
    have = set(rows.columns)
    extra = have - set(schema.fieldNames())
    if extra:  # pragma: no cover - ensure_table adds every declared column first
        raise SourceSchemaError("?", ", ".join(sorted(extra)), "is not a column of the table")
    return rows.select(
        *[
            F.col(_quote(f.name)) if f.name in have else F.lit(None).cast(f.dataType).alias(f.name)
            for f in schema.fields
        ]
    )


def _committed_version(
    spark: SparkSession, path: str, job_id: str, *, private: bool, after: int | None = None
) -> int | None:
    """The version just committed by ``job_id`` to ``path``; None when nothing was committed.

    In a private session (see :func:`_private_session`) Delta's own record of the session's last
    commit is exact and free: unset after a write, the write committed nothing (Delta skips
    empty commits). Elsewhere other threads may share the session, so the table history is
    searched for the newest commit carrying ``job_id`` later than version ``after``.
    """
    from delta.tables import DeltaTable

    if private:
        last = spark.conf.get(_LAST_COMMIT, None)
        return None if last in (None, "", "None") else int(str(last))

    history = DeltaTable.forPath(spark, path).history(100).where(F.col("userMetadata") == job_id)
    if after is not None:
        history = history.where(F.col("version") > after)
    row = history.agg(F.max("version").alias("version")).first()
    if row is None or row["version"] is None:
        return None
    return int(row["version"])


def _private_session(spark: SparkSession) -> SparkSession:
    """A child session (same SparkContext) with the caller's SQL settings, for one job's writes.

    Its own SQL conf makes ``lastCommitVersionInSession`` this job's alone, even when several
    jobs run in threads of one session.
    """
    child = spark.newSession()
    for key, value in spark.conf.getAll.items():
        if child.conf.get(key, None) != value and child.conf.isModifiable(key):
            child.conf.set(key, value)
    return child
