"""Benchmark of the point-in-time join against the old join-then-rank, Spark's floor and DuckDB.

For each shape (and each --scale factor) it generates feature rows and entity rows to parquet in a
temporary directory, then times, reading the same parquet and writing parquet:

* ``ours``        feast_spark.spark.point_in_time.point_in_time_join (union + running window);
* ``join+rank``   the old way with the same semantics: join every entity row to every candidate
                  row of its key within max_age, then keep row_number() == 1 per entity row;
* ``floor``       Spark's floor for one shuffle of the feature rows: repartition by key, sort
                  within partitions, write;
* ``duckdb``      DuckDB's ASOF LEFT JOIN on the same parquet (single-machine reference; ASOF does
                  not order ties on event time by created time, our generated data has none that
                  matter for timing).

Shapes (defaults; every size can be overridden):

* ``sparse``: 10M feature rows over 1M keys spread over 90 days, 1M entity rows, max_age 7 days.
* ``dense``:  10M feature rows over 10K keys, one per key and hour, 1M entity rows, max_age 30 days.

``--scale`` multiplies the rows; ``--scale-by keys`` (the default) grows the keys with them, the
same shape at a larger size, and ``--scale-by rows-per-key`` keeps the keys, so every key gets
more rows.

Example (reduced sizes for a 2-core machine)::

    python benchmarks/historical_retrieval.py --shape both --feature-rows 1000000 \\
        --entity-rows 100000 --keys 100000 --dense-keys 1000 --scale 1,2,4 --repeat 3

Times are the best of --repeat runs, interleaved across methods (shared machines are noisy).

``--whole-process`` times what users run instead, each method a fresh process from its start to
its exit (``retrieval_processes.py``): ``ours`` is ``feast-spark get-historical-features`` on a
project whose table was ingested from the same parquet, ``ours warm`` the same command while the
project's warm driver serves (``feast-spark driver start``), ``floor`` the floor above as its own
spark-submit; ``--peer-job PATH`` (implies ``--whole-process``) adds feast-spark 0.2.7's
``historical_feature_retrieval_job.py`` in its own spark-submit on the same parquet and max_age.
The issue's shapes, as whole processes (``--max-age-days 7`` for both)::

    python benchmarks/historical_retrieval.py --whole-process --peer-job \
        /work/peers/feast-spark-0.2.7/historical_feature_retrieval_job.py --shape dense \
        --feature-rows 5000000 --dense-keys 5000 --entity-rows 1000000 --max-age-days 7
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from feast_spark.spark.point_in_time import FeatureTableInput, point_in_time_join

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

BASE = datetime(2021, 1, 1, tzinfo=UTC)
FEATURES = ("f_double", "f_long", "f_str")


@dataclass(frozen=True)
class Shape:
    name: str
    feature_rows: int
    keys: int
    entity_rows: int
    max_age: timedelta
    hot_key_share: float = 0.0  # fraction of entity rows on key 0 (skew)
    hot_feature_share: float = 0.0  # fraction of feature rows on key 0 (skew)

    @property
    def label(self) -> str:
        """The shape's name, with ``+skew`` when a key holds a share of the rows."""
        return self.name + ("+skew" if self.hot_key_share or self.hot_feature_share else "")

    def scaled(self, factor: int, by: str = "keys") -> Shape:
        """``factor`` times the feature and entity rows.

        ``by="keys"``: the same shape, more of it; keys grow too, so rows per key and the time
        span stay. ``by="rows-per-key"``: the keys stay, so each has ``factor`` times the rows
        (sparse: over the same 90 days; dense: hourly over a longer span).
        """
        keys = self.keys * factor if by == "keys" else self.keys
        return replace(
            self,
            feature_rows=self.feature_rows * factor,
            entity_rows=self.entity_rows * factor,
            keys=keys,
        )


@dataclass
class Result:
    shape: str
    scale: int
    method: str
    seconds: float | None  # None: timed out or failed
    rows: int | None
    note: str = ""


# --------------------------------------------------------------------------------------------------
# Data


