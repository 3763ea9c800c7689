"""Convert one Spark column to its declared ValueType: exactly, or with a reason per row.

A conversion gives the converted column and, when it can fail per row, a column saying why it
failed for that row (null where it did not); nothing is silently nulled or truncated. A source
type that can never hold the declared type is known from the schema alone, before any Spark
action: :func:`convert_column` raises :class:`SourceSchemaError` for it. Strings for numeric,
boolean or timestamp features are *not* a schema error: csv and json sources deliver strings,
and one bad cell should cost one row (rejected, with its reason), not the job.

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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import Column
from pyspark.sql import functions as F  # noqa: N812 (the conventional alias)
from pyspark.sql import types as T  # noqa: N812

from feast_spark.errors import SourceSchemaError
from feast_spark.spark.identifiers import quote
from feast_spark.spark.schema import find_column
from feast_spark.types import ValueType

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


def convert_column(
    owner: str, schema: T.StructType, name: str, target: ValueType, timestamp_format: str = "native"
) -> tuple[Column, Column | None]:
    """One column converted to ``target`` by this module's rules, for frames other than sources.

    Returns:
        ``(value, reason)``: the converted column and, when the conversion can fail per row, a
        column holding why it failed for that row (null where it did not).

    Raises:
        SourceSchemaError: The column is missing, or its type can never hold ``target``.
    """
    field = find_column(schema, name)
    if field is None:
        raise SourceSchemaError(
            owner, name, f"is missing; the columns are {', '.join(schema.fieldNames())}"
        )
    try:
        converted = convert(
            F.col(quote(field.name)), field.dataType, target, timestamp_format, name
        )
    except UnconvertibleError as problem:
        raise SourceSchemaError(
            owner, name, f"is {field.dataType.simpleString()}, declared {target.value}: {problem}"
        ) from None
    return converted.value, converted.reason


@dataclass(frozen=True)
class Converted:
    """A converted column and, when the conversion can fail per row, why it failed (or null)."""

    value: Column
    reason: Column | None

    def required(self, message: str) -> Converted:
        """The same, also rejecting nulls with ``message``."""
        null = F.when(self.value.isNull(), F.lit(message))
        return Converted(self.value, null if self.reason is None else F.coalesce(self.reason, null))


class UnconvertibleError(Exception):
    """A source type that can never hold the declared type.

    Never reaches a user: each caller turns it into a :class:`SourceSchemaError` naming the
    table (or frame) and the column, in its own words.
    """


def convert(
    column: Column, dtype: T.DataType, target: ValueType, timestamp_format: str, label: str
) -> Converted:
    """``column``, of Spark type ``dtype``, converted to ``target`` by this module's rules.

    Args:
        column: The column to convert.
        dtype: Its Spark type.
        target: The declared type.
        timestamp_format: The source's ``timestamp_format`` (``epoch_*`` for numeric times).
        label: How a reason names the column, e.g. ``trips (source column trip_count)``.

    Returns:
        The converted column and, when the conversion can fail per row, its reason column.

    Raises:
        UnconvertibleError: No value of ``dtype`` can ever be a ``target``.
    """
    if target.is_list:
        if not isinstance(dtype, T.ArrayType):
            raise UnconvertibleError("a list type needs an array column")
        element = convert(F.lit(None), dtype.elementType, target.element, timestamp_format, label)
        if element.reason is None and _same_type(dtype.elementType, target.element):
            return Converted(column, None)

        def convert_item(item: Column) -> Converted:
            return convert(item, dtype.elementType, target.element, timestamp_format, label)

        value = F.transform(column, lambda item: convert_item(item).value)
        if element.reason is None:
            return Converted(value, None)
        bad = F.exists(column, lambda item: _reason_of(convert_item(item)).isNotNull())
        message = _message(
            label, column, f"has an element that is not a valid {target.element.value}"
        )
        return Converted(F.when(~bad, value), F.when(bad, message))
    if isinstance(dtype, T.ArrayType | T.MapType | T.StructType):
        raise UnconvertibleError("no value of that type can be a single value")
    converter = _SCALAR_CONVERTERS[target.element]
    return converter(column, dtype, target, timestamp_format, label)


def _reason_of(converted: Converted) -> Column:
    return converted.reason if converted.reason is not None else F.lit(None).cast("string")


def _same_type(dtype: T.DataType, target: ValueType) -> bool:
    return dtype.simpleString() == target.spark_ddl


def _to_integer(
    column: Column, dtype: T.DataType, target: ValueType, _fmt: str, label: str
) -> Converted:
    bits = 32 if target is ValueType.INT32 else 64
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    ddl = target.spark_ddl
    source_bits = _INTEGRAL_BITS.get(type(dtype))
    if source_bits is not None:
        if source_bits <= bits:
            return Converted(column.cast(ddl), None)
        fits = column.between(low, high)
        return Converted(
            F.when(fits, column.cast(ddl)),
            F.when(~fits, _message(label, column, f"is out of {target.value}'s range")),
        )
    if isinstance(dtype, T.FloatType | T.DoubleType | T.DecimalType):
        # x % 1 is NaN for NaN and infinities, so they are not whole numbers either.
        whole = (column % 1) == 0
        in_range = (column >= F.lit(low)) & (column <= F.lit(high))
        return Converted(
            F.when(whole & in_range, column.cast(ddl)),
            F.when(~whole, _message(label, column, f"is not a whole number ({target.value})")).when(
                ~in_range, _message(label, column, f"is out of {target.value}'s range")
            ),
        )
    if isinstance(dtype, T.StringType):
        return _parsed(column, column.try_cast(ddl), label, f"is not a valid {target.value}")
    raise UnconvertibleError(f"use an integer, whole-number or string column for {target.value}")


def _to_floating(
    column: Column, dtype: T.DataType, target: ValueType, _fmt: str, label: str
) -> Converted:
    ddl = target.spark_ddl
    is_float = target is ValueType.FLOAT
    source_bits = _INTEGRAL_BITS.get(type(dtype))
    if source_bits is not None:
        mantissa = 24 if is_float else 53
        if source_bits <= mantissa:
            return Converted(column.cast(ddl), None)
        # Exact when a float/double holds the same integer (checked in decimal, losslessly).
        exact = column.between(-(2**mantissa), 2**mantissa) | (
            column.cast(ddl).cast("decimal(20,0)") == column.cast("decimal(20,0)")
        )
        return Converted(
            F.when(exact, column.cast(ddl)),
            F.when(~exact, _message(label, column, f"cannot be held exactly by a {target.value}")),
        )
    if isinstance(dtype, T.FloatType) or (isinstance(dtype, T.DoubleType) and not is_float):
        return Converted(column.cast(ddl), None)
    if isinstance(dtype, T.DecimalType):
        return Converted(column.cast(ddl), None)  # |decimal| < 1e38 fits both, rounded
    if isinstance(dtype, T.DoubleType):
        return _double_to_float(column, label)
    if isinstance(dtype, T.StringType):
        parsed = _parsed(column, column.try_cast("double"), label, f"is not a valid {target.value}")
        if not is_float:
            return parsed
        narrowed = _double_to_float(parsed.value, label)
        return Converted(narrowed.value, F.coalesce(_reason_of(parsed), _reason_of(narrowed)))
    raise UnconvertibleError(f"use a numeric or string column for {target.value}")


def _double_to_float(column: Column, label: str) -> Converted:
    fits = F.isnan(column) | (F.abs(column) <= _FLOAT_MAX) | (F.abs(column) == float("inf"))
    return Converted(
        F.when(fits, column.cast("float")),
        F.when(~fits, _message(label, column, "is out of FLOAT's range")),
    )


def _to_bool(
    column: Column, dtype: T.DataType, target: ValueType, _fmt: str, label: str
) -> Converted:
    if isinstance(dtype, T.BooleanType):
        return Converted(column, None)
    if isinstance(dtype, T.StringType):
        return _parsed(column, column.try_cast("boolean"), label, "is not a valid BOOL")
    if type(dtype) in _INTEGRAL_BITS:
        fits = column.isin(0, 1)
        return Converted(
            F.when(fits, column == 1),
            F.when(~fits, _message(label, column, "is not a valid BOOL (0 or 1)")),
        )
    raise UnconvertibleError("use a boolean, 0/1 integer or string column for BOOL")


def _to_string(
    column: Column, dtype: T.DataType, target: ValueType, _fmt: str, label: str
) -> Converted:
    if isinstance(dtype, T.StringType):
        return Converted(column, None)
    if type(dtype) in _INTEGRAL_BITS or isinstance(dtype, T.DecimalType | T.BooleanType):
        return Converted(column.cast("string"), None)
    raise UnconvertibleError(
        "only strings, integers, decimals and booleans have one exact text; convert it in the "
        "source"
    )


def _to_bytes(
    column: Column, dtype: T.DataType, target: ValueType, _fmt: str, label: str
) -> Converted:
    if isinstance(dtype, T.BinaryType):
        return Converted(column, None)
    raise UnconvertibleError("use a binary column for BYTES")


def _to_timestamp(
    column: Column, dtype: T.DataType, target: ValueType, fmt: str, label: str
) -> Converted:
    if isinstance(dtype, T.TimestampType):
        return Converted(column, None)
    if isinstance(dtype, T.TimestampNTZType | T.DateType):
        return Converted(column.cast("timestamp"), None)  # wall clock read as UTC
    is_number = type(dtype) in _INTEGRAL_BITS or isinstance(
        dtype, T.FloatType | T.DoubleType | T.DecimalType
    )
    if isinstance(dtype, T.StringType) and fmt not in _EPOCH_FACTORS:
        return _parsed(column, column.try_cast("timestamp"), label, "is not an ISO-8601 timestamp")
    if not (is_number or isinstance(dtype, T.StringType)):
        raise UnconvertibleError("use a timestamp, date, ISO-8601 string or epoch number column")
    if fmt not in _EPOCH_FACTORS:
        raise UnconvertibleError(
            f"numbers need timestamp_format epoch_seconds, epoch_millis or epoch_micros "
            f"(the source says '{fmt}')"
        )
    factor = _EPOCH_FACTORS[fmt]
    unit = fmt.removeprefix("epoch_")
    if type(dtype) in _INTEGRAL_BITS:
        # Range-check before multiplying: an overflowing bigint product fails the job in ANSI.
        low, high = -(-_MIN_MICROS // factor), _MAX_MICROS // factor
        fits = column.between(low, high)
        return Converted(
            F.when(fits, F.timestamp_micros(column.cast("bigint") * F.lit(factor))),
            F.when(~fits, _message(label, column, f"is not an epoch in {unit} of years 1-9999")),
        )
    # Fractional epochs and numeric strings: exact decimal arithmetic, rounded to microseconds.
    number = column.try_cast(_EPOCH_DECIMALS[fmt])
    micros = F.round(number * F.lit(factor), 0)
    fits = micros.between(_MIN_MICROS, _MAX_MICROS)
    good = number.isNotNull() & fits
    return Converted(
        F.when(good, F.timestamp_micros(micros.cast("bigint"))),
        F.when(
            column.isNotNull() & ~F.coalesce(good, F.lit(False)),
            _message(label, column, f"is not an epoch in {unit} of years 1-9999"),
        ),
    )


_SCALAR_CONVERTERS: dict[ValueType, Callable[[Column, T.DataType, ValueType, str, str], Converted]]
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


def _parsed(column: Column, parsed: Column, label: str, problem: str) -> Converted:
    """A parse that yields null on failure: a non-null input with a null result is rejected."""
    return Converted(
        parsed, F.when(column.isNotNull() & parsed.isNull(), _message(label, column, problem))
    )


def _message(label: str, column: Column, problem: str) -> Column:
    shown = column.cast("string")
    return F.concat(F.lit(f"{label}: "), F.coalesce(shown, F.lit("null")), F.lit(f" {problem}"))
