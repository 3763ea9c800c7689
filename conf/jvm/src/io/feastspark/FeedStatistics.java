package io.feastspark;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.List;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.expressions.codegen.CodeBlock;
import org.apache.spark.sql.catalyst.expressions.codegen.CodegenContext;
import org.apache.spark.sql.catalyst.expressions.codegen.ExprCode;
import org.apache.spark.sql.catalyst.expressions.codegen.FalseLiteral$;
import org.apache.spark.sql.classic.ExpressionUtils;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import scala.collection.immutable.IndexedSeq;
import scala.collection.immutable.Seq;
import scala.jdk.javaapi.CollectionConverters;

/**
 * A condition, true for every row, that feeds each row where its first child holds to a
 * {@link FeatureStatistics}: children are (valid, hash, value 0, value 1, ...).
 *
 * <p>Its generated code calls the accumulator with primitive values (no boxing, no converters,
 * unlike a UDF). It is nondeterministic, so the optimizer neither drops it nor merges it with
 * another filter; it may still push it below a projection, substituting the projected
 * expressions into its children (feast_spark.spark.feature_statistics places it where that
 * costs nothing).
 */
public final class FeedStatistics extends Expression implements Serializable {
  private static final long serialVersionUID = 1L;

  private final FeatureStatistics statistics;
  private final Seq<Expression> children;

  FeedStatistics(FeatureStatistics statistics, Seq<Expression> children) {
    this.statistics = statistics;
    this.children = children;
  }

  /**
   * {@link #condition(FeatureStatistics, Column, Column, Column[])} from SQL text (one call from
   * Python instead of one per column).
   *
   * @param values the values' SQL expressions, each followed by a NUL character
   */
  public static Column condition(
      FeatureStatistics statistics, String valid, String hash, String values) {
    List<Column> columns = new ArrayList<>();
    int start = 0;
    for (int end = values.indexOf('\0'); end >= 0; end = values.indexOf('\0', start)) {
      columns.add(functions.expr(values.substring(start, end)));
      start = end + 1;
    }
    return condition(
        statistics, functions.expr(valid), functions.expr(hash), columns.toArray(new Column[0]));
  }

  /**
   * The condition as a column.
   *
   * @param valid which rows are fed (a boolean; null counts as false)
   * @param hash the row's sampling hash (a long)
   * @param values per feature, its value: a long for {@link FeatureStatistics#LONG} features,
   *     else a double
   */
  public static Column condition(
      FeatureStatistics statistics, Column valid, Column hash, Column[] values) {
    List<Expression> all = new ArrayList<>();
    all.add(ExpressionUtils.expression(valid));
    all.add(ExpressionUtils.expression(hash));
    for (Column value : values) {
      all.add(ExpressionUtils.expression(value));
    }
    return ExpressionUtils.column(
        new FeedStatistics(statistics, CollectionConverters.asScala(all).toList()));
  }

  @Override
  public Seq<Expression> children() {
    return children;
  }

  @Override
  public boolean deterministic() {
    return false;
  }

  @Override
  public boolean nullable() {
    return false;
  }

  @Override
  public DataType dataType() {
    return DataTypes.BooleanType;
  }

  @Override
  public Object eval(InternalRow row) {
    Object valid = children.apply(0).eval(row);
    if (!Boolean.TRUE.equals(valid)) {
      return Boolean.TRUE;
    }
    Object hash = children.apply(1).eval(row);
    long sampling = hash == null ? 0L : (Long) hash;
    statistics.addRow();
    for (int i = 0; i < children.length() - 2; i++) {
      Object value = children.apply(i + 2).eval(row);
      if (statistics.isLong(i)) {
        statistics.feedLong(i, value == null, value == null ? 0L : (Long) value, sampling);
      } else {
        statistics.feedDouble(i, value == null, value == null ? 0.0 : (Double) value, sampling);
      }
    }
    return Boolean.TRUE;
  }

  @Override
  public ExprCode doGenCode(CodegenContext ctx, ExprCode ev) {
    String target = ctx.addReferenceObj("statistics", statistics, FeatureStatistics.class.getName());
    StringBuilder code = new StringBuilder();
    ExprCode valid = children.apply(0).genCode(ctx);
    ExprCode hash = children.apply(1).genCode(ctx);
    code.append(valid.code()).append('\n');
    code.append("if (!").append(valid.isNull()).append(" && ").append(valid.value()).append(") {\n");
    code.append(hash.code()).append('\n');
    code.append(target).append(".addRow();\n");
    String sampling = hash.isNull() + " ? 0L : " + hash.value();
    for (int i = 0; i < children.length() - 2; i++) {
      ExprCode value = children.apply(i + 2).genCode(ctx);
      code.append(value.code()).append('\n');
      String method = statistics.isLong(i) ? "feedLong" : "feedDouble";
      code.append(target).append('.').append(method).append('(').append(i).append(", ")
          .append(value.isNull()).append(", ").append(value.value()).append(", ")
          .append(sampling).append(");\n");
    }
    code.append("}\n");
    code.append("final boolean ").append(ev.value()).append(" = true;\n");
    Seq<String> parts = CollectionConverters.asScala(List.of(code.toString())).toList();
    Seq<Object> inputs = CollectionConverters.asScala(List.<Object>of()).toList();
    return ev.copy(new CodeBlock(parts, (Seq) inputs), FalseLiteral$.MODULE$, ev.value());
  }

  @Override
  public Expression withNewChildrenInternal(IndexedSeq<Expression> newChildren) {
    return new FeedStatistics(statistics, newChildren.toList());
  }

  @Override
  public int productArity() {
    return 1;
  }

  @Override
  public Object productElement(int n) {
    return children;
  }

  @Override
  public boolean canEqual(Object that) {
    return that instanceof FeedStatistics;
  }
}