def generate(spark: SparkSession, shape: Shape, directory: Path) -> tuple[str, str]:
    """Write feature rows and entity rows as parquet; return their paths."""
    from pyspark.sql import functions as sf

    base_us = int(BASE.timestamp()) * 1_000_000
    hour_us = 3_600_000_000
    features_path, entities_path = str(directory / "features"), str(directory / "entities")
    ids = spark.range(shape.feature_rows)
    if shape.name == "dense":
        # One row per key and hour: rows of a key are hourly, span = feature_rows / keys hours.
        span_us = (shape.feature_rows // shape.keys) * hour_us
        key = sf.col("id") % shape.keys
        event_us = sf.lit(base_us) + (sf.col("id") / sf.lit(shape.keys)).cast("long") * hour_us
    else:
        span_us = 90 * 24 * hour_us
        key = (sf.col("id") * 7_919) % shape.keys  # ~feature_rows / keys rows per key
        event_us = sf.lit(base_us) + (sf.rand(1) * span_us).cast("long")
    if shape.hot_feature_share:
        key = sf.when(sf.rand(7) < shape.hot_feature_share, sf.lit(0).cast("long")).otherwise(key)
    features = ids.select(
        key.alias("key"),
        sf.rand(2).alias("f_double"),
        sf.col("id").alias("f_long"),
        sf.concat(sf.lit("v"), (sf.col("id") % 100).cast("string")).alias("f_str"),
        sf.timestamp_micros(event_us).alias("event_timestamp"),
        sf.timestamp_micros(event_us + (sf.rand(3) * 60_000_000).cast("long")).alias(
            "created_timestamp"
        ),
    )
    features.write.mode("overwrite").parquet(features_path)
    entities = spark.range(shape.entity_rows).select(
        sf.col("id").alias("row_id"),
        sf.when(sf.rand(6) < shape.hot_key_share, sf.lit(0).cast("long"))
        .otherwise((sf.rand(4) * shape.keys).cast("long"))
        .alias("key"),
        sf.timestamp_micros(sf.lit(base_us) + (sf.rand(5) * span_us).cast("long")).alias(
            "event_timestamp"
        ),
        sf.lit("pass-through").alias("label"),
    )
    entities.write.mode("overwrite").parquet(entities_path)
    return features_path, entities_path


# --------------------------------------------------------------------------------------------------
# Methods


def ours(spark: SparkSession, shape: Shape, features: str, entities: str, out: str) -> None:
    table = FeatureTableInput("t", ("key",), FEATURES, shape.max_age, spark.read.parquet(features))
    point_in_time_join(spark.read.parquet(entities), [table]).write.mode("overwrite").parquet(out)


def join_then_rank(
    spark: SparkSession, shape: Shape, features: str, entities: str, out: str
) -> None:
    """Feast's old as_of_join (with a stable row id instead of monotonically_increasing_id)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as sf

    entity = spark.read.parquet(entities).alias("e")
    feature = spark.read.parquet(features).select(
        *[sf.col(c).alias(f"t__{c}") for c in ("key", *FEATURES, "event_timestamp")],
        sf.col("created_timestamp").alias("t__created_timestamp"),
    )
    max_age_s = int(shape.max_age.total_seconds())
    condition = (
        (sf.col("e.key") == sf.col("t__key"))
        & (sf.col("t__event_timestamp") <= sf.col("e.event_timestamp"))
        & (
            sf.col("t__event_timestamp")
            >= sf.col("e.event_timestamp") - sf.expr(f"INTERVAL {max_age_s} SECONDS")
        )
    )
    window = Window.partitionBy("row_id").orderBy(
        sf.col("t__event_timestamp").desc(),
        sf.col("t__created_timestamp").desc(),
        *[sf.col(f"t__{c}").desc() for c in FEATURES],
    )
    ranked = (
        entity.join(feature, condition, "left")
        .withColumn("_rank", sf.row_number().over(window))
        .filter("_rank = 1")
    )
    ranked.select(
        "row_id", "e.key", "event_timestamp", "label", *[f"t__{c}" for c in FEATURES]
    ).write.mode("overwrite").parquet(out)


def floor(spark: SparkSession, shape: Shape, features: str, entities: str, out: str) -> None:
    (
        spark.read.parquet(features)
        .repartition("key")
        .sortWithinPartitions("key", "event_timestamp")
        .write.mode("overwrite")
        .parquet(out)
    )


def duckdb_asof(shape: Shape, features: str, entities: str, out: str, timeout: float) -> None:
    import duckdb

    max_age_us = shape.max_age // timedelta(microseconds=1)
    picked = ", ".join(
        f"CASE WHEN epoch_us(f.event_timestamp) >= epoch_us(e.event_timestamp) - {max_age_us} "
        f"THEN f.{c} END AS t__{c}"
        for c in FEATURES
    )
    query = f"""
        COPY (
            SELECT e.row_id, e.key, e.event_timestamp, e.label, {picked}
            FROM read_parquet('{entities}/*.parquet') e
            ASOF LEFT JOIN read_parquet('{features}/*.parquet') f
              ON e.key = f.key AND e.event_timestamp >= f.event_timestamp
        ) TO '{out}' (FORMAT parquet)
    """
    connection = duckdb.connect()
    connection.execute("SET threads = 2; SET TimeZone = 'UTC'")
    timer = threading.Timer(timeout, connection.interrupt)
    timer.start()
    try:
        connection.execute(query)
    finally:
        timer.cancel()
        connection.close()


# --------------------------------------------------------------------------------------------------
# Running


@contextlib.contextmanager
def spark_deadline(spark: SparkSession, seconds: float) -> Iterator[None]:
    """Cancel this thread's Spark jobs after ``seconds``."""
    tag = f"bench-{time.monotonic_ns()}"
    spark.addTag(tag)
    timer = threading.Timer(seconds, lambda: spark.interruptTag(tag))
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        spark.removeTag(tag)


def row_count(spark: SparkSession, path: str) -> int | None:
    if not os.path.exists(path):
        return None
    if os.path.isfile(path):  # DuckDB writes one file
        import duckdb

        with duckdb.connect() as connection:
            rows = connection.execute(f"SELECT count(*) FROM read_parquet('{path}')").fetchall()
        return int(rows[0][0])
    return spark.read.parquet(path).count()


def run_shape(
    spark: SparkSession, shape: Shape, scale: int, methods: list[str], args: argparse.Namespace
) -> list[Result]:
    directory = Path(tempfile.mkdtemp(prefix=f"pit-{shape.name}-{scale}x-", dir=args.tmp))
    results: list[Result] = []
    try:
        started = time.perf_counter()
        features, entities = generate(spark, shape, directory)
        print(
            f"\n[{shape.name} {scale}x] {shape.feature_rows:,} feature rows over {shape.keys:,} "
            f"keys ({shape.hot_feature_share:.0%} on one key), {shape.entity_rows:,} entity rows "
            f"({shape.hot_key_share:.0%} on one key), "
            f"max_age {shape.max_age.days} days: generated in "
            f"{time.perf_counter() - started:.1f}s",
            flush=True,
        )
        if args.whole_process:
            from retrieval_processes import run_whole_process

            run_whole_process(
                f"{shape.label} {scale}x",
                directory,
                features,
                entities,
                int(shape.max_age.total_seconds()),
                methods,
                args,
            )
            return results
        spark_methods: dict[str, Callable[..., None]] = {
            "floor": floor,
            "ours": ours,
            "join+rank": join_then_rank,
        }
        times: dict[str, list[float]] = {m: [] for m in methods}
        notes: dict[str, str] = {m: "" for m in methods}
        # Rounds interleave the methods so that load from elsewhere hits them alike; a method
        # that failed, or took over a minute (noise matters little then), is not repeated.
        for round_number in range(args.repeat):
            for method in methods:
                done = times[method]
                if notes[method] or (round_number > 0 and (not done or done[0] > 60)):
                    continue
                out = str(directory / f"out-{method.replace('+', '-')}")
                started = time.perf_counter()
                try:
                    if method == "duckdb":
                        duckdb_asof(shape, features, entities, out + ".parquet", args.timeout)
                    else:
                        with spark_deadline(spark, args.timeout):
                            spark_methods[method](spark, shape, features, entities, out)
                    done.append(time.perf_counter() - started)
                    print(f"  {method:<10} {done[-1]:8.1f}s", flush=True)
                except Exception as error:  # a benchmark reports a failure and goes on
                    elapsed = time.perf_counter() - started
                    kind = "timeout" if elapsed >= args.timeout else type(error).__name__
                    notes[method] = f"{kind} after {elapsed:.0f}s"
                    print(f"  {method:<10} {notes[method]}", flush=True)
        for method in methods:
            out = str(directory / f"out-{method.replace('+', '-')}")
            out += ".parquet" if method == "duckdb" else ""
            best = min(times[method]) if times[method] else None
            rows = row_count(spark, out) if best is not None else None
            runs = " ".join(f"{t:.2f}" for t in times[method])
            note = notes[method] or (f"runs: {runs}" if len(times[method]) > 1 else "")
            results.append(Result(shape.label, scale, method, best, rows, note))
        reference = next((m for m in ("join+rank", "duckdb") if m in methods), None)
        if args.verify and "ours" in methods and reference:
            note = verify(spark, directory, reference)
            next(r for r in results if r.method == "ours").note += note
    finally:
        if args.keep:
            print(f"  kept {directory}", flush=True)
        else:
            shutil.rmtree(directory, ignore_errors=True)
    return results


def verify(spark: SparkSession, directory: Path, reference: str) -> str:
    """Ours and the reference (join-then-rank, else DuckDB) must give the same rows.

    DuckDB's ASOF picks any of several feature rows at the same event time, so it can differ
    where such ties exist (the dense shape's hot key has thousands per hour).
    """
    columns = ["row_id", *[f"t__{c}" for c in FEATURES]]
    ours_rows = spark.read.parquet(str(directory / "out-ours")).select(*columns)
    name = "out-join-rank" if reference == "join+rank" else "out-duckdb.parquet"
    other_rows = spark.read.parquet(str(directory / name)).select(*columns)
    differ = ours_rows.exceptAll(other_rows).count() + other_rows.exceptAll(ours_rows).count()
    print(f"  verify: ours vs {reference} differ on {differ} rows", flush=True)
    return f" verify-diff={differ} (vs {reference})"


def print_table(results: list[Result]) -> None:
    print("\nshape        scale  method       best s  x floor   rows        note")
    for result in results:
        floor_s = next(
            (
                r.seconds
                for r in results
                if r.shape == result.shape and r.scale == result.scale and r.method == "floor"
            ),
            None,
        )
        seconds = f"{result.seconds:8.2f}" if result.seconds is not None else "       -"
        ratio = (
            f"{result.seconds / floor_s:7.2f}"
            if result.seconds is not None and floor_s
            else "      -"
        )
        rows = f"{result.rows:,}" if result.rows is not None else "-"
        print(
            f"{result.shape:<12} {result.scale:>4}x  {result.method:<10} {seconds}  {ratio}  "
            f"{rows:<11} {result.note}"
        )
    print_targets(results)


# The targets: ours at most 1.3x the floor; join-then-rank at least this many times ours.
FLOOR_TARGET = 1.3
JOIN_THEN_RANK_TARGET = {"sparse": 1.5, "dense": 4.0}
SKEW_TARGET = 1.5  # a hot key's shape, against the same shape without one


def print_targets(results: list[Result]) -> None:
    """Each target's ratio from the best times above, to two decimals."""
    best = {(r.shape, r.scale, r.method): r.seconds for r in results if r.seconds}
    for shape, scale in dict.fromkeys((r.shape, r.scale) for r in results):
        ours = best.get((shape, scale, "ours"))
        floor_s = best.get((shape, scale, "floor"))
        old_way = best.get((shape, scale, "join+rank"))
        if ours and floor_s:
            met = "met" if ours / floor_s <= FLOOR_TARGET else "NOT met"
            print(
                f"target {shape} {scale}x: ours / floor {ours / floor_s:.2f}, at most "
                f"{FLOOR_TARGET}: {met}"
            )
        unskewed = best.get((shape.removesuffix("+skew"), scale, "ours"))
        if ours and unskewed and shape.endswith("+skew"):
            met = "met" if ours / unskewed <= SKEW_TARGET else "NOT met"
            print(
                f"target {shape} {scale}x: ours / ours unskewed {ours / unskewed:.2f}, at most "
                f"{SKEW_TARGET}: {met}"
            )
        if ours and old_way and shape in JOIN_THEN_RANK_TARGET:
            wanted = JOIN_THEN_RANK_TARGET[shape]
            met = "met" if old_way / ours >= wanted else "NOT met"
            print(
                f"target {shape} {scale}x: join+rank / ours {old_way / ours:.2f}, at least "
                f"{wanted}: {met}"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", choices=["sparse", "dense", "both"], default="both")
    parser.add_argument("--feature-rows", type=int, default=10_000_000)
    parser.add_argument("--entity-rows", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=1_000_000, help="keys of the sparse shape")
    parser.add_argument("--dense-keys", type=int, default=10_000, help="keys of the dense shape")
    parser.add_argument(
        "--scale",
        default="1",
        help="comma-separated factors on feature and entity rows, e.g. 1,2,4",
    )
    parser.add_argument(
        "--scale-by",
        choices=["keys", "rows-per-key"],
        default="keys",
        help="what grows with --scale besides the rows: the keys (same shape), or rows per key",
    )
    parser.add_argument(
        "--methods", default="floor,ours,join+rank,duckdb", help="comma-separated subset"
    )
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per method")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--shuffle-partitions", type=int, default=8)
    parser.add_argument("--driver-memory", default="6g")
    parser.add_argument("--tmp", default=None, help="directory for generated data")
    parser.add_argument(
        "--verify", action="store_true", help="check ours == join+rank (else == duckdb)"
    )
    parser.add_argument(
        "--hot-key-share", type=float, default=0.0, help="fraction of entity rows on one key"
    )
    parser.add_argument(
        "--hot-feature-share", type=float, default=0.0, help="fraction of feature rows on one key"
    )
    parser.add_argument(
        "--also-unskewed",
        action="store_true",
        help="with a hot share, run each shape without it first, for the skewed/unskewed ratio",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per method (best is reported)")
    parser.add_argument("--no-warmup", action="store_true", help="skip the untimed tiny run")
    parser.add_argument(
        "--whole-process",
        action="store_true",
        help="time ours (the CLI command) and the floor as whole processes",
    )
    parser.add_argument(
        "--peer-job",
        default=None,
        help="feast-spark 0.2.7's historical_feature_retrieval_job.py, timed as a whole "
        "process beside ours (implies --whole-process)",
    )
    parser.add_argument(
        "--tree", default=None, help="with --whole-process: the feast-spark tree to run"
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the generated data and project (e.g. for benchmarks/job_timeline.py)",
    )
    parser.add_argument(
        "--max-age-days", type=int, default=None, help="max_age of both shapes (default 7/30)"
    )
    args = parser.parse_args(argv)
    args.whole_process = args.whole_process or bool(args.peer_job)
    print("command: python benchmarks/historical_retrieval.py " + " ".join(argv or sys.argv[1:]))

    from feast_spark.spark.session import build_spark_session

    spark = build_spark_session(
        "feast-spark-benchmark",
        master=args.master,
        conf={
            "spark.sql.shuffle.partitions": str(args.shuffle_partitions),
            "spark.driver.memory": args.driver_memory,
            "spark.ui.enabled": "false",
        },
    )
    spark.sparkContext.setLogLevel("ERROR")
    shapes = {
        "sparse": Shape(
            "sparse",
            args.feature_rows,
            args.keys,
            args.entity_rows,
            timedelta(days=args.max_age_days or 7),
            args.hot_key_share,
            args.hot_feature_share,
        ),
        "dense": Shape(
            "dense",
            args.feature_rows,
            args.dense_keys,
            args.entity_rows,
            timedelta(days=args.max_age_days or 30),
            args.hot_key_share,
            args.hot_feature_share,
        ),
    }
    chosen = ["sparse", "dense"] if args.shape == "both" else [args.shape]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    # JIT and first-use costs of the JVM, outside the figures (a whole process pays its own)
    if not args.no_warmup and not args.whole_process:
        print("warm-up on a tiny shape...", flush=True)
        tiny = Shape("dense", 20_000, 100, 2_000, timedelta(days=30))
        once = argparse.Namespace(**{**vars(args), "repeat": 1, "verify": False})
        run_shape(spark, tiny, 1, [m for m in methods if m != "duckdb"], once)
    results: list[Result] = []
    for scale in [int(s) for s in args.scale.split(",")]:
        for name in chosen:
            shape = shapes[name].scaled(scale, args.scale_by)
            if args.also_unskewed and shape.label != shape.name:
                unskewed = replace(shape, hot_key_share=0.0, hot_feature_share=0.0)
                results += run_shape(spark, unskewed, scale, methods, args)
            results += run_shape(spark, shape, scale, methods, args)
    if results:
        print_table(results)
    spark.stop()


if __name__ == "__main__":
    main()
