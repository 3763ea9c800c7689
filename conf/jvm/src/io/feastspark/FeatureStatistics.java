package io.feastspark;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;

import org.apache.spark.SparkContext;
import org.apache.spark.TaskContext;
import org.apache.spark.util.AccumulatorV2;

/**
 * Feature statistics folded into the tasks that write an ingest's rows, in plain Java fields.
 *
 * <p>Spark's {@code observe} evaluates its aggregates row by row through a generic projection
 * (a joined row, a buffer slot per figure); here the generated code of the stage that writes
 * the rows hands each feature's primitive value to {@link #feedLong} or {@link #feedDouble}
 * ({@link FeedStatistics}), which keep the figures in arrays of this task's partition.
 *
 * <p>Figures are kept per partition and a partition seen again replaces what it gave before, so
 * a retried task, a re-run stage or a plan executed twice counts each row once. {@link #figures}
 * merges the partitions in partition order (a deterministic sum) and returns the figures as a
 * JSON object named like {@code feast_spark.spark.feature_statistics}'s SQL aggregates.
 */
public final class FeatureStatistics extends AccumulatorV2<Object, Long> {
  private static final long serialVersionUID = 1L;

  /** The feature's value is a long (integers, booleans, micros, lengths); else a double. */
  public static final int LONG = 1;
  /** A mean is reported. */
  public static final int MEAN = 2;
  /** Quantiles are reported (from the sampled rows). */
  public static final int QUANTILES = 4;
  /** Non-finite values (NaN, infinities) are counted apart and left out of every other figure. */
  public static final int FINITE = 8;

  private final int[] kinds;
  private final double[] probabilities;
  private final long sampleEvery;
  private final int sampleTarget;
  // Concurrent: an executor's heartbeat serializes a running task's accumulators.
  private ConcurrentHashMap<Integer, Partition> partitions = new ConcurrentHashMap<>();
  private transient Partition current;

  /**
   * @param kinds per feature, a sum of {@link #LONG}, {@link #MEAN}, {@link #QUANTILES}, {@link #FINITE}
   * @param probabilities the quantiles' probabilities
   * @param sampleEvery one row in this many feeds the quantiles: those whose hash is 0 modulo
   *     it (a power of two)
   * @param sampleTarget the sampled rows a partition keeps (at most twice as many are held); the
   *     quantiles come from at most twice as many (see {@link HashSample})
   */
  public FeatureStatistics(
      int[] kinds, double[] probabilities, long sampleEvery, int sampleTarget) {
    this.kinds = kinds.clone();
    this.probabilities = probabilities.clone();
    this.sampleTarget = sampleTarget;
    if (sampleEvery < 1 || Long.bitCount(sampleEvery) != 1) {
      throw new IllegalArgumentException("sampleEvery must be a power of two: " + sampleEvery);
    }
    this.sampleEvery = sampleEvery;
  }

  /**
   * A new accumulator, registered with {@code context} (one call from Python).
   *
   * @param kinds the kinds, comma-separated
   * @param probabilities the probabilities, comma-separated
   */
  public static FeatureStatistics register(
      SparkContext context, String kinds, String probabilities, long sampleEvery,
      int sampleTarget) {
    FeatureStatistics statistics =
        new FeatureStatistics(
            kinds.isEmpty()
                ? new int[0]
                : Arrays.stream(kinds.split(",")).mapToInt(Integer::parseInt).toArray(),
            Arrays.stream(probabilities.split(",")).mapToDouble(Double::parseDouble).toArray(),
            sampleEvery,
            sampleTarget);
    context.register(statistics, "feature statistics");
    return statistics;
  }

  /** Whether feature {@code i} is a {@link #LONG} one. */
  public boolean isLong(int i) {
    return (kinds[i] & LONG) != 0;
  }

  /** Per feature, the figures of one partition's rows. */
  static final class Partition implements Serializable {
    private static final long serialVersionUID = 1L;
    long rows;
    final long[] count;
    final long[] finite;
    final long[] minLong;
    final long[] maxLong;
    final double[] minDouble;
    final double[] maxDouble;
    final double[] sum;
    final HashSample[] samples;

    Partition(int features) {
      count = new long[features];
      finite = new long[features];
      minLong = new long[features];
      maxLong = new long[features];
      minDouble = new double[features];
      maxDouble = new double[features];
      sum = new double[features];
      samples = new HashSample[features];
    }

    void merge(Partition other, int[] kinds) {
      rows += other.rows;
      for (int i = 0; i < count.length; i++) {
        boolean isLong = (kinds[i] & LONG) != 0;
        long seen = isLong ? count[i] : finite[i];
        long otherSeen = isLong ? other.count[i] : other.finite[i];
        if (otherSeen > 0) {
          if (seen == 0) {
            minLong[i] = other.minLong[i];
            maxLong[i] = other.maxLong[i];
            minDouble[i] = other.minDouble[i];
            maxDouble[i] = other.maxDouble[i];
          } else {
            minLong[i] = Math.min(minLong[i], other.minLong[i]);
            maxLong[i] = Math.max(maxLong[i], other.maxLong[i]);
            minDouble[i] = Math.min(minDouble[i], other.minDouble[i]);
            maxDouble[i] = Math.max(maxDouble[i], other.maxDouble[i]);
          }
        }
        count[i] += other.count[i];
        finite[i] += other.finite[i];
        sum[i] += other.sum[i];
      }
    }
  }

  private Partition current() {
    Partition part = current;
    if (part == null) {
      TaskContext task = TaskContext.get();
      int id = task == null ? -1 : task.partitionId();
      // A new attempt of a partition starts from nothing and replaces the old one.
      part = new Partition(kinds.length);
      partitions.put(id, part);
      current = part;
    }
    return part;
  }

