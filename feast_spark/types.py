"""Value types and their one mapping to Spark, Arrow and CQL types.

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


# UNIX_TIMESTAMP is a CQL bigint of microseconds since the epoch: CQL's own `timestamp` keeps only
# milliseconds, and a feature store must not truncate a value silently.
_SCALARS: dict[str, _Physical] = {
    "BYTES": _Physical("binary", "binary", "blob"),
    "STRING": _Physical("string", "string", "text"),
    "INT32": _Physical("int", "int32", "int"),
    "INT64": _Physical("bigint", "int64", "bigint"),
    "DOUBLE": _Physical("double", "float64", "double"),
    "FLOAT": _Physical("float", "float32", "float"),
    "BOOL": _Physical("boolean", "bool_", "boolean"),
    "UNIX_TIMESTAMP": _Physical("timestamp", "timestamp_us_utc", "bigint"),
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

    @classmethod
    def from_spark_ddl(cls, ddl: str) -> ValueType:
        """Inverse of :attr:`spark_ddl` (``array<bigint>`` -> INT64_LIST)."""
        text = ddl.strip().lower()
        is_list = text.startswith("array<") and text.endswith(">")
        inner = text[len("array<") : -1] if is_list else text
        for name, physical in _SCALARS.items():
            if physical.spark == inner:
                return cls(name + ("_LIST" if is_list else ""))
        raise LookupError(f"no value type maps to Spark type '{ddl}'")

    @classmethod
    def from_arrow(cls, arrow_type: pa.DataType) -> ValueType:
        """Inverse of :meth:`arrow_type`."""
        for value_type in cls:
            if value_type.arrow_type() == arrow_type:
                return value_type
        raise LookupError(f"no value type maps to Arrow type '{arrow_type}'")

    @classmethod
    def from_cql(cls, cql: str) -> ValueType:
        """Inverse of :attr:`cql_type` where it is one-to-one.

        CQL ``bigint`` stands for both INT64 and UNIX_TIMESTAMP; it reads back as INT64.
        """
        text = cql.strip().lower().replace(" ", "")
        for value_type in cls:
            if value_type.cql_type == text and value_type.element is not cls.UNIX_TIMESTAMP:
                return value_type
        raise LookupError(f"no value type maps to CQL type '{cql}'")
