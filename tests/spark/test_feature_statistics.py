"""Feature statistics recorded by ingests: equal to pandas on the rows written, keyed by version."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest

from feast_spark.definitions import Entity, Feature, FeatureTable, FileSource
from feast_spark.spark import feature_statistics
from feast_spark.spark.commit_retry import RetryPolicy
from feast_spark.spark.feature_statistics import (
    FedStatistics,
    StatisticsPlan,
    feature_figures,
    has_own_jar,
    quantile_sample,
    statistics_plan,
    to_statistics,
)
from feast_spark.spark.ingest import IngestOutcome, ingest_table
from feast_spark.specs import Window
from feast_spark.statistics import (
    QUANTILE_ACCURACY,
    FeatureStatistics,
    IngestStatistics,
    drift_flags,
    read_statistics,
    statistics_table_path,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DRIVER = Entity("driver_id", "INT64")
INGESTED = datetime(2024, 2, 1, tzinfo=UTC)
FAST_RETRY = RetryPolicy(attempts=10, first_delay_s=0.05, max_delay_s=1.0)
SOURCE_DDL = (
    "driver_id bigint, ts timestamp, created timestamp, trips string, rating double, "
    "label string, tags array<string>"
)
FEATURES = (
    Feature("trips", "INT64"),
    Feature("rating", "DOUBLE"),
    Feature("label", "STRING"),
    Feature("tags", "STRING_LIST"),
)


def at(day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2024, 1, day, hour, minute, tzinfo=UTC)


class Store:
    def __init__(self, spark: SparkSession, root: Path) -> None:
        self.spark = spark
        self.root = root
        self.table_path = str(root / "offline" / "demo" / "driver_stats")
        self.sources = 0

    def source(self, rows: list[tuple[Any, ...]]) -> str:
        self.sources += 1
        path = str(self.root / f"source{self.sources}")
        self.spark.createDataFrame(rows, SOURCE_DDL).write.parquet(path)
        return path

    def ingest(
        self, path: str, window: Window | None, job_id: str, *, statistics: bool = True
    ) -> IngestOutcome:
        table = FeatureTable(
            name="driver_stats",
            entities=["driver_id"],
            features=list(FEATURES),
            batch_source=FileSource(
                path=path, event_timestamp_column="ts", created_timestamp_column="created"
            ),
        )
        return ingest_table(
            self.spark,
            table=table,
            entities=[DRIVER],
            source=table.batch_source,
            window=window,
            table_path=self.table_path,
            job_id=job_id,
            ingested_at=INGESTED,
            retry=FAST_RETRY,
            statistics=statistics,
        )

    def written(self, version: int) -> pd.DataFrame:
        """The offline table at ``version``, as pandas."""
        frame = self.spark.read.format("delta").option("versionAsOf", version)
        return frame.load(self.table_path).toPandas()


@pytest.fixture(params=["jvm", "observe"])
def store(
    request: pytest.FixtureRequest,
    spark: SparkSession,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Store:
    """A store whose ingests compute figures with our JVM accumulator, or (a Spark without our
    jar) with observed SQL aggregates: both must give the same records."""
    if request.param == "observe":
        monkeypatch.setattr(feature_statistics, "has_own_jar", lambda session: False)
    return Store(spark, tmp_path)


def rows_of_day(
    day: int, count: int, *, mean: float = 50.0, null_every: int = 10, seed: int = 1
) -> list[tuple[Any, ...]]:
    """``count`` rows on ``day``: every ``null_every``-th rating null, every 7th trips invalid."""
    draw = random.Random(seed)
    rows = []
    for i in range(count):
        ts = at(day) + timedelta(seconds=i * 86_399 // count)
        invalid = i % 7 == 3
        trips = "x" if invalid else (None if i % 11 == 0 else str(draw.randint(0, 500)))
        # A rejected row carries an outlier: if it were counted, max would show it.
        rating = 1e9 if invalid else (None if i % null_every == 0 else draw.gauss(mean, 5.0))
        label = None if i % 13 == 0 else "x" * draw.randint(1, 9)
        tags = None if i % 17 == 0 else ["t"] * draw.randint(0, 4)
        rows.append((i % 50, ts, ts, trips, rating, label, tags))
    return rows


def expected(values: pd.Series, measure: str = "value") -> dict[str, Any]:
    """What the statistics should say about ``values`` (pandas)."""
    present = values.dropna()
    if measure == "length":
        present = present.map(len)
    return {
        "count": int(present.size),
        "nulls": int(values.size - present.size),
        "min": None if present.empty else present.min(),
        "max": None if present.empty else present.max(),
        "mean": None if present.empty else float(present.astype(float).mean()),
    }


def assert_matches(feature: FeatureStatistics, values: pd.Series, measure: str = "value") -> None:
    want = expected(values, measure)
    assert (feature.count, feature.nulls) == (want["count"], want["nulls"])
    assert (feature.min, feature.max) == (want["min"], want["max"])
    assert feature.mean == pytest.approx(want["mean"], rel=1e-9)


def assert_quantiles_within_error(
    record: IngestStatistics, feature: FeatureStatistics, values: pd.Series
) -> None:
    """Each quantile is a value whose rank is within rows / accuracy of the exact rank."""
    data = np.sort(values.dropna().to_numpy(dtype=float))
    assert feature.quantiles is not None
    slack = 1.0 / QUANTILE_ACCURACY + 1.0 / data.size
    for probability, quantile in zip(record.quantile_probabilities, feature.quantiles, strict=True):
        low = np.quantile(data, max(0.0, probability - slack), method="lower")
        high = np.quantile(data, min(1.0, probability + slack), method="higher")
        assert low <= quantile <= high, (probability, quantile, low, high)


def test_statistics_equal_pandas_on_the_rows_written(store: Store) -> None:
    # given a day of rows, some rejected (with outliers), some outside the window
    rows = rows_of_day(1, 1500) + rows_of_day(2, 200, mean=1000.0, seed=2)
    # when the window of day 1 is replaced with them
    outcome = store.ingest(store.source(rows), Window(at(1), at(2)), "ingest-1")
    # then the statistics describe exactly the rows written (pandas on the table's version)
    record = outcome.statistics
    assert record is not None and outcome.delta_version is not None
    assert record.version == outcome.delta_version and record.job_id == "ingest-1"
    assert record.rows == outcome.rows_written and outcome.rows_rejected > 0
    written = store.written(outcome.delta_version)
    assert len(written) == record.rows
    trips, rating = record.feature("trips"), record.feature("rating")
    assert trips is not None and rating is not None
    assert_matches(trips, written["trips"])
    assert_matches(rating, written["rating"])
    assert rating.max < 1e9  # the rejected rows' outliers are not counted
    assert_matches(record.feature("label"), written["label"], "length")  # type: ignore[arg-type]
    assert_matches(record.feature("tags"), written["tags"], "length")  # type: ignore[arg-type]
    assert_quantiles_within_error(record, trips, written["trips"])
    assert_quantiles_within_error(record, rating, written["rating"])
    # and its file holds the same record, keyed by the version, read without Spark
    assert read_statistics(store.table_path, versions=5) == [record]


def test_an_empty_window_records_a_version_without_rows(store: Store) -> None:
    # given day 1 ingested
    store.ingest(store.source(rows_of_day(1, 100)), Window(at(1), at(2)), "ingest-1")
    # when day 1 is replaced by a source without rows in it (its rows are deleted)
    outcome = store.ingest(store.source(rows_of_day(3, 10)), Window(at(1), at(2)), "ingest-2")
    # then that version's statistics say no rows, no values
    record = outcome.statistics
    assert outcome.committed and record is not None and record.rows == 0
    for feature in record.features:
        assert (feature.count, feature.nulls, feature.min, feature.max) == (0, 0, None, None)
        assert feature.mean is None and feature.quantiles is None
        assert feature.null_fraction is None
    assert [s.job_id for s in read_statistics(store.table_path, 5)] == ["ingest-1", "ingest-2"]


@pytest.mark.slow
def test_a_shifted_second_ingest_is_flagged_and_a_steady_one_is_not(store: Store) -> None:
    # given three daily ingests: day 2 like day 1, day 3 shifted and with more nulls
    store.ingest(store.source(rows_of_day(1, 700)), Window(at(1), at(2)), "day-1")
    store.ingest(store.source(rows_of_day(2, 700, seed=5)), Window(at(2), at(3)), "day-2")
    shifted = rows_of_day(3, 700, mean=80.0, null_every=3, seed=6)
    store.ingest(store.source(shifted), Window(at(3), at(4)), "day-3")
    # when the last ingests are compared
    history = read_statistics(store.table_path, versions=3)
    flags = drift_flags(history, null_threshold=0.05)
    # then only rating on day 3 is flagged, by both rules
    assert [s.job_id for s in history] == ["day-1", "day-2", "day-3"]
    assert sorted((f.feature, f.version, f.rule) for f in flags) == [
        ("rating", history[2].version, "median"),
        ("rating", history[2].version, "nulls"),
    ]


def test_add_mode_records_the_valid_source_rows_and_a_rerun_records_nothing(store: Store) -> None:
    # given a table created by an add-mode ingest (its statistics observed on that write)
    first = store.ingest(store.source(rows_of_day(1, 300)), None, "add-1")
    assert first.statistics is not None and first.statistics.rows == first.rows_written
    # when a second source is merged in (half its rows are already there)
    rows = rows_of_day(1, 300) + rows_of_day(2, 300, seed=9)
    second = store.ingest(store.source(rows), None, "add-2")
    # then its statistics describe the source's valid rows, computed with the merge's range pass
    record = second.statistics
    assert record is not None and second.mode == "add" and second.rows_present > 0
    assert record.rows == second.rows_read - second.rows_rejected
    valid = pd.DataFrame(
        [r for i, r in enumerate(rows) if (i % 300) % 7 != 3],
        columns=["driver_id", "ts", "created", "trips", "rating", "label", "tags"],
    )
    assert_matches(record.feature("rating"), valid["rating"])  # type: ignore[arg-type]
    # and a rerun adds nothing, commits nothing, records nothing
    rerun = store.ingest(store.source(rows), None, "add-3")
    assert not rerun.committed and rerun.statistics is None
    assert [s.job_id for s in read_statistics(store.table_path, 5)] == ["add-1", "add-2"]


def test_statistics_off_records_nothing(store: Store) -> None:
    outcome = store.ingest(
        store.source(rows_of_day(1, 20)), Window(at(1), at(2)), "quiet", statistics=False
    )
    assert outcome.committed and outcome.statistics is None
    assert not Path(statistics_table_path(store.table_path)).exists()
    assert read_statistics(store.table_path, 5) == []


RATING_TABLE = FeatureTable(
    name="t",
    entities=["driver_id"],
    features=[Feature("rating", "DOUBLE")],
    batch_source=FileSource(path="x", event_timestamp_column="ts"),
)


def ratings(spark: SparkSession, rows: int) -> Any:
    return spark.range(rows).selectExpr(
        "id AS driver_id",
        "timestamp_micros(id * 1000000) AS event_timestamp",
        "CASE WHEN id % 10 = 0 THEN NULL ELSE CAST((id * 7919) % 1000 AS DOUBLE) / 10 END"
        " AS rating",
    )


def assert_quantiles_within_ranks(record: IngestStatistics, data: np.ndarray, slack: float) -> None:
    for probability, quantile in zip(
        record.quantile_probabilities, record.features[0].quantiles or (), strict=True
    ):
        low = np.quantile(data, max(0.0, probability - slack), method="lower")
        high = np.quantile(data, min(1.0, probability + slack), method="higher")
        assert low <= quantile <= high, (probability, quantile)


@pytest.mark.parametrize("path", ["jvm", "observe"])
def test_a_large_ingest_samples_its_quantiles_by_hash_and_keeps_exact_counts(
    spark: SparkSession, path: str
) -> None:
    # given 40,000 rows, quantiles fed by one row in 8 (as a large source would get)
    frame = ratings(spark, 40_000)
    figures: FedStatistics | StatisticsPlan = (
        FedStatistics(spark, RATING_TABLE, None, 8)
        if path == "jvm"
        else statistics_plan(RATING_TABLE, sample=8)
    )
    # when the figures are aggregated (twice)
    values = [figures.aggregate(frame) for _ in range(2)]
    record = to_statistics(values[0], RATING_TABLE, version=0, job_id="j", ingested_at=INGESTED,
                           mode="add")  # fmt: skip
    # then counts, min, max and mean are exact, and a rerun samples the same rows
    assert_matches(record.features[0], frame.toPandas()["rating"])
    assert values[0] == values[1]
    # and each quantile is within the sample's error (5,000 rows: 4 sigma is about 3% of ranks)
    data = np.sort(frame.toPandas()["rating"].dropna().to_numpy())
    assert_quantiles_within_ranks(record, data, 0.03)


def test_a_source_larger_than_its_size_estimate_keeps_a_bounded_uniform_sample(
    spark: SparkSession,
) -> None:
    # given 40,000 rows fed whole to the quantiles (a source of unknown size gets sample 1),
    # with partitions that may keep only 500 sampled values each
    frame = ratings(spark, 40_000).repartition(4)
    figures = FedStatistics(spark, RATING_TABLE, None, 1, sample_target=500)
    # when the figures are aggregated (twice)
    values = [figures.aggregate(frame) for _ in range(2)]
    record = to_statistics(values[0], RATING_TABLE, version=0, job_id="j", ingested_at=INGESTED,
                           mode="add")  # fmt: skip
    # then counts stay exact, the quantiles come from a uniform sample of at most 1,000 values
    # (4 sigma of ranks is about 6%), and a rerun picks the same values
    assert_matches(record.features[0], frame.toPandas()["rating"])
    data = np.sort(frame.toPandas()["rating"].dropna().to_numpy())
    assert_quantiles_within_ranks(record, data, 0.07)
    assert values[0]["s0_q"] == values[1]["s0_q"]


def test_a_plan_run_twice_counts_its_rows_once(spark: SparkSession) -> None:
    # given rows that feed the JVM figures as they pass
    from pyspark.sql import Observation
    from pyspark.sql import functions as F  # noqa: N812

    figures = FedStatistics(spark, RATING_TABLE, None, 1)
    observed = figures.observe(ratings(spark, 1000).repartition(3), Observation(), F.count("*"))
    # when the plan runs twice (as a re-run stage or a second action would)
    observed.collect()
    observed.collect()
    # then each partition's rows count once
    assert figures.figures({})["s_rows"] == 1000
    assert figures.figures({})["s0_count"] == 900


def test_our_sessions_feed_figures_from_generated_code(spark: SparkSession) -> None:
    # given the session our tests (and jobs) build, with feast-spark's jar
    # then the figures come from the JVM accumulator, and without the jar from observe
    assert has_own_jar(spark)
    assert isinstance(feature_figures(spark, RATING_TABLE), FedStatistics)


def test_without_our_jar_the_figures_are_observed_with_a_warning(
    spark: SparkSession, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(feature_statistics, "has_own_jar", lambda session: False)
    assert isinstance(feature_figures(spark, RATING_TABLE), StatisticsPlan)
    assert "feast-spark's jar is not on this Spark's classpath" in caplog.text


EVERY_TYPE = FeatureTable(
    name="every_type",
    entities=["driver_id"],
    features=[
        Feature("i32", "INT32"),
        Feature("i64", "INT64"),
        Feature("f32", "FLOAT"),
        Feature("f64", "DOUBLE"),
        Feature("flag", "BOOL"),
        Feature("seen", "UNIX_TIMESTAMP"),
        Feature("name", "STRING"),
        Feature("blob", "BYTES"),
        Feature("tags", "STRING_LIST"),
    ],
    batch_source=FileSource(path="x", event_timestamp_column="ts"),
)


def test_both_ways_give_the_same_figures_for_every_type(spark: SparkSession) -> None:
    # given 997 rows of every feature type, with nulls, NaN, infinities, extreme integers,
    # and rejected rows (not counted) holding outliers
    frame = spark.range(997).selectExpr(
        "id AS driver_id",
        "timestamp_micros(id * 1000000) AS event_timestamp",
        "CASE WHEN id % 13 = 0 THEN 'bad' END AS _feast_reject_reason",
        "CASE WHEN id % 13 = 0 THEN 2147483647 WHEN id % 5 = 0 THEN NULL"
        " ELSE CAST(id * 7 % 1000 - 500 AS INT) END AS i32",
        "CASE WHEN id = 1 THEN 9223372036854775807 WHEN id = 2 THEN -9223372036854775808"
        " ELSE id * 31 END AS i64",
        "CASE WHEN id % 7 = 0 THEN CAST('NaN' AS FLOAT) ELSE CAST(id / 3 AS FLOAT) END AS f32",
        "CASE WHEN id = 4 THEN CAST('-Infinity' AS DOUBLE) WHEN id % 9 = 0 THEN NULL"
        " ELSE sin(id) * 1000 END AS f64",
        "CASE WHEN id % 6 = 0 THEN NULL ELSE id % 4 = 0 END AS flag",
        "CASE WHEN id % 8 = 0 THEN NULL ELSE timestamp_micros(id * 123456789) END AS seen",
        "CASE WHEN id % 10 = 0 THEN NULL ELSE repeat('é', CAST(id % 12 AS INT)) END AS name",
        "CAST(repeat('b', CAST(id % 5 AS INT)) AS BINARY) AS blob",
        "CASE WHEN id % 11 = 0 THEN NULL ELSE array_repeat('t', CAST(id % 4 AS INT)) END AS tags",
    )
    valid = "`_feast_reject_reason` IS NULL"
    # when the figures are computed both ways
    fed = FedStatistics(spark, EVERY_TYPE, valid, 1).aggregate(frame)
    observed = statistics_plan(EVERY_TYPE, valid).aggregate(frame)
    # then they are the same (means up to the order of a floating sum; quantiles of under
    # 1,000 values are exact both ways)
    assert fed.keys() == observed.keys()
    for name, value in fed.items():
        if name.endswith("_mean") and value is not None:
            assert value == pytest.approx(observed[name], rel=1e-12), name
        else:
            assert value == observed[name], name
    assert fed["s_rows"] == 997 - 77
    # and without generated code (interpreted expressions), the JVM figures are the same
    spark.conf.set("spark.sql.codegen.factoryMode", "NO_CODEGEN")
    try:
        interpreted = FedStatistics(spark, EVERY_TYPE, valid, 1).aggregate(frame)
    finally:
        spark.conf.unset("spark.sql.codegen.factoryMode")
    assert interpreted == fed


def test_the_quantile_sample_follows_the_source_size(spark: SparkSession, tmp_path: Path) -> None:
    small = spark.range(100).selectExpr("id", "id * 2 AS x")
    assert quantile_sample(small) == 1
    path = str(tmp_path / "big")
    spark.range(400_000).selectExpr("id", "rand(1) AS x").write.parquet(path)
    big = spark.read.parquet(path)
    assert quantile_sample(big, target=1000) > 1
    assert quantile_sample(big, target=10**9) == 1


def test_finite_doubles_whose_mean_overflows_still_record_their_statistics(store: Store) -> None:
    # given finite ratings near the largest double (their sum overflows), a NaN and an infinity
    rows = [
        (i, at(1, i), at(1, i), "1", rating, "a", ["t"])
        for i, rating in enumerate([1.7e308, 1.7e308, float("nan"), float("inf")])
    ]
    # when they are ingested
    outcome = store.ingest(store.source(rows), None, "ingest-big")
    # then the ingest records its statistics (the mean, out of a double's range, as unknown)
    record = outcome.statistics
    assert record is not None
    rating = record.feature("rating")
    assert rating is not None
    assert (rating.count, rating.non_finite, rating.max) == (4, 2, 1.7e308)
    assert rating.mean is None
    assert read_statistics(store.table_path, versions=1) == [record]
