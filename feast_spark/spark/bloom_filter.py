"""Spark's own bloom filter, the one behind its runtime join filters, as DataFrame columns.

Spark builds it with the ``bloom_filter_agg`` aggregate and probes it with ``might_contain``.
Neither is a public SQL function, so both are reached through the JVM: the aggregate by the
internal-function call ``DataFrame.stat.bloomFilter`` uses, the probe by its Catalyst expression.
Where that is impossible (Spark Connect, or a Spark whose internals moved),
:meth:`SparkBloomFilters.of` gives ``None`` and callers prune without it. A false positive only
keeps a row that another step drops, so the filter can never change a result.

Spark caps a filter at ``spark.sql.optimizer.runtime.bloomFilter.maxNumBits`` bits (8 MiB by
default) and sizes its hash functions for at most ``...maxNumItems`` items;
:meth:`SparkBloomFilters.capacity` derives from the first how many items a filter holds well.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

MAX_BITS_CONF = "spark.sql.optimizer.runtime.bloomFilter.maxNumBits"
_DEFAULT_MAX_BITS = 64 << 20  # Spark's default for MAX_BITS_CONF
BITS_PER_ITEM = 8
"""Bits per item at capacity: a false-positive rate of about 2-4% with Spark's hash count."""
_SPARSE_BITS_PER_ITEM = 12  # below capacity: more bits cost little and keep fewer false rows
_MIN_BITS = 1 << 16


@dataclass(frozen=True)
class SparkBloomFilters:
    """Spark's bloom filters in one session: :meth:`of` gives them where the session has them."""

    spark: SparkSession
    internal_function: Any  # org.apache.spark.sql.Column.internalFn
    expression_utils: Any  # org.apache.spark.sql.classic.ExpressionUtils
    might_contain_class: Any  # org.apache.spark.sql.catalyst.expressions.BloomFilterMightContain
    to_column: Callable[[Any], Column]  # a Java Column to a PySpark one

    @classmethod
    def of(cls, spark: SparkSession) -> SparkBloomFilters | None:
        """The session's bloom filters; ``None`` where they cannot be reached."""
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
            classic = jvm.org.apache.spark.sql.classic
            utils = getattr(classic, "ExpressionUtils$").__getattr__("MODULE$")
            internal_function = column_object.internalFn
        except (Py4JError, AttributeError):
            return None
        return cls(spark, internal_function, utils, might_contain_class, ClassicColumn)

    def capacity(self) -> int:
        """Items one filter holds at :data:`BITS_PER_ITEM` bits each under the session's cap."""
        default = _DEFAULT_MAX_BITS
        try:
            max_bits = int(self.spark.conf.get(MAX_BITS_CONF, str(default)) or default)
        except ValueError:
            max_bits = default
        return max_bits // BITS_PER_ITEM

    def bits_for(self, items: int) -> int:
        """The filter size for ``items``: generous while small, the cap once large."""
        largest = self.capacity() * BITS_PER_ITEM
        return min(largest, max(items * _SPARSE_BITS_PER_ITEM, _MIN_BITS))

    def might_contain(self, values: DataFrame, expected_items: int, probe: Column) -> Column:
        """A filter column: ``probe`` (a long) may be among ``values``'s one long column.

        The filter is built lazily, as a scalar subquery Spark runs once when the query runs;
        its plan string names the subquery, not the filter's bytes.
        """
        from pyspark.sql import functions as sf
        from pyspark.sql.classic.column import _to_java_column, _to_seq

        arguments = [
            values[values.columns[0]],
            sf.lit(max(expected_items, 1)).cast("long"),
            sf.lit(self.bits_for(expected_items)).cast("long"),
        ]
        java_arguments = _to_seq(self.spark.sparkContext, arguments, _to_java_column)
        aggregate = self.to_column(self.internal_function("bloom_filter_agg", java_arguments))
        built = values.agg(aggregate).scalar()
        to_expression = self.expression_utils.expression
        contains = self.might_contain_class(to_expression(built._jc), to_expression(probe._jc))
        return self.to_column(self.expression_utils.column(contains))
