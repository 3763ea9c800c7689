"""Incremental materialization windows and feature references (pure Python)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from feast_spark.definitions import Entity, Feature, FeatureTable, FileSource
from feast_spark.errors import DefinitionError, NotFoundError
from feast_spark.feature_refs import FeatureRef, parse_feature_refs
from feast_spark.online.service import (
    MATERIALIZED_UNTIL,
    incremental_window,
    materialized_state,
    parse_entity_value,
)
from feast_spark.specs import Window

SOURCE = FileSource(path="/tmp/unused", event_timestamp_column="ts")
END = datetime(2024, 3, 1, 12, tzinfo=UTC)


def table(max_age: timedelta | None) -> FeatureTable:
    return FeatureTable("t", ["e"], [Feature("f", "DOUBLE")], SOURCE, max_age=max_age)


def test_first_run_with_max_age_starts_max_age_before_the_end() -> None:
    assert incremental_window(table(timedelta(days=2)), {}, END) == Window(
        END - timedelta(days=2), END
    )


def test_first_run_without_max_age_starts_at_the_first_row() -> None:
    # an open start: the job reads the table from its first row
    assert incremental_window(table(None), {}, END) == Window(None, END)


def test_later_runs_start_at_the_high_water_mark() -> None:
    mark = datetime(2024, 2, 28, tzinfo=UTC)
    state = {MATERIALIZED_UNTIL: mark.isoformat()}
    assert incremental_window(table(timedelta(hours=1)), state, END) == Window(mark, END)


def test_nothing_to_do_when_materialized_up_to_the_end() -> None:
    state = {MATERIALIZED_UNTIL: END.isoformat()}
    assert incremental_window(table(None), state, END) is None
    later = {MATERIALIZED_UNTIL: (END + timedelta(hours=1)).isoformat()}
    assert incremental_window(table(None), later, END) is None


def test_naive_end_and_bad_marks_are_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        incremental_window(table(None), {}, datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="'yesterday' is not an ISO-8601"):
        incremental_window(table(None), {MATERIALIZED_UNTIL: "yesterday"}, END)


def test_the_high_water_mark_only_moves_forward() -> None:
    # given a mark at END; when an older window (backfill) succeeds, then the mark stays
    state = {MATERIALIZED_UNTIL: END.isoformat()}
    old = Window(END - timedelta(days=3), END - timedelta(days=2))
    assert materialized_state(state, old) == state
    # when a newer window succeeds, then the mark moves to its end (any offset accepted)
    newer_end = datetime(2024, 3, 2, 1, tzinfo=timezone(timedelta(hours=1)))
    assert materialized_state(state, Window(END, newer_end)) == {
        MATERIALIZED_UNTIL: newer_end.isoformat()
    }
    with pytest.raises(ValueError, match="without an end"):
        materialized_state({}, Window(END, None))


def test_refs_parse_and_expand_table_star() -> None:
    tables = {"t": FeatureTable("t", ["e"], [Feature("a", "INT64"), Feature("b", "INT64")], SOURCE)}
    assert parse_feature_refs(["t:*"], tables) == [FeatureRef("t", "a"), FeatureRef("t", "b")]
    assert [str(r) for r in parse_feature_refs("t:b")] == ["t:b"]
    with pytest.raises(NotFoundError, match="feature table 'u'"):
        parse_feature_refs(["u:*"], tables)
    for bad in ("t", ":a", "t:", "t:a:b"):
        with pytest.raises(DefinitionError, match="use 'table:feature'|name its table"):
            parse_feature_refs([bad])
    with pytest.raises(DefinitionError, match="at least one"):
        parse_feature_refs([])


def test_command_line_entity_values_parse_to_the_entity_type() -> None:
    assert parse_entity_value("1001", Entity("d", "INT64")) == 1001
    assert parse_entity_value("True", Entity("d", "BOOL")) is True
    assert parse_entity_value("abc", Entity("d", "STRING")) == "abc"
    assert parse_entity_value("00ff", Entity("d", "BYTES")) == b"\x00\xff"
    assert parse_entity_value("2024-01-02T03:04:05", Entity("d", "UNIX_TIMESTAMP")) == datetime(
        2024, 1, 2, 3, 4, 5, tzinfo=UTC
    )
    with pytest.raises(DefinitionError, match=r"entity 'd': value 'x1' is not a INT64"):
        parse_entity_value("x1", Entity("d", "INT64"))


def test_an_incremental_first_run_whose_max_age_reaches_before_year_one_starts_open() -> None:
    from datetime import UTC, datetime, timedelta

    from feast_spark.definitions import Feature, FeatureTable, FileSource
    from feast_spark.online.service import incremental_window

    table = FeatureTable(
        "t", ["driver_id"], [Feature("a", "INT64")],  # type: ignore[arg-type]
        FileSource(path="x.parquet", event_timestamp_column="ts"), max_age=timedelta(days=800),
    )  # fmt: skip
    end = datetime(2, 1, 1, tzinfo=UTC)  # end - max_age would be before year one
    window = incremental_window(table, {}, end)
    assert window is not None and window.start is None and window.end == end
