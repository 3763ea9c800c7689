"""Spark's own bloom filter, the one behind its runtime join filters, as DataFrame columns.

Spark builds it with the ``bloom_filter_agg`` aggregate and probes it with ``might_contain``.
Neither is a public SQL function, so both are reached through the JVM: the aggregate by the
internal-function call ``DataFrame.stat.bloomFilter`` uses, the probe by its Catalyst expression.
Where that is impossible (Spark Connect, or a Spark whose internals moved) :func:`available`
says so once, and callers prune without it. A false positive only keeps a row that another step
drops, so the filter can never change a result.

Spark caps a filter at ``spark.sql.optimizer.runtime.bloomFilter.maxNumBits`` bits (8 MiB by
default) and sizes its hash functions for at most ``...maxNumItems`` items; :func:`capacity`
derives from the first how many items a filter holds well.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

MAX_BITS_CONF = "spark.sql.optimizer.runtime.bloomFilter.maxNumBits"
_DEFAULT_MAX_BITS = 64 << 20  # Spark's default for MAX_BITS_CONF
BITS_PER_ITEM = 8
"""Bits per item at capacity: a false-positive rate of about 2-4% with Spark's hash count."""
_SPARSE_BITS_PER_ITEM = 12  # below capacity: more bits cost little and keep fewer false rows
_MIN_BITS = 1 << 16


def available(spark: SparkSession) -> bool:
    """True when this session can build and probe Spark's bloom filters (a classic session)."""
    return _jvm_parts(spark) is not None


def capacity(spark: SparkSession) -> int:
    """Items one filter holds at :data:`BITS_PER_ITEM` bits each under the session's cap."""
    try:
        max_bits = int(spark.conf.get(MAX_BITS_CONF, str(_DEFAULT_MAX_BITS)) or _DEFAULT_MAX_BITS)
    except ValueError:
        max_bits = _DEFAULT_MAX_BITS
    return max_bits // BITS_PER_ITEM


def bits_for(items: int, spark: SparkSession) -> int:
    """The filter size for ``items``: generous while small, the cap once large."""
    return min(capacity(spark) * BITS_PER_ITEM, max(items * _SPARSE_BITS_PER_ITEM, _MIN_BITS))


def might_contain(values: DataFrame, expected_items: int, probe: Column) -> Column:
    """A filter column: ``probe`` (a long) may be among ``values``'s one long column.

    The filter is built lazily, as a scalar subquery Spark runs once when the query runs; its
    plan string names the subquery, not the filter's bytes.

    Raises:
        RuntimeError: :func:`available` is false for this session.
    """
    spark = values.sparkSession
    parts = _jvm_parts(spark)
    if parts is None:
        raise RuntimeError("Spark's bloom filter is not reachable in this session")
    internal_function, expression_utils, might_contain_class, to_column = parts
    from pyspark.sql import functions as sf
    from pyspark.sql.classic.column import _to_java_column, _to_seq

    bits = bits_for(expected_items, spark)
    arguments = [
        values[values.columns[0]],
        sf.lit(max(expected_items, 1)).cast("long"),
        sf.lit(bits).cast("long"),
    ]
    java_arguments = _to_seq(spark.sparkContext, arguments, _to_java_column)
    aggregate = to_column(internal_function("bloom_filter_agg", java_arguments))
    built = values.agg(aggregate).scalar()
    contains = might_contain_class(
        expression_utils.expression(built._jc), expression_utils.expression(probe._jc)
    )
    column: Column = to_column(expression_utils.column(contains))
    return column


def _jvm_parts(spark: SparkSession) -> tuple[Any, Any, Any, Any] | None:
    """The JVM entry points, or ``None`` where they cannot be reached."""
    try:
        from py4j.java_gateway import JavaClass
        from py4j.protocol import Py4JError
        from pyspark.sql.classic.column import Column as ClassicColumn

        jvm = spark._jvm
    except (ImportError, AttributeError):
        return None
    if jvm is None:
        return None
    try:
        expressions = jvm.org.apache.spark.sql.catalyst.expressions
        might_contain_class = expressions.BloomFilterMightContain
        # py4j answers a class it cannot find with a package proxy: check both are classes.
        if not all(
            isinstance(c, JavaClass)
            for c in (might_contain_class, expressions.aggregate.BloomFilterAggregate)
        ):
            return None
        column_object = getattr(jvm.org.apache.spark.sql, "Column$").__getattr__("MODULE$")
        utils = getattr(jvm.org.apache.spark.sql.classic, "ExpressionUtils$").__getattr__("MODULE$")
        internal_function = column_object.internalFn
    except (Py4JError, AttributeError):
        return None
    return internal_function, utils, might_contain_class, ClassicColumn
