"""Read a batch source and turn its rows into offline-store rows, rejecting what does not fit.

Two steps, both pure functions of DataFrames:

1. :func:`read_source` reads a :class:`~feast_spark.definitions.BatchSource` (parquet, csv, json
   or Delta; a path or glob on any Hadoop URI), pruning files by ``date_partition_column`` when a
   window is given.
2. :func:`check_rows` maps, casts and validates every row of the window. Each row either becomes
   an offline row or is rejected with a reason; nothing is silently nulled or truncated.

The schema is checked first, on the driver, before any Spark action: a missing column or a
source type that can never hold the declared type raises :class:`SourceSchemaError`. Strings
for numeric, boolean or timestamp features are *not* a schema error: csv and json sources
deliver strings, and one bad cell should cost one row (rejected, with its reason), not the job.

Conversion rules (source Spark type -> declared ValueType):

=====================  ===================  ==================================================
declared               source type          rule
=====================  ===================  ==================================================
INT32, INT64           narrower integer     widened (exact)
INT32                  bigint               kept if within INT32's range, else rejected
INT32, INT64           float, double,       kept if a whole number within range (``3.0`` ->
                       decimal              3), else rejected (``3.5``, ``NaN``, ``1e30``)
INT32, INT64           string               parsed as an integer literal, else rejected
DOUBLE                 integer, float       exact; a bigint beyond 2^53 that a double cannot
                                            hold exactly is rejected
FLOAT                  integer              kept if a float holds it exactly, else rejected
DOUBLE, FLOAT          double, decimal      rounded to the nearest representable value (what
                                            declaring a floating type asks for); a finite
                                            value beyond FLOAT's range is rejected
DOUBLE, FLOAT          string               parsed as a number, else rejected
BOOL                   string               true/false, t/f, yes/no, y/n, 1/0, else rejected
BOOL                   integer              0 or 1, else rejected
STRING                 integer, decimal,    their exact text
                       boolean
BYTES                  binary               as is
UNIX_TIMESTAMP         timestamp            as is; timestamp_ntz and date are read as UTC
UNIX_TIMESTAMP         string               ISO-8601 (``2024-01-01T10:00:00Z``, ``+02:00``
                                            offsets; no offset means UTC), else rejected; or
                                            a number when ``timestamp_format`` is ``epoch_*``
UNIX_TIMESTAMP         number               epoch seconds/millis/micros per
                                            ``timestamp_format`` (required); outside years
                                            0001-9999 rejected
``*_LIST``             array                element by element with the rules above; one bad
                                            element rejects the row
=====================  ===================  ==================================================

Everything else (e.g. a struct for DOUBLE, a double for STRING, a bigint timestamp without an
``epoch_*`` format) is a :class:`SourceSchemaError`. Timestamps keep microseconds (the store's
resolution): finer digits in a string or a fractional epoch are dropped or rounded.

Event and created timestamps follow the UNIX_TIMESTAMP rules. A row is also rejected when an
entity key or its event timestamp is null. A null created timestamp (or a source without a
created column) becomes the modification time of the row's source file (the job's start for rows
not read from files), which a rerun over the same files reproduces exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F  # noqa: N812 (the conventional alias)
from pyspark.sql import types as T  # noqa: N812

from feast_spark.definitions import BatchSource, DeltaSource, Entity, FeatureTable, FileSource
from feast_spark.errors import ConfigError, SourceSchemaError
from feast_spark.spark.identifiers import quote
from feast_spark.spark.literals import date_literal, timestamp_literal
from feast_spark.specs import Window
from feast_spark.types import ValueType

# Spark's hidden per-file column of file-based reads (parquet, csv, json, Delta).
_FILE_MODIFICATION_TIME = "_metadata.file_modification_time"

EVENT_TIMESTAMP = "event_timestamp"
CREATED_TIMESTAMP = "created_timestamp"

#: Internal columns of :class:`CheckedRows` (the ``_feast_`` prefix keeps them apart from the
#: source's and the table's columns).
REJECT_REASON = "_feast_reject_reason"
SOURCE_ROW = "_feast_source_row"

#: Columns of :meth:`CheckedRows.rejected`.
REJECTED_COLUMNS = ("reason", EVENT_TIMESTAMP, "source_row")

# The instants a Spark timestamp can hold: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999Z.
_MIN_MICROS = -62_135_596_800_000_000
_MAX_MICROS = 253_402_300_799_999_999
_EPOCH_FACTORS = {"epoch_seconds": 1_000_000, "epoch_millis": 1_000, "epoch_micros": 1}
# Decimal type wide enough for any in-range epoch value of that unit, with sub-microsecond digits.
_EPOCH_DECIMALS = {
    "epoch_seconds": "decimal(21,9)",
    "epoch_millis": "decimal(24,9)",
    "epoch_micros": "decimal(27,9)",
}
_FLOAT_MAX = 3.4028234663852886e38
_INTEGRAL_BITS: dict[type[T.DataType], int] = {
    T.ByteType: 8,
    T.ShortType: 16,
    T.IntegerType: 32,
    T.LongType: 64,
}
_UTC_ZONES = frozenset({"UTC", "Etc/UTC", "GMT", "Etc/GMT", "Z", "+00:00", "Zulu", "UCT"})


def read_source(
    spark: SparkSession,
    source: BatchSource,
    window: Window | None = None,
    *,
    table_name: str = "?",
) -> DataFrame:
    """Read a batch source, pruning partitions outside ``window`` when the source allows it.

    Rules:

    - ``FileSource``: ``spark.read`` with its ``file_format`` and ``options`` on its path or glob
      (any Hadoop URI). csv defaults to ``header=true`` unless the options say otherwise.
    - ``DeltaSource``: read at one version, pinned here (``versionAsOf`` in ``options`` wins), so
      that every pass of the job sees the same snapshot.
    - With a window and a ``date_partition_column``, only partitions whose date lies within the
      window, widened by one day on each side, are read: the partition date may be a local date,
      and no time zone is more than 14 hours from UTC. Partitions whose value is not a date are
      read too (never lose a row to pruning). Rows are cut to the exact window later, by event
      time, in :func:`check_rows`.

    Example (window ``[2024-01-02, 2024-01-03)``, ``date_partition_column="dt"``)::

        files read:  dt=2024-01-01/  dt=2024-01-02/  dt=2024-01-03/
        not read:    dt=2023-12-30/  dt=2024-01-05/

    Args:
        spark: The session.
        source: Where the rows are.
        window: Event-time window, for partition pruning only.
        table_name: The feature table being loaded, for error messages.

    Returns:
        The raw rows, source column names and types.

    Raises:
        SourceSchemaError: ``date_partition_column`` is not a column of the source.

    """
    options = dict(source.options)
    if isinstance(source, DeltaSource):
        if "versionAsOf" not in options and "timestampAsOf" not in options:
            options["versionAsOf"] = str(_latest_delta_version(spark, source.path))
        frame = spark.read.format("delta").options(**options).load(source.path)
    elif isinstance(source, FileSource):
        if source.file_format == "csv":
            options.setdefault("header", "true")
        frame = spark.read.format(source.file_format).options(**options).load(source.path)
    else:  # pragma: no cover - BatchSource has exactly these two kinds
        raise TypeError(f"unknown source kind {type(source).__name__}")
    if window is not None and source.date_partition_column:
        if _find_column(frame.schema, source.date_partition_column) is None:
            raise SourceSchemaError(
                table_name,
                source.date_partition_column,
                f"(date_partition_column) is missing from the source {source.path}; its "
                f"columns are {', '.join(frame.columns)}",
            )
        predicate = _partition_predicate(_col(source.date_partition_column), window)
        if predicate is not None:
            frame = frame.where(predicate)
    return frame


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

    def observed(self, observation: Observation) -> CheckedRows:
        """The same rows, counting ``rows`` and ``rejected`` into ``observation`` as they pass.

        The counts come from whichever action runs first on the result (e.g. the Delta write),
        so counting costs no extra pass over the source.
        """
        counted = self.rows.observe(
            observation,
            F.count(F.lit(1)).alias("rows"),
            F.count(F.col(REJECT_REASON)).alias("rejected"),
        )
        return replace(self, rows=counted)

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
) -> CheckedRows:
    """Map, cast and validate the rows of ``frame`` that fall in ``window``.

    Rules:

    - Feast columns are read from ``source.field_mapping.get(name, name)``; the event and
      created timestamps from the source's timestamp columns.
    - Types are converted per the module's table; a value that does not fit rejects its row,
      with a reason naming the column, the value and the problem (all problems of a row are
      joined with ``"; "``).
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
        frame: Raw source rows, as :func:`read_source` returns them.
        table: The feature table.
        entities: The table's entities (others are ignored).
        source: The source definition (mapping, timestamp columns and format).
        window: Event-time window; None or open bounds for no limit.
        ingested_at: The job's start (aware): the created timestamp of rows with none that were
            not read from files.
        latest_event: The latest event time accepted (None: no limit).

    Returns:
        The checked rows; see :class:`CheckedRows` for the valid and rejected views.

    Raises:
        SourceSchemaError: A column is missing, or its source type can never hold the declared
            type. Raised before any Spark action.
        ConfigError: The Spark session's time zone is not UTC (strings, dates and
            ``timestamp_ntz`` values without an offset would be misread).

    """
    require_utc_session(frame.sparkSession)
    schema = frame.schema
    by_name = {entity.name: entity for entity in entities}
    outputs: list[tuple[str, _Converted]] = []
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
        event = _no_later_than(event, latest_event, label)
    outputs.append((EVENT_TIMESTAMP, event))
    fallback = _landed_at(frame, ingested_at)
    if source.created_timestamp_column:
        created = _column(table, source, schema, CREATED_TIMESTAMP,
                          source.created_timestamp_column, ValueType.UNIX_TIMESTAMP)  # fmt: skip
        outputs.append(
            (CREATED_TIMESTAMP, _Converted(F.coalesce(created.value, fallback), created.reason))
        )
    else:
        outputs.append((CREATED_TIMESTAMP, _Converted(fallback, None)))
    for feature in table.features:
        outputs.append(
            (feature.name, _column(table, source, schema, feature.name,
                                   source.source_column(feature.name), feature.dtype))
        )  # fmt: skip

    reasons = [conv.reason for _, conv in outputs if conv.reason is not None]
    reason_parts = [r.alias(f"_feast_r{i}") for i, r in enumerate(reasons)]
    raw = F.struct(*[_col(name) for name in frame.columns]).alias("_feast_raw")
    converted_rows = frame.select(
        *[conv.value.alias(name) for name, conv in outputs], *reason_parts, raw
    )
    in_window = _window_predicate(F.col(EVENT_TIMESTAMP), window)
    if in_window is not None:
        # Unplaceable rows (no event time) stay, to be rejected; others outside are dropped.
        converted_rows = converted_rows.where(F.col(EVENT_TIMESTAMP).isNull() | in_window)
    joined = F.concat_ws("; ", *[F.col(f"_feast_r{i}") for i in range(len(reasons))])
    reason = F.when(F.length(joined) > 0, joined)
    columns = offline_columns(table)
    rows = converted_rows.select(
        *columns,
        reason.alias(REJECT_REASON),
        # Only rejected rows pay for the JSON; valid() prunes the column altogether.
        F.when(reason.isNotNull(), F.to_json(F.col("_feast_raw"))).alias(SOURCE_ROW),
    )
    return CheckedRows(rows, columns)


def _no_later_than(event: _Converted, latest: datetime, label: str) -> _Converted:
    """``event``, also rejecting times after ``latest`` (the reason says why and what to do)."""
    late = F.when(
        event.value > timestamp_literal(latest),
        F.concat(
            F.lit(f"{label}: "),
            event.value.cast("string"),
            F.lit(
                f" is later than {latest.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC (the job's start "
                "plus future_event_time_allowance): a future event time would hide every later "
                "value of its key online. Fix the time, or raise future_event_time_allowance"
            ),
        ),
    )
    return _Converted(event.value, late if event.reason is None else F.coalesce(event.reason, late))


def _landed_at(frame: DataFrame, ingested_at: datetime) -> Column:
    """When each row's data landed: its file's modification time, else ``ingested_at``."""
    from pyspark.errors import AnalysisException

    landed = F.col(_FILE_MODIFICATION_TIME)
    try:
        frame.select(landed).schema.fields  # noqa: B018 (analysis: is the hidden column there?)
    except AnalysisException:  # not read from files (an in-memory or derived frame)
        return timestamp_literal(ingested_at)
    return landed


def to_offline_rows(
    frame: DataFrame,
    table: FeatureTable,
    entities: Sequence[Entity],
    source: BatchSource,
    window: Window | None,
    ingested_at: datetime,
) -> tuple[DataFrame, DataFrame]:
    """``(valid rows, rejected rows)`` of :func:`check_rows`, for callers that need no counts.

    Example (``trips`` declared INT64)::

        driver_id  ts                    trips
        1          2024-01-01T10:00:00Z  "7"     ->  valid:    1  2024-01-01 10:00:00  ...  7
        2          2024-01-01T11:00:00Z  "x"         rejected: trips: x is not a valid INT64
    """
    checked = check_rows(frame, table, entities, source, window, ingested_at)
    return checked.valid(), checked.rejected()


def convert_column(
    owner: str, schema: T.StructType, name: str, target: ValueType, timestamp_format: str = "native"
) -> tuple[Column, Column | None]:
    """One column converted to ``target`` by the rules above, for frames other than sources.

    Returns:
        ``(value, reason)``: the converted column and, when the conversion can fail per row, a
        column holding why it failed for that row (null where it did not).

    Raises:
        SourceSchemaError: The column is missing, or its type can never hold ``target``.
    """
    field = _find_column(schema, name)
    if field is None:
        raise SourceSchemaError(
            owner, name, f"is missing; the columns are {', '.join(schema.fieldNames())}"
        )
    try:
        converted = _convert(_col(field.name), field.dataType, target, timestamp_format, name)
    except _UnconvertibleError as problem:
        raise SourceSchemaError(
            owner, name, f"is {field.dataType.simpleString()}, declared {target.value}: {problem}"
        ) from None
    return converted.value, converted.reason


# --- conversions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Converted:
    """A converted column and, when the conversion can fail per row, why it failed (or null)."""

    value: Column
    reason: Column | None

    def required(self, message: str) -> _Converted:
        """The same, also rejecting nulls with ``message``."""
        null = F.when(self.value.isNull(), F.lit(message))
        return _Converted(
            self.value, null if self.reason is None else F.coalesce(self.reason, null)
        )


class _UnconvertibleError(Exception):
    """A source type that can never hold the declared type (turned into SourceSchemaError)."""


def _column(
    table: FeatureTable,
    source: BatchSource,
    schema: T.StructType,
    feast_name: str,
    source_name: str,
    target: ValueType,
) -> _Converted:
    field = _find_column(schema, source_name)
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
        return _convert(_col(field.name), field.dataType, target, source.timestamp_format, label)
    except _UnconvertibleError as problem:
        raise SourceSchemaError(
            table.name,
            source_name,
            f"is {field.dataType.simpleString()} in the source, declared {target.value}: {problem}",
        ) from None


def _convert(
    column: Column, dtype: T.DataType, target: ValueType, timestamp_format: str, label: str
) -> _Converted:
    if target.is_list:
        if not isinstance(dtype, T.ArrayType):
            raise _UnconvertibleError("a list type needs an array column")
        element = _convert(F.lit(None), dtype.elementType, target.element, timestamp_format, label)
        if element.reason is None and _same_type(dtype.elementType, target.element):
            return _Converted(column, None)

        def convert(item: Column) -> _Converted:
            return _convert(item, dtype.elementType, target.element, timestamp_format, label)

        value = F.transform(column, lambda item: convert(item).value)
        if element.reason is None:
            return _Converted(value, None)
        bad = F.exists(column, lambda item: _reason_of(convert(item)).isNotNull())
        message = _message(
            label, column, f"has an element that is not a valid {target.element.value}"
        )
        return _Converted(F.when(~bad, value), F.when(bad, message))
    if isinstance(dtype, T.ArrayType | T.MapType | T.StructType):
        raise _UnconvertibleError("no value of that type can be a single value")
    converter = _SCALAR_CONVERTERS[target.element]
    return converter(column, dtype, target, timestamp_format, label)


def _reason_of(converted: _Converted) -> Column:
    return converted.reason if converted.reason is not None else F.lit(None).cast("string")


def _same_type(dtype: T.DataType, target: ValueType) -> bool:
    return dtype.simpleString() == target.spark_ddl


def _to_integer(
    column: Column, dtype: T.DataType, target: ValueType, _fmt: str, label: str
) -> _Converted:
    bits = 32 if target is ValueType.INT32 else 64
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    ddl = target.spark_ddl
    source_bits = _INTEGRAL_BITS.get(type(dtype))
    if source_bits is not None:
        if source_bits <= bits:
            return _Converted(column.cast(ddl), None)
        fits = column.between(low, high)
        return _Converted(
            F.when(fits, column.cast(ddl)),
            F.when(~fits, _message(label, column, f"is out of {target.value}'s range")),
        )
    if isinstance(dtype, T.FloatType | T.DoubleType | T.DecimalType):
        # x % 1 is NaN for NaN and infinities, so they are not whole numbers either.
        whole = (column % 1) == 0
        in_range = (column >= F.lit(low)) & (column <= F.lit(high))
        return _Converted(
            F.when(whole & in_range, column.cast(ddl)),
            F.when(~whole, _message(label, column, f"is not a whole number ({target.value})")).when(
                ~in_range, _message(label, column, f"is out of {target.value}'s range")
            ),
        )
    if isinstance(dtype, T.StringType):
        return _parsed(column, column.try_cast(ddl), label, f"is not a valid {target.value}")
    raise _UnconvertibleError(f"use an integer, whole-number or string column for {target.value}")


def _to_floating(
    column: Column, dtype: T.DataType, target: ValueType, _fmt: str, label: str
) -> _Converted:
    ddl = target.spark_ddl
    is_float = target is ValueType.FLOAT
    source_bits = _INTEGRAL_BITS.get(type(dtype))
    if source_bits is not None:
        mantissa = 24 if is_float else 53
        if source_bits <= mantissa:
            return _Converted(column.cast(ddl), None)
        # Exact when a float/double holds the same integer (checked in decimal, losslessly).
        exact = column.between(-(2**mantissa), 2**mantissa) | (
            column.cast(ddl).cast("decimal(20,0)") == column.cast("decimal(20,0)")
        )
        return _Converted(
            F.when(exact, column.cast(ddl)),
            F.when(~exact, _message(label, column, f"cannot be held exactly by a {target.value}")),
        )
    if isinstance(dtype, T.FloatType) or (isinstance(dtype, T.DoubleType) and not is_float):
        return _Converted(column.cast(ddl), None)
    if isinstance(dtype, T.DecimalType):
        return _Converted(column.cast(ddl), None)  # |decimal| < 1e38 fits both, rounded
    if isinstance(dtype, T.DoubleType):
        return _double_to_float(column, label)
    if isinstance(dtype, T.StringType):
        parsed = _parsed(column, column.try_cast("double"), label, f"is not a valid {target.value}")
        if not is_float:
            return parsed
        narrowed = _double_to_float(parsed.value, label)
        return _Converted(narrowed.value, F.coalesce(_reason_of(parsed), _reason_of(narrowed)))
    raise _UnconvertibleError(f"use a numeric or string column for {target.value}")


def _double_to_float(column: Column, label: str) -> _Converted:
    fits = F.isnan(column) | (F.abs(column) <= _FLOAT_MAX) | (F.abs(column) == float("inf"))
    return _Converted(
        F.when(fits, column.cast("float")),
        F.when(~fits, _message(label, column, "is out of FLOAT's range")),
    )


def _to_bool(
    column: Column, dtype: T.DataType, target: ValueType, _fmt: str, label: str
) -> _Converted:
    if isinstance(dtype, T.BooleanType):
        return _Converted(column, None)
    if isinstance(dtype, T.StringType):
        return _parsed(column, column.try_cast("boolean"), label, "is not a valid BOOL")
    if type(dtype) in _INTEGRAL_BITS:
        fits = column.isin(0, 1)
        return _Converted(
            F.when(fits, column == 1),
            F.when(~fits, _message(label, column, "is not a valid BOOL (0 or 1)")),
        )
    raise _UnconvertibleError("use a boolean, 0/1 integer or string column for BOOL")


def _to_string(
    column: Column, dtype: T.DataType, target: ValueType, _fmt: str, label: str
) -> _Converted:
    if isinstance(dtype, T.StringType):
        return _Converted(column, None)
    if type(dtype) in _INTEGRAL_BITS or isinstance(dtype, T.DecimalType | T.BooleanType):
        return _Converted(column.cast("string"), None)
    raise _UnconvertibleError(
        "only strings, integers, decimals and booleans have one exact text; convert it in the "
        "source"
    )


def _to_bytes(
    column: Column, dtype: T.DataType, target: ValueType, _fmt: str, label: str
) -> _Converted:
    if isinstance(dtype, T.BinaryType):
        return _Converted(column, None)
    raise _UnconvertibleError("use a binary column for BYTES")


def _to_timestamp(
    column: Column, dtype: T.DataType, target: ValueType, fmt: str, label: str
) -> _Converted:
    if isinstance(dtype, T.TimestampType):
        return _Converted(column, None)
    if isinstance(dtype, T.TimestampNTZType | T.DateType):
        return _Converted(column.cast("timestamp"), None)  # wall clock read as UTC
    is_number = type(dtype) in _INTEGRAL_BITS or isinstance(
        dtype, T.FloatType | T.DoubleType | T.DecimalType
    )
    if isinstance(dtype, T.StringType) and fmt not in _EPOCH_FACTORS:
        return _parsed(column, column.try_cast("timestamp"), label, "is not an ISO-8601 timestamp")
    if not (is_number or isinstance(dtype, T.StringType)):
        raise _UnconvertibleError("use a timestamp, date, ISO-8601 string or epoch number column")
    if fmt not in _EPOCH_FACTORS:
        raise _UnconvertibleError(
            f"numbers need timestamp_format epoch_seconds, epoch_millis or epoch_micros "
            f"(the source says '{fmt}')"
        )
    factor = _EPOCH_FACTORS[fmt]
    unit = fmt.removeprefix("epoch_")
    if type(dtype) in _INTEGRAL_BITS:
        # Range-check before multiplying: an overflowing bigint product fails the job in ANSI.
        low, high = -(-_MIN_MICROS // factor), _MAX_MICROS // factor
        fits = column.between(low, high)
        return _Converted(
            F.when(fits, F.timestamp_micros(column.cast("bigint") * F.lit(factor))),
            F.when(~fits, _message(label, column, f"is not an epoch in {unit} of years 1-9999")),
        )
    # Fractional epochs and numeric strings: exact decimal arithmetic, rounded to microseconds.
    number = column.try_cast(_EPOCH_DECIMALS[fmt])
    micros = F.round(number * F.lit(factor), 0)
    fits = micros.between(_MIN_MICROS, _MAX_MICROS)
    good = number.isNotNull() & fits
    return _Converted(
        F.when(good, F.timestamp_micros(micros.cast("bigint"))),
        F.when(
            column.isNotNull() & ~F.coalesce(good, F.lit(False)),
            _message(label, column, f"is not an epoch in {unit} of years 1-9999"),
        ),
    )


_SCALAR_CONVERTERS: dict[ValueType, Callable[[Column, T.DataType, ValueType, str, str], _Converted]]
_SCALAR_CONVERTERS = {
    ValueType.INT32: _to_integer,
    ValueType.INT64: _to_integer,
    ValueType.DOUBLE: _to_floating,
    ValueType.FLOAT: _to_floating,
    ValueType.BOOL: _to_bool,
    ValueType.STRING: _to_string,
    ValueType.BYTES: _to_bytes,
    ValueType.UNIX_TIMESTAMP: _to_timestamp,
}


def _parsed(column: Column, parsed: Column, label: str, problem: str) -> _Converted:
    """A parse that yields null on failure: a non-null input with a null result is rejected."""
    return _Converted(
        parsed, F.when(column.isNotNull() & parsed.isNull(), _message(label, column, problem))
    )


def _message(label: str, column: Column, problem: str) -> Column:
    shown = column.cast("string")
    return F.concat(F.lit(f"{label}: "), F.coalesce(shown, F.lit("null")), F.lit(f" {problem}"))


# --- helpers ----------------------------------------------------------------------------------


def _col(name: str) -> Column:
    """A column by its literal name (dots and spaces are not nested fields here)."""
    return F.col(quote(name))


def _find_column(schema: T.StructType, name: str) -> T.StructField | None:
    """Exact match first, then a unique case-insensitive one (Spark resolves names that way)."""
    for field in schema.fields:
        if field.name == name:
            return field
    matches = [f for f in schema.fields if f.name.lower() == name.lower()]
    return matches[0] if len(matches) == 1 else None


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


def _partition_predicate(column: Column, window: Window) -> Column | None:
    """Partitions that may hold rows of ``window``: one day of slack each side, non-dates kept."""
    day = column.try_cast("date")
    predicate: Column | None = None
    if window.start is not None:
        first = window.start.astimezone(UTC).date() - timedelta(days=1)
        predicate = day >= date_literal(first)
    if window.end is not None:
        last = (window.end.astimezone(UTC) - timedelta(microseconds=1)).date() + timedelta(days=1)
        upper = day <= date_literal(last)
        predicate = upper if predicate is None else predicate & upper
    return None if predicate is None else day.isNull() | predicate


def _latest_delta_version(spark: SparkSession, path: str) -> int:
    from delta.tables import DeltaTable

    row = DeltaTable.forPath(spark, path).history(1).select("version").first()
    return int(row["version"]) if row is not None else 0


def require_utc_session(spark: SparkSession) -> None:
    """Raise ConfigError unless the session time zone is UTC (dates and zone-less times use it)."""
    zone = spark.conf.get("spark.sql.session.timeZone") or ""
    if zone not in _UTC_ZONES:
        raise ConfigError(
            "spark.sql.session.timeZone",
            zone,
            "Spark session",
            "must be UTC (conf/spark-defaults.conf sets it): timestamps without an offset, "
            "dates and timestamp_ntz values are read in the session time zone",
        )
