from pathlib import Path

import pytest

from feast_spark.definitions import Entity, FeatureTable
from feast_spark.definitions.yaml_files import load_definitions
from feast_spark.errors import DefinitionFileError

EXAMPLES = Path(__file__).parents[2] / "conf" / "example" / "definitions"


def test_the_shipped_examples_load() -> None:
    objects = load_definitions([EXAMPLES])
    names = {(type(o).__name__, o.name) for o in objects}
    assert ("Entity", "driver_id") in names and ("FeatureTable", "driver_stats") in names


def test_a_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("kind: Entity\nname: driver_id\nvalue_type: [INT64\n")
    with pytest.raises(DefinitionFileError) as caught:
        load_definitions([path])
    assert caught.value.path == str(path) and caught.value.line is not None
    assert "YAML syntax error" in str(caught.value)


def test_an_invalid_definition_names_file_line_and_object(tmp_path: Path) -> None:
    path = tmp_path / "defs.yaml"
    path.write_text(
        "kind: Entity\nname: ok\nvalue_type: INT64\n---\nkind: Entity\nname: Bad\nvalue_type: INT64\n"
    )
    with pytest.raises(DefinitionFileError, match=r"defs.yaml:5: entity 'Bad'"):
        load_definitions([path])


def test_unknown_kinds_and_duplicates_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("kind: Table\nname: x\n")
    with pytest.raises(DefinitionFileError, match="kind 'Table' is unknown"):
        load_definitions([tmp_path / "a.yaml"])
    (tmp_path / "a.yaml").write_text("kind: Entity\nname: x\nvalue_type: INT64\n")
    (tmp_path / "b.yml").write_text("kind: Entity\nname: x\nvalue_type: STRING\n")
    with pytest.raises(DefinitionFileError, match="already defined at"):
        load_definitions([tmp_path])


def test_missing_paths_and_empty_folders_are_errors(tmp_path: Path) -> None:
    with pytest.raises(DefinitionFileError, match="no such file"):
        load_definitions([tmp_path / "nope.yaml"])
    with pytest.raises(DefinitionFileError, match="no .yaml"):
        load_definitions([tmp_path])


def test_documents_become_definitions(tmp_path: Path) -> None:
    path = tmp_path / "defs.yaml"
    path.write_text(
        """
kind: Entity
name: driver_id
value_type: INT64
---
kind: FeatureTable
name: stats
entities: [driver_id]
features: [{name: trips, dtype: INT64}]
max_age: 3600
batch_source: {type: delta, path: /x, event_timestamp_column: ts}
"""
    )
    entity, table = load_definitions([path])
    assert isinstance(entity, Entity) and isinstance(table, FeatureTable)
    assert table.max_age is not None and table.max_age.total_seconds() == 3600
