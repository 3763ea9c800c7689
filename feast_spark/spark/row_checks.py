"""Turn a source's rows into offline-store rows, rejecting what does not fit, with a reason.

:func:`check_rows` maps, casts and validates every row of the window. Each row either becomes
an offline row or is rejected with a reason; nothing is silently nulled or truncated. Columns
are converted to their declared types by :mod:`feast_spark.spark.conversions` (its table gives
the rules); a missing column or a source type that can never hold the declared type raises
:class:`SourceSchemaError` on the driver, before any Spark action.

Event and created timestamps follow the UNIX_TIMESTAMP rules. A row is also rejected when an
entity key or its event timestamp is null. A null created timestamp (or a source without a
created column) becomes the modification time of the row's source file (the job's start for rows
not read from files), which a rerun over the same files reproduces exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from pyspark.sql import Column, DataFrame, Observation
from pyspark.sql import functions as F  # noqa: N812 (the conventional alias)
from pyspark.sql import types as T  # noqa: N812

from feast_spark.columns import CREATED_TIMESTAMP, EVENT_TIMESTAMP
from feast_spark.definitions import BatchSource, Entity, FeatureTable
from feast_spark.errors import SourceSchemaError
from feast_spark.online.base import to_micros
from feast_spark.spark.conversions import Converted, UnconvertibleError, convert
from feast_spark.spark.identifiers import quote
from feast_spark.spark.literals import timestamp_literal
from feast_spark.spark.schema import find_column
from feast_spark.spark.sources import require_utc_session
from feast_spark.specs import Window
from feast_spark.types import ValueType

if TYPE_CHECKING:
    from feast_spark.spark.feature_statistics import FeatureFigures

# Spark's hidden per-file column of file-based reads (parquet, csv, json, Delta).
_FILE_MODIFICATION_TIME = "_metadata.file_modification_time"

#: Internal columns of :class:`CheckedRows` (the ``_feast_`` prefix keeps them apart from the
#: source's and the table's columns).
REJECT_REASON = "_feast_reject_reason"
SOURCE_ROW = "_feast_source_row"


@dataclass(frozen=True)
class CheckedRows:
    """Every row of a window after mapping and casting, with a reject reason or none.

    Attributes:
        rows: Offline columns (entity keys, ``event_timestamp``, ``created_timestamp``,
            features) plus :data:`REJECT_REASON` (null for a valid row) and :data:`SOURCE_ROW`
            (the raw source row as JSON, only computed for rejected rows).
        columns: The offline columns, in table order.

    """

    rows: DataFrame
    columns: tuple[str, ...]

    def valid(self) -> DataFrame:
        """Rows that passed every check, offline columns only."""
        return self.rows.where(F.col(REJECT_REASON).isNull()).select(*self.columns)

    def rejected(self) -> DataFrame:
        """Rejected rows: ``reason``, ``event_timestamp`` (null if unreadable), ``source_row``."""
        return self.rows.where(F.col(REJECT_REASON).isNotNull()).select(
            F.col(REJECT_REASON).alias("reason"),
            F.col(EVENT_TIMESTAMP),
            F.col(SOURCE_ROW).alias("source_row"),
        )

    def observed(
        self, observation: Observation, figures: FeatureFigures | None = None
    ) -> CheckedRows:
        """The same rows, counting ``rows`` and ``rejected`` into ``observation`` as they pass.

        The counts come from whichever action runs first on the result (e.g. the Delta write),
        so counting costs no extra pass over the source. ``figures`` (feature statistics of the
        valid rows, :func:`~feast_spark.spark.feature_statistics.feature_figures`) are
        collected by the same pass.
        """
        counts = (
            F.count(F.lit(1)).alias("rows"),
            F.count(F.col(REJECT_REASON)).alias("rejected"),
        )
        if figures is None:
            return replace(self, rows=self.rows.observe(observation, *counts))
        return replace(self, rows=figures.observe(self.rows, observation, *counts))

    def count(self) -> tuple[int, int]:
        """``(rows, rejected)`` with one pass over the source."""
        result = self.rows.agg(
            F.count(F.lit(1)).alias("rows"), F.count(F.col(REJECT_REASON)).alias("rejected")
        ).first()
        if result is None:  # pragma: no cover - a global aggregate always returns a row
            return 0, 0
        return int(result["rows"]), int(result["rejected"])


def offline_columns(table: FeatureTable) -> tuple[str, ...]:
    """The offline columns :func:`check_rows` produces, in table order."""
    return (*table.entities, EVENT_TIMESTAMP, CREATED_TIMESTAMP, *table.feature_names)


def check_rows(
    frame: DataFrame,
    table: FeatureTable,
    entities: Sequence[Entity],
    source: BatchSource,
    window: Window | None,
    ingested_at: datetime,
    *,
    latest_event: datetime | None = None,
    landed_at: Column | None = None,
) -> CheckedRows:
    """Map, cast and validate the rows of ``frame`` that fall in ``window``.

    Rules:

    - Feast columns are read from ``source.field_mapping.get(name, name)``; the event and
      created timestamps from the source's timestamp columns.
    - Types are converted per the table of :mod:`feast_spark.spark.conversions`; a value that
      does not fit rejects its row, with a reason naming the column, the value and the problem
      (all problems of a row are joined with ``"; "``).
    - A null entity key or a null or unreadable event timestamp rejects the row, and so does
      an event time later than ``latest_event`` (the job's start plus the configured
      ``future_event_time_allowance``): online, the event time is the write timestamp, so one
      row from the future would hide every correct value of its key until then.
    - Only rows whose event time is in ``[window.start, window.end)`` are kept. A row whose
      event time cannot be read cannot be placed in any window: every run that reads it rejects
      it.
    - ``created_timestamp`` is the source's created column; where the source has none, or its
      value is null, it is when the row's data landed: the modification time of the file it
      was read from (Spark's ``_metadata.file_modification_time``), or ``ingested_at`` for rows
      not read from files. A rerun over the same files then writes the same value, so the
      table ends up identical to the byte, while a corrected file, being newer, gives its rows
      a later created time than the rows it replaces.

    Example (``trips`` declared INT64, window ``[2024-01-01, 2024-01-02)``)::

        source:   driver_id  ts                    trips
                  1          2024-01-01T10:00:00Z  "7"
                  2          2024-01-01T11:00:00Z  "abc"
                  null       2024-01-01T12:00:00Z  "3"
                  3          "yesterday"           "3"
                  4          2024-01-05T00:00:00Z  "1"

        valid:    driver_id  event_timestamp      trips
                  1          2024-01-01 10:00:00  7

        rejected: reason
                  trips: abc is not a valid INT64
                  driver_id: entity key is null
                  event_timestamp (source column ts): yesterday is not an ISO-8601 timestamp

        (driver 4 is outside the window: dropped, not rejected)

    Args:
        frame: Raw source rows, as :func:`~feast_spark.spark.sources.read_source` gives them.
        table: The feature table.
        entities: The table's entities (others are ignored).
        source: The source definition (mapping, timestamp columns and format).
        window: Event-time window; None or open bounds for no limit.
        ingested_at: The job's start (aware): the created timestamp of rows with none that were
            not read from files.
        latest_event: The latest event time accepted (None: no limit).
        landed_at: When each row's data landed, for rows without a created time, instead of
            its file's modification time (a stream gives each message's Kafka timestamp).

    Returns:
        The checked rows; see :class:`CheckedRows` for the valid and rejected views.

    Raises:
        SourceSchemaError: A column is missing, or its source type can never hold the declared
            type. Raised before any Spark action.
        ConfigError: The Spark session's time zone is not UTC (strings, dates and
            ``timestamp_ntz`` values without an offset would be misread).

    """
    require_utc_session(frame.sparkSession)
    landed = _landed_at(frame, ingested_at) if landed_at is None else landed_at
    plan = check_plan(frame.schema, frame.columns, table, entities, source, window,
                      landed_at=landed, latest_event=latest_event)  # fmt: skip
    return plan.apply(frame)


@dataclass(frozen=True)
class CheckPlan:
    """The checks of :func:`check_rows` as columns, for any frame of one source schema.

    Each of the few hundred ``Column`` objects of a table's checks costs a call to the JVM, more
    than checking a small batch: a stream builds its plan once and applies it to every
    micro-batch (see :func:`check_plan`).

    Attributes:
        converted: The converted values, one reason per check, and the raw row.
        in_window: Keeps the rows of the window (None: every row).
        checked: The offline columns, the joined reason and the raw row as JSON.
        columns: The offline columns, in table order.
    """

    converted: tuple[Column, ...]
    in_window: Column | None
    checked: tuple[Column, ...]
    columns: tuple[str, ...]

    def apply(self, frame: DataFrame) -> CheckedRows:
        """The checked rows of ``frame`` (of the schema the plan was built for)."""
        converted_rows = frame.select(*self.converted)
        if self.in_window is not None:
            converted_rows = converted_rows.where(self.in_window)
        return CheckedRows(converted_rows.select(*self.checked), self.columns)


def check_plan(
    schema: T.StructType,
    raw_columns: Sequence[str],
    table: FeatureTable,
    entities: Sequence[Entity],
    source: BatchSource,
    window: Window | None,
    *,
    landed_at: Column,
    latest_event: datetime | Column | None = None,
) -> CheckPlan:
    """The checks of :func:`check_rows` (its rules) for rows of ``schema``.

    Args:
        schema: The source rows' schema.
        raw_columns: The columns a rejected row's ``source_row`` holds.
        table: The feature table.
        entities: The table's entities.
        source: The source definition (mapping, timestamp columns and format).
        window: Event-time window; None or open bounds for no limit.
        landed_at: When each row's data landed (the created time of rows without one).
        latest_event: The latest event time accepted: an instant, or a column of microseconds
            since the epoch (a stream's plan outlives each batch's bound); None: no limit.

    Raises:
        SourceSchemaError: A column is missing, or its source type can never hold the declared
            type.
    """
    by_name = {entity.name: entity for entity in entities}
    outputs: list[tuple[str, Converted]] = []
    for name in table.entities:
        entity = by_name.get(name)
        if entity is None:
            raise SourceSchemaError(
                table.name, name, "is an entity of the table but its definition was not given"
            )
        converted = _column(table, source, schema, name, source.source_column(name),
                            entity.value_type)  # fmt: skip
        label = _label(name, source.source_column(name))
        outputs.append((name, converted.required(f"{label}: entity key is null")))
    event = _column(table, source, schema, EVENT_TIMESTAMP, source.event_timestamp_column,
                    ValueType.UNIX_TIMESTAMP)  # fmt: skip
    label = _label(EVENT_TIMESTAMP, source.event_timestamp_column)
    event = event.required(f"{label}: is null")
    if latest_event is not None:
        latest = (
            F.lit(to_micros(latest_event)) if isinstance(latest_event, datetime) else latest_event
        )
        event = _no_later_than(event, latest, label)
    outputs.append((EVENT_TIMESTAMP, event))
    if source.created_timestamp_column:
        created = _column(table, source, schema, CREATED_TIMESTAMP,
                          source.created_timestamp_column, ValueType.UNIX_TIMESTAMP)  # fmt: skip
        outputs.append(
            (CREATED_TIMESTAMP, Converted(F.coalesce(created.value, landed_at), created.reason))
        )
    else:
        outputs.append((CREATED_TIMESTAMP, Converted(landed_at, None)))
    for feature in table.features:
        outputs.append(
            (feature.name, _column(table, source, schema, feature.name,
                                   source.source_column(feature.name), feature.dtype))
        )  # fmt: skip

    reasons = [conv.reason for _, conv in outputs if conv.reason is not None]
    reason_parts = [r.alias(f"_feast_r{i}") for i, r in enumerate(reasons)]
    raw = F.struct(*[F.col(quote(name)) for name in raw_columns]).alias("_feast_raw")
    values = (*[conv.value.alias(name) for name, conv in outputs], *reason_parts, raw)
    in_window = _window_predicate(F.col(EVENT_TIMESTAMP), window)
    if in_window is not None:
        # Unplaceable rows (no event time) stay, to be rejected; others outside are dropped.
        in_window = F.col(EVENT_TIMESTAMP).isNull() | in_window
    joined = F.concat_ws("; ", *[F.col(f"_feast_r{i}") for i in range(len(reasons))])
    reason = F.when(F.length(joined) > 0, joined)
    columns = offline_columns(table)
    checked = (
        *[F.col(quote(c)) for c in columns],
        reason.alias(REJECT_REASON),
        # Only rejected rows pay for the JSON; valid() prunes the column altogether.
        F.when(reason.isNotNull(), F.to_json(F.col("_feast_raw"))).alias(SOURCE_ROW),
    )
    return CheckPlan(values, in_window, checked, columns)


def event_bound(latest: datetime) -> Column:
    """``latest`` as a ``latest_event`` column for :func:`check_plan` that keeps Spark's code.

    Microseconds since the epoch as a DECIMAL literal: Spark writes a BIGINT or TIMESTAMP
    literal into the generated Java code, so a bound that changes with every stream micro-batch
    made Spark compile the batch's check stage again (0.1-0.2 s a batch); a DECIMAL literal is
    passed to the code as an object, and the check compares through a difference (see
    :func:`_no_later_than`).
    """
    return F.lit(Decimal(to_micros(latest)))


def _no_later_than(event: Converted, latest_micros: Column, label: str) -> Converted:
    """``event``, also rejecting times after ``latest_micros`` (the reason says why and the fix)."""
    latest = F.timestamp_micros(latest_micros.cast("bigint"))
    late = F.when(
        # A difference, not a comparison: Spark would turn a comparison with a DECIMAL literal
        # into one with a BIGINT literal (see event_bound).
        F.unix_micros(event.value) - latest_micros > 0,
        F.concat(
            F.lit(f"{label}: "),
            event.value.cast("string"),
            F.lit(" is later than "),
            # The session's time zone is UTC (check_rows requires it).
            F.date_format(latest, "yyyy-MM-dd HH:mm:ss"),
            F.lit(
                " UTC (the job's start plus future_event_time_allowance): a future event time "
                "would hide every later value of its key online. Fix the time, or raise "
                "future_event_time_allowance"
            ),
        ),
    )
    return Converted(event.value, late if event.reason is None else F.coalesce(event.reason, late))


def _landed_at(frame: DataFrame, ingested_at: datetime) -> Column:
    """When each row's data landed: its file's modification time, else ``ingested_at``."""
    from pyspark.errors import AnalysisException

    landed = F.col(_FILE_MODIFICATION_TIME)
    try:
        frame.select(landed).schema.fields  # noqa: B018 (analysis: is the hidden column there?)
    except AnalysisException:  # not read from files (an in-memory or derived frame)
        return timestamp_literal(ingested_at)
    return landed


def _column(
    table: FeatureTable,
    source: BatchSource,
    schema: T.StructType,
    feast_name: str,
    source_name: str,
    target: ValueType,
) -> Converted:
    field = find_column(schema, source_name)
    if field is None:
        mapped = f" (mapped from {feast_name})" if source_name != feast_name else ""
        raise SourceSchemaError(
            table.name,
            source_name,
            f"{mapped} is missing from the source {source.path}; its columns are "
            f"{', '.join(schema.fieldNames())}. Add it, or map it with field_mapping".lstrip(),
        )
    label = _label(feast_name, source_name)
    try:
        return convert(
            F.col(quote(field.name)), field.dataType, target, source.timestamp_format, label
        )
    except UnconvertibleError as problem:
        raise SourceSchemaError(
            table.name,
            source_name,
            f"is {field.dataType.simpleString()} in the source, declared {target.value}: {problem}",
        ) from None


def _label(feast_name: str, source_name: str) -> str:
    """How a reason names a column: ``trips``, or ``trips (source column trip_count)``."""
    if source_name == feast_name:
        return feast_name
    return f"{feast_name} (source column {source_name})"


def _window_predicate(column: Column, window: Window | None) -> Column | None:
    if window is None:
        return None
    predicate: Column | None = None
    if window.start is not None:
        predicate = column >= timestamp_literal(window.start)
    if window.end is not None:
        upper = column < timestamp_literal(window.end)
        predicate = upper if predicate is None else predicate & upper
    return predicate
