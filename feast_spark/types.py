"""Value types and their one mapping to Spark, Arrow, CQL and SQLite types.

Everything that needs a physical type asks :class:`ValueType`; no other module spells one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from feast_spark.errors import DefinitionError

if TYPE_CHECKING:  # pyarrow is imported only where an Arrow type is asked for
    import pyarrow as pa


@dataclass(frozen=True)
class _Physical:
    spark: str  # Spark SQL DDL
    arrow: str  # name of a pyarrow factory (see _ARROW_FACTORIES)
    cql: str
    sqlite: str  # declared column type (its affinity)
    holds: tuple[str, ...]  # pyarrow.types predicates of the Arrow types that hold its values


# UNIX_TIMESTAMP is a CQL bigint of microseconds since the epoch: CQL's own `timestamp` keeps only
# milliseconds, and a feature store must not truncate a value silently. SQLite has no boolean and
# no timestamp type: booleans and microseconds since the epoch are INTEGERs.
_SCALARS: dict[str, _Physical] = {
    "BYTES": _Physical("binary", "binary", "blob", "BLOB", ("is_binary", "is_large_binary")),
    "STRING": _Physical("string", "string", "text", "TEXT", ("is_string", "is_large_string")),
    "INT32": _Physical("int", "int32", "int", "INTEGER", ("is_integer",)),
    "INT64": _Physical("bigint", "int64", "bigint", "INTEGER", ("is_integer",)),
    "DOUBLE": _Physical("double", "float64", "double", "REAL", ("is_floating",)),
    "FLOAT": _Physical("float", "float32", "float", "REAL", ("is_floating",)),
    "BOOL": _Physical("boolean", "bool_", "boolean", "INTEGER", ("is_boolean",)),
    "UNIX_TIMESTAMP": _Physical(
        "timestamp", "timestamp_us_utc", "bigint", "INTEGER", ("is_timestamp", "is_date")
    ),
}


class ValueType(enum.Enum):
    """The types a feature or entity value can have (Feast 0.9-0.11 names)."""

    BYTES = "BYTES"
    STRING = "STRING"
    INT32 = "INT32"
    INT64 = "INT64"
    DOUBLE = "DOUBLE"
    FLOAT = "FLOAT"
    BOOL = "BOOL"
    UNIX_TIMESTAMP = "UNIX_TIMESTAMP"
    BYTES_LIST = "BYTES_LIST"
    STRING_LIST = "STRING_LIST"
    INT32_LIST = "INT32_LIST"
    INT64_LIST = "INT64_LIST"
    DOUBLE_LIST = "DOUBLE_LIST"
    FLOAT_LIST = "FLOAT_LIST"
    BOOL_LIST = "BOOL_LIST"
    UNIX_TIMESTAMP_LIST = "UNIX_TIMESTAMP_LIST"

    @classmethod
    def parse(cls, value: ValueType | str, *, owner_kind: str, owner: str) -> ValueType:
        """Return the ValueType named by ``value``, or raise a DefinitionError naming its owner."""
        if isinstance(value, ValueType):
            return value
        try:
            return cls(str(value).upper())
        except ValueError:
            known = ", ".join(v.value for v in cls)
            raise DefinitionError(
                owner_kind, owner, f"unknown value type {value!r}; use one of {known}"
            ) from None

    @property
    def is_list(self) -> bool:
        """Whether this is a ``_LIST`` type."""
        return self.value.endswith("_LIST")

    @property
    def element(self) -> ValueType:
        """The scalar type (itself for scalars, the element type for lists)."""
        return ValueType(self.value.removesuffix("_LIST"))

    @property
    def spark_ddl(self) -> str:
        """Spark SQL type, e.g. ``bigint`` or ``array<double>``."""
        scalar = _SCALARS[self.element.value].spark
        return f"array<{scalar}>" if self.is_list else scalar

    @property
    def cql_type(self) -> str:
        """CQL type, e.g. ``bigint`` or ``list<double>``."""
        scalar = _SCALARS[self.element.value].cql
        return f"list<{scalar}>" if self.is_list else scalar

    def arrow_type(self) -> pa.DataType:
        """Arrow type, e.g. ``pa.int64()`` or ``pa.list_(pa.float64())``."""
        import pyarrow as pa

        name = _SCALARS[self.element.value].arrow
        scalar = pa.timestamp("us", tz="UTC") if name == "timestamp_us_utc" else getattr(pa, name)()
        return pa.list_(scalar) if self.is_list else scalar

    @property
    def sqlite_type(self) -> str:
        """SQLite column type, e.g. ``INTEGER``; lists are JSON ``TEXT``."""
        return "TEXT" if self.is_list else _SCALARS[self.value].sqlite

    def holds_arrow(self, arrow_type: pa.DataType) -> bool:
        """Whether values of ``arrow_type`` can stand for this type (entity rows in memory).

        Any integer width for INT32 and INT64, large variants of strings and binaries, dates and
        timestamps of any unit for UNIX_TIMESTAMP, any float width for FLOAT and DOUBLE; a list
        type holds lists (large or fixed-size too) whose elements its element type holds.
        """
        import pyarrow.types as pt

        if self.is_list:
            if not (
                pt.is_list(arrow_type)
                or pt.is_large_list(arrow_type)
                or pt.is_fixed_size_list(arrow_type)
            ):
                return False
            return self.element.holds_arrow(arrow_type.value_type)
        return any(getattr(pt, check)(arrow_type) for check in _SCALARS[self.value].holds)
