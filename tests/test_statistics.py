"""Feature statistics records: JSON round trip, drift rules, reading without Spark."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from feast_spark.errors import StatisticsReadError
from feast_spark.statistics import (
    FeatureStatistics,
    IngestStatistics,
    drift_flags,
    read_statistics,
    statistics_table_path,
    write_statistics,
)

AT = datetime(2024, 2, 1, tzinfo=UTC)


def ingest(
    version: int, *, nulls: int = 0, quartiles: tuple[float, float, float] = (10, 20, 30)
) -> IngestStatistics:
    """An ingest of 100 rows: ``trips`` numeric with these quartiles, ``label`` a string."""
    q25, q50, q75 = quartiles
    trips = FeatureStatistics(
        "trips", "INT64", "value", 100 - nulls, nulls, 0, 0, 99, 20.0,
        (0.0, 2.0, q25, q50, q75, 90.0, 99.0),
    )  # fmt: skip
    label = FeatureStatistics("label", "STRING", "length", 100, 0, 0, 1, 9, 5.0)
    return IngestStatistics(version, f"job-{version}", AT, "replace", 100, (trips, label))


def test_a_record_round_trips_through_its_file(tmp_path: Path) -> None:
    record = ingest(3, nulls=4)
    path = write_statistics(str(tmp_path / "driver_stats"), record)
    assert path == str(tmp_path / "driver_stats.statistics" / "00000000000000000003.json")
    assert IngestStatistics.from_dict(json.loads(Path(path).read_text())) == record
    assert record.quantile(record.features[0], 0.5) == 20
    assert record.quantile(record.features[1], 0.5) is None  # strings have no quantiles


def test_steady_ingests_are_not_flagged() -> None:
    history = [ingest(1, nulls=2), ingest(2, nulls=6, quartiles=(12, 25, 31))]
    assert drift_flags(history, null_threshold=0.05) == []


def test_a_null_fraction_move_beyond_the_threshold_is_flagged() -> None:
    history = [ingest(1, nulls=2), ingest(2, nulls=8)]
    flags = drift_flags(history, null_threshold=0.05)
    assert [(f.feature, f.version, f.previous_version, f.rule) for f in flags] == [
        ("trips", 2, 1, "nulls")
    ]
    assert flags[0].detail == "null fraction 2.0% -> 8.0%"
    assert drift_flags(history, null_threshold=0.1) == []


def test_a_feature_turning_nan_or_infinite_is_flagged() -> None:
    # given a DOUBLE feature, all finite, then 30 of its 100 values NaN or infinite (not null)
    def rate(version: int, non_finite: int) -> IngestStatistics:
        feature = FeatureStatistics("rate", "DOUBLE", "value", 100, 0, non_finite, 0.0, 1.0, 0.5)
        return IngestStatistics(version, f"job-{version}", AT, "replace", 100, (feature,))

    # when drift is judged, then the move of the non-finite share is flagged like nulls
    flags = drift_flags([rate(1, 0), rate(2, 30)], null_threshold=0.05)
    assert [(f.feature, f.version, f.rule) for f in flags] == [("rate", 2, "non_finite")]
    assert flags[0].detail == "NaN/infinite fraction 0.0% -> 30.0%"
    assert drift_flags([rate(1, 0), rate(2, 3)], null_threshold=0.05) == []


def test_a_median_outside_the_previous_quartiles_is_flagged() -> None:
    history = [ingest(1), ingest(2, quartiles=(30, 31, 40)), ingest(3, quartiles=(1, 5, 33))]
    flags = drift_flags(history)
    assert [(f.version, f.rule) for f in flags] == [(2, "median"), (3, "median")]
    assert flags[0].detail == "median 31 outside the previous [q25, q75] = [10, 30]"


def test_a_new_feature_or_an_empty_ingest_is_not_flagged() -> None:
    empty = IngestStatistics(2, "job-2", AT, "replace", 0, (
        FeatureStatistics("trips", "INT64", "value", 0, 0),
        FeatureStatistics("added", "DOUBLE", "value", 10, 90),
    ))  # fmt: skip
    assert drift_flags([ingest(1), empty]) == []


def test_read_statistics_returns_the_last_versions_in_order(tmp_path: Path) -> None:
    table_path = str(tmp_path / "driver_stats")
    records = [ingest(v) for v in (0, 2, 5, 11)]
    for record in reversed(records):
        write_statistics(table_path, record)
    (tmp_path / "driver_stats.statistics" / ".00000000000000000012.json.tmp").write_text("{")
    assert read_statistics(table_path, versions=3) == records[1:]
    assert read_statistics(table_path, versions=10) == records


def test_read_statistics_of_a_table_never_ingested_is_empty(tmp_path: Path) -> None:
    assert read_statistics(str(tmp_path / "driver_stats"), versions=5) == []


def test_an_unreadable_statistics_file_is_one_clear_error(tmp_path: Path) -> None:
    folder = Path(statistics_table_path(str(tmp_path / "t")))
    folder.mkdir()
    (folder / "00000000000000000004.json").write_text("not json\n")
    with pytest.raises(
        StatisticsReadError,
        match=r"feature statistics file '.*/00000000000000000004.json' is damaged",
    ):
        read_statistics(str(tmp_path / "t"), versions=5)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ('{"version": 4, "job_id": "ingest-4", "ingest', "not JSON"),  # truncated
        ("{}", "missing field 'version'"),
        ("[]", "not a JSON object"),
        ('{"version": "x"}', "not a statistics record"),
    ],
    ids=["truncated", "empty-object", "a-list", "bad-field"],
)
def test_a_damaged_statistics_file_names_the_file_and_what_to_do(
    tmp_path: Path, content: str, reason: str
) -> None:
    # given a statistics file cut short or holding something else than a record
    folder = Path(statistics_table_path(str(tmp_path / "t")))
    folder.mkdir()
    (folder / "00000000000000000004.json").write_text(content)
    # when the statistics are read
    with pytest.raises(StatisticsReadError) as raised:
        read_statistics(str(tmp_path / "t"), versions=5)
    # then one line names the file, says it is damaged and why, and how to get past it
    message = str(raised.value)
    assert "\n" not in message
    assert f"feature statistics file '{folder}/00000000000000000004.json' is damaged" in message
    assert reason in message
    assert "delete it" in message and "offline table is not affected" in message
    assert "delta" not in message.lower()  # a JSON file: reading it as Delta helps nobody
