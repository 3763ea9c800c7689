import json
import subprocess
import sys
from pathlib import Path

import pytest

from feast_spark.definitions import Entity, Feature, FeatureTable, FileSource
from feast_spark.errors import (
    CompatibilityError,
    DefinitionError,
    NotFoundError,
    RegistryConflictError,
    RegistryCorruptError,
)
from feast_spark.launcher.job_store import JobStore
from feast_spark.registry import ApplyResult, Registry
from feast_spark.types import ValueType

DRIVER = Entity("driver_id", ValueType.INT64)
SOURCE = FileSource(path="data/x.parquet", event_timestamp_column="ts")


def stats(
    *features: Feature, entities: tuple[str, ...] = ("driver_id",), name: str = "driver_stats"
) -> FeatureTable:
    return FeatureTable(name, entities, features or (Feature("conv_rate", "DOUBLE"),), SOURCE)  # type: ignore[arg-type]


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(str(tmp_path / "registry.json"))


def test_apply_creates_then_is_idempotent(registry: Registry) -> None:
    first = registry.apply("demo", [stats(), DRIVER])  # the entity may come after the table
    assert first == [
        ApplyResult("entity", "driver_id", "created"),
        ApplyResult("feature table", "driver_stats", "created"),
    ]
    revision = json.loads(Path(registry.uri).read_text())["revision"]
    again = registry.apply("demo", [DRIVER, stats()])
    assert {r.action for r in again} == {"unchanged"}
    # an unchanged apply writes nothing
    assert json.loads(Path(registry.uri).read_text())["revision"] == revision
    assert registry.get_feature_table("demo", "driver_stats") == stats()


def test_adding_a_feature_is_an_update(registry: Registry) -> None:
    registry.apply("demo", [DRIVER, stats()])
    result = registry.apply(
        "demo", [stats(Feature("conv_rate", "DOUBLE"), Feature("trips", "INT64"))]
    )
    assert result == [ApplyResult("feature table", "driver_stats", "updated")]
    assert registry.get_feature_table("demo", "driver_stats").feature_names == (
        "conv_rate",
        "trips",
    )


def test_an_entity_value_type_cannot_change(registry: Registry) -> None:
    registry.apply("demo", [DRIVER])
    with pytest.raises(CompatibilityError) as caught:
        registry.apply("demo", [Entity("driver_id", ValueType.STRING)])
    assert (caught.value.name, caught.value.field, caught.value.old, caught.value.new) == (
        "driver_id",
        "value_type",
        "INT64",
        "STRING",
    )


def test_a_feature_type_cannot_change(registry: Registry) -> None:
    registry.apply("demo", [DRIVER, stats()])
    with pytest.raises(
        CompatibilityError,
        match="feature table 'driver_stats': type of feature 'conv_rate' cannot change from DOUBLE to FLOAT",
    ):
        registry.apply("demo", [stats(Feature("conv_rate", "FLOAT"))])


def test_table_entities_cannot_change(registry: Registry) -> None:
    registry.apply("demo", [DRIVER, Entity("rider_id", ValueType.STRING), stats()])
    with pytest.raises(CompatibilityError, match="entities cannot change"):
        registry.apply("demo", [stats(entities=("driver_id", "rider_id"))])


def test_a_table_needs_registered_entities(registry: Registry) -> None:
    with pytest.raises(
        DefinitionError, match="entity 'driver_id' is not registered in project 'demo'"
    ):
        registry.apply("demo", [stats()])
    # and a failed apply changes nothing
    assert registry.list_projects() == []


def test_projects_are_namespaces(registry: Registry) -> None:
    registry.apply("one", [DRIVER, stats()])
    registry.apply("two", [DRIVER])
    assert registry.list_projects() == ["one", "two"]
    assert registry.list_feature_tables("two") == []
    with pytest.raises(
        NotFoundError, match="feature table 'driver_stats' not found in project 'two'"
    ):
        registry.get_feature_table("two", "driver_stats")
    with pytest.raises(NotFoundError, match="project 'three' not found"):
        registry.list_entities("three")
    assert registry.create_project("three") is True
    assert registry.create_project("three") is False


def test_delete_returns_the_definition(registry: Registry) -> None:
    registry.apply("demo", [DRIVER, stats()])
    registry.update_table_state(
        "demo", "driver_stats", materialized_until="2026-01-01T00:00:00+00:00"
    )
    assert registry.delete_feature_table("demo", "driver_stats") == stats()
    assert registry.list_feature_tables("demo") == []
    assert registry.table_state("demo", "driver_stats") == {}
    with pytest.raises(NotFoundError):
        registry.delete_feature_table("demo", "driver_stats")


def test_a_registry_from_a_newer_release_is_refused(registry: Registry) -> None:
    Path(registry.uri).write_text(json.dumps({"format_version": 99, "revision": 1, "projects": {}}))
    with pytest.raises(Exception, match="format_version 99"):
        registry.list_projects()


