"""The audit's pure logic: comparing one key's rows, tallying partitions, the report, its options."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta

import pytest

from feast_spark.audit import (
    DIFFERS,
    KINDS,
    MISSING_ONLINE,
    ONLINE_ONLY,
    AuditReport,
    Finding,
    Tally,
    audit_options,
    compare_row,
    json_value,
    same_value,
)
from feast_spark.config import SqliteOnlineStoreConfig
from feast_spark.definitions import Entity, Feature, FeatureTable, FileSource
from feast_spark.errors import ArgumentError, JobSpecError
from feast_spark.online.base import OnlineTableSchema, StoredRow, to_micros
from feast_spark.online.key_scan import MAX_TOKEN, MIN_TOKEN, token_ranges
from feast_spark.specs import AuditOptions, JobSpec

STORE = SqliteOnlineStoreConfig(path="/tmp/online.db")
NOW = datetime(2024, 3, 1, 12, tzinfo=UTC)
NOW_US = to_micros(NOW)
HOUR_US = 3_600_000_000
TABLE = FeatureTable(
    "driver_stats",
    ["driver_id"],
    [Feature("trips", "INT64"), Feature("rate", "FLOAT"), Feature("seen", "UNIX_TIMESTAMP")],
    FileSource(path="/tmp/unused", event_timestamp_column="ts"),
    max_age=timedelta(hours=1),
)
SCHEMA = OnlineTableSchema.of("demo", TABLE, [Entity("driver_id", "INT64")])


def test_same_rows_are_consistent() -> None:
    # given offline's latest row and the same stored row
    event = NOW_US - HOUR_US
    stored = StoredRow(event, (3, 0.5, NOW_US))

    # when compared, then nothing is found
    assert compare_row(SCHEMA, (7,), event, (3, 0.5, NOW_US), stored, now_us=NOW_US) is None


def test_a_missing_retained_key_is_missing_online_but_an_expired_one_is_not() -> None:
    # given no stored row for two keys: one retained (30 min old), one past 2 x max_age
    retained, expired = NOW_US - HOUR_US // 2, NOW_US - 2 * HOUR_US

    # when compared
    found = compare_row(SCHEMA, (7,), retained, (3, 0.5, None), None, now_us=NOW_US)
    gone = compare_row(SCHEMA, (8,), expired, (3, 0.5, None), None, now_us=NOW_US)

    # then only the retained one is missing online
    assert found == Finding(
        MISSING_ONLINE,
        {"driver_id": 7},
        offline={"event_timestamp": "2024-03-01T11:30:00.000000+00:00"},
    )
    assert gone is None


def test_differing_cells_are_named_with_both_sides_in_user_form() -> None:
    # given a stored row with another event time, trips and timestamp feature
    event = NOW_US - HOUR_US
    stored = StoredRow(event - 1, (4, 0.5, NOW_US - 1))

    # when compared
    found = compare_row(SCHEMA, (7,), event, (3, 0.5, NOW_US), stored, now_us=NOW_US)

    # then the three cells differ and their values are shown
    assert found is not None and found.kind == DIFFERS
    assert found.cells == ("event_timestamp", "trips", "seen")
    assert found.offline == {
        "event_timestamp": "2024-03-01T11:00:00.000000+00:00",
        "trips": 3,
        "seen": "2024-03-01T12:00:00.000000+00:00",
    }
    assert found.online == {
        "event_timestamp": "2024-03-01T10:59:59.999999+00:00",
        "trips": 4,
        "seen": "2024-03-01T11:59:59.999999+00:00",
    }


def test_value_equality_treats_nan_alike_and_as_null_only_where_the_store_does() -> None:
    nan = float("nan")
    assert same_value(nan, nan)
    assert same_value([1.0, nan], [1.0, nan])
    assert not same_value(nan, None)
    assert same_value(nan, None, nan_is_null=True)  # SQLite stores NaN as NULL
    assert not same_value(1, None, nan_is_null=True)
    assert not same_value([1, 2], [1, 2, 3])
    assert same_value(None, None)
    assert json_value(nan) == "nan"
    assert json_value(b"\x00\xff") == "AP8="
    assert not math.isnan(0.0)


def test_tallies_of_partitions_merge_into_a_report_with_sorted_examples() -> None:
    # given two partitions' tallies keeping 2 examples each
    first, second = Tally(examples=2), Tally(examples=2)
    for key in (5, 3, 9):
        first.add(Finding(MISSING_ONLINE, {"driver_id": key}))
    first.add(None)
    second.add(Finding(DIFFERS, {"driver_id": 1}, ("rate",)))
    second.add(Finding(DIFFERS, {"driver_id": 2}, ("rate", "trips")))
    second.add(Finding(ONLINE_ONLY, {"driver_id": 99}), checked=False)

    # when their records are merged keeping 1 example per kind
    report = AuditReport.from_records(
        first.records() + second.records(),
        table="driver_stats", online_table="demo__driver_stats", store="sqlite",
        audited_at=NOW, sample=None, examples=1,
    )  # fmt: skip

    # then counts add up, cells are counted and examples are the smallest keys
    assert report.keys_checked == 6
    assert dict(report.counts) == {MISSING_ONLINE: 3, ONLINE_ONLY: 1, DIFFERS: 2}
    assert dict(report.cells) == {"rate": 2, "trips": 1}
    assert [e["key"] for e in report.examples[MISSING_ONLINE]] == [{"driver_id": 3}]
    assert [e["key"] for e in report.examples[ONLINE_ONLY]] == [{"driver_id": 99}]
    assert not report.consistent
    # and the JSON form reads back
    assert AuditReport.from_dict(report.to_dict()) == report
    assert report.to_dict()["consistent"] is False


def test_a_report_without_findings_is_consistent() -> None:
    tally = Tally()
    tally.add(None)
    report = AuditReport.from_records(
        tally.records(), table="t", online_table="p__t", store="cassandra",
        audited_at=NOW, sample=10,
    )  # fmt: skip
    assert report.consistent
    assert report.to_dict()["counts"] == {kind: 0 for kind in KINDS}


def test_audit_options_travel_in_the_spec_and_are_checked() -> None:
    # given an audit spec with options
    spec = JobSpec(
        job_id="audit-1", job_type="audit", project="demo", entities=(Entity("driver_id", "INT64"),),
        feature_tables=(TABLE,), offline_store_path="/tmp/offline",
        options=AuditOptions(STORE, sample=100, examples=3),
    )  # fmt: skip

    # when written and read, then the options come back
    assert JobSpec.from_json(spec.to_json()).options == AuditOptions(STORE, sample=100, examples=3)
    # and bad options are refused
    with pytest.raises(JobSpecError, match="options.sample"):
        AuditOptions(STORE, sample=0)
    with pytest.raises(JobSpecError, match="options.examples"):
        AuditOptions(STORE, examples=-1)


def test_token_ranges_cover_the_ring_without_overlap() -> None:
    for parts in (1, 3, 8):
        ranges = token_ranges(parts)
        assert ranges[0][0] == MIN_TOKEN and ranges[-1][1] == MAX_TOKEN
        assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(ranges))
    with pytest.raises(ValueError, match="at least 1"):
        token_ranges(0)


def test_a_caller_s_bad_sample_or_examples_is_an_argument_error() -> None:
    assert audit_options(STORE, None) == AuditOptions(STORE)
    assert audit_options(STORE, 10, 2) == AuditOptions(STORE, sample=10, examples=2)
    for sample, examples in ((0, 5), (True, 5), (None, -1), (2.5, 5)):
        with pytest.raises(ArgumentError, match="give a whole number"):
            audit_options(STORE, sample, examples)  # type: ignore[arg-type]
