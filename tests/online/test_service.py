"""Feature references and command-line entity values (pure Python)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from feast_spark.definitions import Entity, Feature, FeatureTable, FileSource
from feast_spark.errors import DefinitionError, NotFoundError
from feast_spark.feature_refs import FeatureRef, parse_feature_refs
from feast_spark.online.service import parse_entity_value

SOURCE = FileSource(path="/tmp/unused", event_timestamp_column="ts")


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
