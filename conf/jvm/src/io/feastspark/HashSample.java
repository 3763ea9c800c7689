package io.feastspark;

import java.io.Serializable;
import java.util.Arrays;

/**
 * A bounded, mergeable sample of one feature's values, chosen by the rows' hashes: the values of
 * the rows with the smallest (hash, value), so a rerun keeps the same ones.
 *
 * <p>A partition keeps every value offered until it holds {@code 2 * capacity}, then only the
 * {@code capacity} smallest, and from then on only values below the largest kept one (its
 * limit). Values kept by every partition below the smallest such limit are a uniform
 * sample of the rows; {@link #quantiles} takes them, at most {@code total} of them.
 */
final class HashSample implements Serializable {
  private static final long serialVersionUID = 1L;

  private final int capacity;
  private long[] hashes = new long[16];
  private double[] values = new double[16];
  private int size;
  private boolean limited;
  private long limitHash;
  private double limitValue;

  HashSample(int capacity) {
    this.capacity = capacity;
  }

  void add(long hash, double value) {
    if (limited && !below(hash, value, limitHash, limitValue)) {
      return;
    }
    if (size == hashes.length) {
      if (size >= 2 * capacity) {
        shrink();
        if (!below(hash, value, limitHash, limitValue)) {
          return;
        }
      } else {
        hashes = Arrays.copyOf(hashes, size * 2);
        values = Arrays.copyOf(values, size * 2);
      }
    }
    hashes[size] = hash;
    values[size] = value;
    size++;
  }

  /**
   * Keeps the {@code capacity} smallest (hash, value) pairs; the largest becomes the limit.
   * Primitive sorts only: the hashes, then the values of the pairs that tie at the limit's hash.
   */
  private void shrink() {
    if (size <= capacity) {
      return;
    }
    long[] sorted = Arrays.copyOf(hashes, size);
    Arrays.sort(sorted);
    long hashAtLimit = sorted[capacity - 1];
    int below = 0;
    while (sorted[below] < hashAtLimit) {
      below++;
    }
    double[] tied = new double[size];
    int ties = 0;
    for (int i = 0; i < size; i++) {
      if (hashes[i] == hashAtLimit) {
        tied[ties++] = values[i];
      }
    }
    Arrays.sort(tied, 0, ties);
    double valueAtLimit = tied[capacity - below - 1];
    int tiesBelow = 0;  // tied pairs kept for sure: value before the limit's
    while (Double.compare(tied[tiesBelow], valueAtLimit) < 0) {
      tiesBelow++;
    }
    int equalToLimit = capacity - below - tiesBelow;  // pairs equal to the limit itself to keep
    long[] keptHashes = new long[Math.max(16, 2 * capacity)];
    double[] keptValues = new double[keptHashes.length];
    int kept = 0;
    for (int i = 0; i < size; i++) {
      boolean keep = below(hashes[i], values[i], hashAtLimit, valueAtLimit);
      if (!keep && hashes[i] == hashAtLimit && Double.compare(values[i], valueAtLimit) == 0
          && equalToLimit > 0) {
        equalToLimit--;
        keep = true;
      }
      if (keep) {
        keptHashes[kept] = hashes[i];
        keptValues[kept] = values[i];
        kept++;
      }
    }
    limited = true;
    limitHash = hashAtLimit;
    limitValue = valueAtLimit;
    hashes = keptHashes;
    values = keptValues;
    size = kept;
  }

  private static boolean below(long hash, double value, long otherHash, double otherValue) {
    return hash < otherHash || (hash == otherHash && Double.compare(value, otherValue) < 0);
  }

  /**
   * Sends at most {@code capacity} pairs, so a task's result stays small. A copy: an executor's
   * heartbeat serializes a running task's accumulators while the task still adds to them.
   */
  private Object writeReplace() {
    long[] ownHashes = hashes;
    double[] ownValues = values;
    int n = Math.min(size, Math.min(ownHashes.length, ownValues.length));
    HashSample copy = new HashSample(capacity);
    copy.hashes = Arrays.copyOf(ownHashes, Math.max(16, n));
    copy.values = Arrays.copyOf(ownValues, copy.hashes.length);
    copy.size = n;
    copy.limited = limited;
    copy.limitHash = limitHash;
    copy.limitValue = limitValue;
    copy.shrink();
    return copy;
  }

  /**
   * The values at {@code probabilities} of the partitions' samples together: each the smallest
   * value with at least that fraction of the sample at or below it (percentile_approx's rule);
   * null when no value was sampled.
   */
  static double[] quantiles(Iterable<HashSample> samples, double[] probabilities, int total) {
    boolean anyLimited = false;
    long limitHash = Long.MAX_VALUE;
    double limitValue = Double.POSITIVE_INFINITY;
    int all = 0;
    for (HashSample sample : samples) {
      all += sample.size;
      if (sample.limited
          && (!anyLimited || below(sample.limitHash, sample.limitValue, limitHash, limitValue))) {
        anyLimited = true;
        limitHash = sample.limitHash;
        limitValue = sample.limitValue;
      }
    }
    HashSample union = new HashSample(total);
    union.hashes = new long[Math.max(16, all)];
    union.values = new double[union.hashes.length];
    for (HashSample sample : samples) {
      for (int i = 0; i < sample.size; i++) {
        boolean kept = !anyLimited
            || !below(limitHash, limitValue, sample.hashes[i], sample.values[i]);
        if (kept) {
          union.hashes[union.size] = sample.hashes[i];
          union.values[union.size] = sample.values[i];
          union.size++;
        }
      }
    }
    if (union.size == 0) {
      return null;
    }
    union.shrink();
    double[] sorted = Arrays.copyOf(union.values, union.size);
    Arrays.sort(sorted);
    double[] quantiles = new double[probabilities.length];
    for (int p = 0; p < probabilities.length; p++) {
      int rank = (int) Math.ceil(probabilities[p] * sorted.length);
      quantiles[p] = sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
    }
    return quantiles;
  }
}