def test_uris_go_through_pyarrow_fs(tmp_path: Path) -> None:
    # a file:// URI takes the local path; mock:// is pyarrow's in-memory file system
    registry = Registry(f"file://{tmp_path}/r.json")
    registry.apply("demo", [DRIVER])
    assert (tmp_path / "r.json").exists()
    memory = Registry("mock:///registry/r.json")
    memory.apply("demo", [DRIVER])
    assert memory.get_entity("demo", "driver_id") == DRIVER


def test_hadoop_short_file_uri_is_the_same_place_for_the_registry_and_the_job_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a working directory elsewhere, and a registry and a job store named in Hadoop's
    # short form file:/abs/path (what Spark prints and users copy)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    repo = tmp_path / "repo"
    registry = Registry(f"file:{repo}/registry.json")
    store = JobStore(f"file:{repo}/jobs")

    # when definitions are applied
    registry.apply("demo", [DRIVER])

    # then the registry is at the absolute path, beside the job store, and nothing lands under
    # the working directory (it was written to ./file:/abs/path/registry.json)
    assert (repo / "registry.json").is_file()
    assert store.uri == str(repo / "jobs")
    assert list(cwd.iterdir()) == []
    assert Registry(str(repo / "registry.json")).get_entity("demo", "driver_id") == DRIVER


def test_a_commit_that_keeps_losing_the_race_is_a_clear_error(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a store whose compare-and-swap always finds a newer revision (failure injection)
    monkeypatch.setattr(registry._store, "write_if_revision", lambda expected, document: False)
    registry.max_attempts = 3
    with pytest.raises(RegistryConflictError) as caught:
        registry.apply("demo", [DRIVER])
    assert caught.value.attempts == 3 and isinstance(caught.value, RuntimeError)


APPLY_MANY = """
import sys
from feast_spark.definitions import Entity, Feature, FeatureTable, FileSource
from feast_spark.registry import Registry
uri, worker = sys.argv[1], sys.argv[2]
registry = Registry(uri)
source = FileSource(path="x.parquet", event_timestamp_column="ts")
for i in range(15):
    table = FeatureTable(f"table_{worker}_{i}", ["driver_id"], [Feature("f", "DOUBLE")], source)
    registry.apply("demo", [Entity("driver_id", "INT64"), table])
"""


def test_two_processes_applying_at_once_lose_nothing(tmp_path: Path) -> None:
    # given two processes each applying 15 different tables to the same registry at the same time
    uri = str(tmp_path / "registry.json")
    workers = [subprocess.Popen([sys.executable, "-c", APPLY_MANY, uri, str(w)]) for w in (1, 2)]
    # when both finish
    assert [w.wait(timeout=120) for w in workers] == [0, 0]
    # then every table of both survives
    names = {t.name for t in Registry(uri).list_feature_tables("demo")}
    assert names == {f"table_{w}_{i}" for w in (1, 2) for i in range(15)}


# --- a damaged registry is an error, never "no registry" (issue 18, defect 9) ---------------------


@pytest.mark.parametrize("damage", ["empty", "truncated", "not an object", "no projects"])
def test_a_damaged_registry_is_an_error_naming_the_file_and_nothing_overwrites_it(
    registry: Registry, damage: str
) -> None:
    # given a registry with definitions whose file is then damaged (0 bytes, cut short, ...)
    registry.apply("demo", [DRIVER, stats()])
    path = Path(registry.uri)
    text = path.read_text()
    damaged = {
        "empty": "",
        "truncated": text[: len(text) // 2],
        "not an object": "[1, 2]",
        "no projects": json.dumps({"format_version": 1, "revision": 3}),
    }[damage]
    path.write_text(damaged)

    # when it is read, or applied to
    for attempt in (
        registry.list_projects,
        lambda: registry.apply("demo", [DRIVER]),
        lambda: registry.create_project("other"),
    ):
        with pytest.raises(RegistryCorruptError) as caught:
            attempt()
        # then the error names the file and how to recover, and the file is left as it was
        assert str(path) in str(caught.value) and "backup" in str(caught.value)
        assert isinstance(caught.value, ValueError)
        assert path.read_text() == damaged


def test_each_write_keeps_the_previous_revision_as_a_backup(registry: Registry) -> None:
    # given two revisions
    registry.apply("demo", [DRIVER])
    first = Path(registry.uri).read_text()
    registry.apply("demo", [DRIVER, stats()])
    # then the backup is the first revision, and it restores a damaged registry
    backup = Path(registry.uri + ".bak")
    assert backup.read_text() == first
    Path(registry.uri).write_text("")
    backup.replace(registry.uri)
    assert [e.name for e in registry.list_entities("demo")] == ["driver_id"]