  /** Counts a row (a valid one: rejected rows are not fed). */
  public void addRow() {
    current().rows++;
  }

  /** Adds a value of a {@link #LONG} feature, unless null; {@code hash} picks samples. */
  public void feedLong(int feature, boolean isNull, long value, long hash) {
    if (!isNull) {
      longValue(feature, value, hash);
    }
  }

  /** Adds a value of a double feature, unless null; {@code hash} picks samples. */
  public void feedDouble(int feature, boolean isNull, double value, long hash) {
    if (!isNull) {
      doubleValue(feature, value, hash);
    }
  }

  private void longValue(int feature, long value, long hash) {
    Partition part = current();
    long seen = part.count[feature]++;
    if (seen == 0 || value < part.minLong[feature]) {
      part.minLong[feature] = value;
    }
    if (seen == 0 || value > part.maxLong[feature]) {
      part.maxLong[feature] = value;
    }
    part.sum[feature] += (double) value;
    if ((kinds[feature] & QUANTILES) != 0) {
      sample(part, feature, (double) value, hash);
    }
  }

  private void doubleValue(int feature, double value, long hash) {
    Partition part = current();
    part.count[feature]++;
    if (Double.isNaN(value) || Double.isInfinite(value)) {
      return;
    }
    long seen = part.finite[feature]++;
    if (seen == 0 || value < part.minDouble[feature]) {
      part.minDouble[feature] = value;
    }
    if (seen == 0 || value > part.maxDouble[feature]) {
      part.maxDouble[feature] = value;
    }
    part.sum[feature] += value;
    if ((kinds[feature] & QUANTILES) != 0) {
      sample(part, feature, value, hash);
    }
  }

  private void sample(Partition part, int feature, double value, long hash) {
    if ((hash & (sampleEvery - 1)) != 0) {
      return;
    }
    HashSample sample = part.samples[feature];
    if (sample == null) {
      sample = new HashSample(sampleTarget);
      part.samples[feature] = sample;
    }
    sample.add(hash, value);
  }

  @Override
  public boolean isZero() {
    return partitions.isEmpty();
  }

  @Override
  public FeatureStatistics copy() {
    FeatureStatistics copy = new FeatureStatistics(kinds, probabilities, sampleEvery, sampleTarget);
    copy.partitions = new ConcurrentHashMap<>(partitions);
    return copy;
  }

  @Override
  public void reset() {
    partitions = new ConcurrentHashMap<>();
    current = null;
  }

  @Override
  public void add(Object value) {
    throw new UnsupportedOperationException("use addRow, feedLong or feedDouble");
  }

  @Override
  public void merge(AccumulatorV2<Object, Long> other) {
    FeatureStatistics that = (FeatureStatistics) other;
    partitions.putAll(that.partitions);
  }

  /**
   * The rows fed so far. Spark reads an accumulator's value after every task (for its UI and
   * listeners), so this is cheap; the figures are {@link #figures}.
   */
  @Override
  public Long value() {
    long rows = 0;
    for (Partition part : partitions.values()) {
      rows += part.rows;
    }
    return rows;
  }

  /** The figures as one JSON object: s_rows, s{i}_count, _finite, _min, _max, _mean, _q. */
  public String figures() {
    Partition total = new Partition(kinds.length);
    for (Partition part : new TreeMap<>(partitions).values()) {  // a deterministic sum
      total.merge(part, kinds);
    }
    StringBuilder json = new StringBuilder("{\"s_rows\": ").append(total.rows);
    for (int i = 0; i < kinds.length; i++) {
      int kind = kinds[i];
      boolean isLong = (kind & LONG) != 0;
      String prefix = ", \"s" + i + "_";
      json.append(prefix).append("count\": ").append(total.count[i]);
      long seen = isLong ? total.count[i] : total.finite[i];
      if ((kind & FINITE) != 0) {
        json.append(prefix).append("finite\": ").append(total.finite[i]);
      }
      extreme(json.append(prefix).append("min\": "), seen, isLong, total.minLong[i],
          total.minDouble[i]);
      extreme(json.append(prefix).append("max\": "), seen, isLong, total.maxLong[i],
          total.maxDouble[i]);
      if ((kind & MEAN) != 0) {
        json.append(prefix).append("mean\": ");
        if (seen == 0) {
          json.append("null");
        } else {
          number(json, total.sum[i] / seen);
        }
      }
      if ((kind & QUANTILES) != 0) {
        json.append(prefix).append("q\": ");
        List<HashSample> samples = new ArrayList<>();
        for (Partition part : partitions.values()) {
          if (part.samples[i] != null) {
            samples.add(part.samples[i]);
          }
        }
        double[] quantiles = HashSample.quantiles(samples, probabilities, 2 * sampleTarget);
        if (quantiles == null) {
          json.append("null");
        } else {
          json.append('[');
          for (int p = 0; p < quantiles.length; p++) {
            if (p > 0) {
              json.append(", ");
            }
            number(json, quantiles[p]);
          }
          json.append(']');
        }
      }
    }
    return json.append('}').toString();
  }

  /** A min or max: null when no value was seen, else the long or the double of its kind. */
  private static void extreme(
      StringBuilder json, long seen, boolean isLong, long longValue, double doubleValue) {
    if (seen == 0) {
      json.append("null");
    } else if (isLong) {
      json.append(longValue);
    } else {
      number(json, doubleValue);
    }
  }

  private static void number(StringBuilder json, double value) {
    if (Double.isNaN(value)) {
      json.append("NaN");
    } else if (Double.isInfinite(value)) {
      json.append(value > 0 ? "Infinity" : "-Infinity");
    } else {
      json.append(value);
    }
  }
}
