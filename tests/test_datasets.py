"""feast_spark.datasets: dataset records parsed and written, entity files checked, rebuild specs.

Pure Python (no Spark): the end-to-end rebuilds are in tests/jobs/test_dataset_rebuild.py.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from feast_spark.cli import cli
from feast_spark.client import Client
from feast_spark.datasets import (
    DATASETS_FOLDER,
    DatasetRecord,
    DatasetStore,
    EntitySourceRecord,
    FileChecksum,
    check_entity_files,
    file_checksum,
    keep_versions,
    precheck_entity_files,
    rebuild_spec,
)
from feast_spark.definitions import Entity, Feature, FeatureTable, FileSource
from feast_spark.errors import ArgumentError, DatasetGoneError, DatasetRecordError, NotFoundError
from feast_spark.specs import (
    HistoricalRetrievalOptions,
    JobSpec,
    MaintenanceOptions,
)

WHEN = datetime(2024, 3, 1, 12, tzinfo=UTC)
DRIVER = Entity("driver_id", "INT64")  # type: ignore[arg-type]
TABLE = FeatureTable(
    "driver_stats",
    ["driver_id"],
    [Feature("trips", "INT64")],  # type: ignore[list-item]
    FileSource(path="/data/drivers", event_timestamp_column="ts"),
    max_age=timedelta(hours=2),
)


def a_record(entity_file: Path, **changes: Any) -> DatasetRecord:
    source = FileSource(path=str(entity_file), event_timestamp_column="event_timestamp")
    fields: dict[str, Any] = {
        "dataset_id": "historical-retrieval-20240301T120000-abc123",
        "project": "demo",
        "created_at": WHEN,
        "feature_refs": ("driver_stats:trips",),
        "entity_source": EntitySourceRecord(
            source.to_dict(), "files", files=(file_checksum(str(entity_file)),)
        ),
        "tables": {"driver_stats": {"path": "/data/offline/demo/driver_stats", "version": 3}},
        "entities": (DRIVER.to_dict(),),
        "feature_tables": (TABLE.to_dict(),),
        "registry_revision": 7,
        "feast_spark_version": "0.1.0",
        "rows": 2,
        "columns": ("driver_id", "event_timestamp", "driver_stats__trips"),
        "output_path": "/data/train",
        "output_format": "parquet",
    }
    fields.update(changes)
    return DatasetRecord(**fields)


@pytest.fixture
def entity_file(tmp_path: Path) -> Path:
    path = tmp_path / "entities.parquet"
    path.write_bytes(b"PAR1 some entity rows PAR1")
    return path


def test_a_record_survives_json_and_the_store(tmp_path: Path, entity_file: Path) -> None:
    # given a record written to a store beside the job records
    record = a_record(entity_file)
    store = DatasetStore(str(tmp_path / "jobs"))
    store.put(record)
    # when it is read back, as a document and from the store
    document = json.loads(
        (tmp_path / "jobs" / DATASETS_FOLDER / f"{record.dataset_id}.json").read_text()
    )
    # then nothing is lost and the document says what was read
    assert DatasetRecord.from_dict(document) == record
    assert store.get(record.dataset_id) == record
    assert document["tables"] == {
        "driver_stats": {"path": "/data/offline/demo/driver_stats", "version": 3}
    }
    assert document["definitions"]["registry_revision"] == 7
    assert (
        document["entity_source"]["files"][0]["sha256"]
        == hashlib.sha256(entity_file.read_bytes()).hexdigest()
    )
    assert record.definitions() == ([DRIVER], [TABLE])


def test_the_store_lists_newest_first_by_project_and_skips_damaged_records(
    tmp_path: Path, entity_file: Path
) -> None:
    # given three records of two projects and a damaged file
    store = DatasetStore(str(tmp_path / "jobs"))
    older = a_record(entity_file, dataset_id="ds-1", created_at=WHEN - timedelta(days=1))
    newer = a_record(entity_file, dataset_id="ds-2")
    other = a_record(entity_file, dataset_id="ds-3", project="other")
    for record in (older, newer, other):
        store.put(record)
    (tmp_path / "jobs" / DATASETS_FOLDER / "ds-4.json").write_text("{not json")
    # then a listing is newest first, per project, without the damaged one
    assert [r.dataset_id for r in store.list(project="demo")] == ["ds-2", "ds-1"]
    assert len(store.list()) == 3
    with pytest.raises(ValueError, match="ds-4.json is damaged"):
        store.get("ds-4")
    # when one is deleted, then it is gone and asking for it names the listing command
    store.delete("ds-1")
    with pytest.raises(NotFoundError, match="dataset 'ds-1' not found: .*datasets list"):
        store.get("ds-1")
    with pytest.raises(ArgumentError, match="not a dataset id"):
        store.get("../etc/passwd")


def test_a_record_of_another_version_or_missing_a_field_is_refused(entity_file: Path) -> None:
    document = a_record(entity_file).to_dict()
    with pytest.raises(ValueError, match="record_version 2"):
        DatasetRecord.from_dict({**document, "record_version": 2})
    with pytest.raises(ValueError, match="'tables' is missing"):
        DatasetRecord.from_dict({k: v for k, v in document.items() if k != "tables"})


def test_unchanged_entity_files_pass_in_any_uri_spelling(entity_file: Path) -> None:
    recorded = [file_checksum(str(entity_file))]
    check_entity_files("ds", recorded, [f"file://{entity_file}"])
    check_entity_files("ds", recorded, [f"file:{entity_file}"])


def test_a_changed_deleted_or_added_entity_file_is_refused_naming_it(
    tmp_path: Path, entity_file: Path
) -> None:
    recorded = [file_checksum(str(entity_file))]
    # when another file appears beside it
    extra = tmp_path / "more.parquet"
    extra.write_bytes(b"PAR1 new rows PAR1")
    with pytest.raises(DatasetGoneError, match=f"now lists a file it did not: {extra}"):
        check_entity_files("ds", recorded, [str(entity_file), str(extra)])
    # when the file changes (same size, other content)
    entity_file.write_bytes(b"PAR1 some entity ROWS PAR1")
    with pytest.raises(DatasetGoneError) as changed:
        check_entity_files("ds", recorded, [str(entity_file)])
    message = str(changed.value)
    assert message.startswith(f"dataset 'ds' cannot be rebuilt: entity file {entity_file} changed")
    assert "keep entity files unchanged" in message and "\n" not in message
    # when it is deleted
    entity_file.unlink()
    with pytest.raises(DatasetGoneError, match=f"entity file {entity_file} is deleted; restore"):
        check_entity_files("ds", recorded, [])
    with pytest.raises(DatasetGoneError, match="is deleted"):
        precheck_entity_files(
            a_record(extra, entity_source=EntitySourceRecord({}, "files", files=tuple(recorded)))
        )


def test_a_rebuild_spec_pins_every_version_and_uses_the_recorded_definitions(
    entity_file: Path,
) -> None:
    # given a record whose table has since gained a feature in the registry (not seen here)
    record = a_record(entity_file)
    # when the rebuild spec is made and goes through JSON, as the job reads it
    spec = rebuild_spec(
        record,
        job_id="historical-retrieval-rebuild",
        offline_store_path="/data/offline",
        output_path="/data/train-again",
        record_path="/jobs/_datasets/historical-retrieval-rebuild.json",
    )
    parsed = JobSpec.from_json(spec.to_json())
    # then it reads the same references with the recorded definitions at the recorded versions
    assert parsed == spec
    options = parsed.options
    assert isinstance(options, HistoricalRetrievalOptions) and options.dataset is not None
    assert options.feature_refs == ("driver_stats:trips",)
    assert parsed.feature_tables == (TABLE,) and parsed.entities == (DRIVER,)
    assert options.dataset.table_versions == {"driver_stats": 3}
    assert options.dataset.rebuild_of == record.dataset_id
    assert [f["sha256"] for f in options.dataset.entity_files] == [
        record.entity_source.files[0].sha256
    ]
    assert options.output_path == "/data/train-again" and options.output_format == "parquet"


def test_specs_without_the_new_fields_read_as_before() -> None:
    # a retrieval without dataset options writes no "dataset" key, and vacuum no keep_versions
    options = HistoricalRetrievalOptions(
        ("driver_stats:trips",), FileSource(path="/e", event_timestamp_column="ts"), "/out"
    )
    assert "dataset" not in options.to_dict()
    assert HistoricalRetrievalOptions.from_dict(options.to_dict()).dataset is None
    assert MaintenanceOptions("vacuum").to_dict() == {"action": "vacuum"}
    keep = MaintenanceOptions("vacuum", {"driver_stats": {"ds-1": 3}})
    assert MaintenanceOptions.from_dict(keep.to_dict()) == keep


def test_keep_versions_are_the_project_datasets_that_read_the_table(entity_file: Path) -> None:
    records = [
        a_record(entity_file, dataset_id="ds-1"),
        a_record(entity_file, dataset_id="ds-2", project="other"),
        a_record(entity_file, dataset_id="ds-3", tables={}),
    ]
    assert keep_versions(records, "demo", "driver_stats") == {"ds-1": 3}


def test_a_checksum_is_the_file_sha256_and_size(entity_file: Path) -> None:
    checksum = file_checksum(str(entity_file))
    assert checksum == FileChecksum(
        str(entity_file),
        entity_file.stat().st_size,
        hashlib.sha256(entity_file.read_bytes()).hexdigest(),
        checksum.mtime,
    )
    assert FileChecksum.from_dict(checksum.to_dict()) == checksum
    with pytest.raises(FileNotFoundError):
        file_checksum(str(entity_file.parent / "nope.parquet"))


# --- the client and the CLI (no job runs) ---------------------------------------------------------

CONFIG = "project: demo\nregistry: data/registry.json\noffline_store: {path: data/offline}\n"


class _Capture:
    """Stands in for the launcher: keeps the spec, starts nothing."""

    def __init__(self) -> None:
        self.specs: list[JobSpec] = []

    def submit(self, spec: JobSpec) -> Any:
        self.specs.append(spec)
        return type("J", (), {"id": spec.job_id})()


def test_a_retrieval_asks_for_a_record_beside_the_job_records(
    tmp_path: Path, entity_file: Path
) -> None:
    # given a project with a table
    (tmp_path / "feature_store.yaml").write_text(CONFIG)
    client = Client(tmp_path / "feature_store.yaml")
    client.apply(DRIVER, TABLE)
    capture = _Capture()
    client.__dict__["launcher"] = capture
    # when a dataset is asked for
    client.get_historical_features(
        "driver_stats:trips", FileSource(path=str(entity_file), event_timestamp_column="ts")
    )
    # then its spec asks the job to record it under <job store>/_datasets, with the revision
    (spec,) = capture.specs
    options = spec.options
    assert isinstance(options, HistoricalRetrievalOptions) and options.dataset is not None
    assert options.dataset.record_path == (
        f"{client.config.launcher.job_store}/{DATASETS_FOLDER}/{spec.job_id}.json"
    )
    assert options.dataset.registry_revision == client.registry.revision() == 1
    assert options.dataset.table_versions == {} and options.dataset.rebuild_of is None


def test_datasets_list_and_describe_print_the_records(tmp_path: Path, entity_file: Path) -> None:
    # given a project with one dataset record
    (tmp_path / "feature_store.yaml").write_text(CONFIG)
    client = Client(tmp_path / "feature_store.yaml")
    record = a_record(entity_file)
    client.datasets.put(record)
    config = ["--config", str(tmp_path / "feature_store.yaml")]
    runner = CliRunner()
    # when listed and described
    listed = runner.invoke(cli, ["datasets", "list", *config])
    as_json = runner.invoke(cli, ["datasets", "list", "-o", "json", *config])
    described = runner.invoke(cli, ["datasets", "describe", record.dataset_id, *config])
    missing = runner.invoke(cli, ["datasets", "describe", "nope", *config])
    # then the table names the versions read, the JSON is the record, and a miss is one line
    assert listed.exit_code == 0, listed.output
    header, row = listed.output.splitlines()
    assert header.split() == ["ID", "CREATED", "ROWS", "TABLES@VERSION", "ENTITIES", "OUTPUT"]
    assert row.split() == [
        record.dataset_id, "2024-03-01", "12:00:00", "2", "driver_stats@3", "1", "file(s)",
        "/data/train",
    ]  # fmt: skip
    assert json.loads(as_json.output)[0]["tables"]["driver_stats"]["version"] == 3
    assert described.exit_code == 0 and "registry_revision: 7" in described.output
    assert missing.exit_code == 1
    assert missing.output.strip().startswith("Error: dataset 'nope' not found")
    assert client.list_datasets() == [record]


def test_a_damaged_record_is_one_clear_line_and_can_be_deleted(
    tmp_path: Path, entity_file: Path
) -> None:
    # given a project whose job store holds a record cut short
    (tmp_path / "feature_store.yaml").write_text(CONFIG)
    client = Client(tmp_path / "feature_store.yaml")
    client.datasets.put(a_record(entity_file))
    damaged = Path(client.datasets.path("ds-cut"))
    damaged.write_text('{"record_version": 1, "datas')
    config = ["--config", str(tmp_path / "feature_store.yaml")]
    runner = CliRunner()
    # when it is described or rebuilt
    for args in (["describe", "ds-cut"], ["rebuild", "ds-cut", "--output-path", "/tmp/x"]):
        result = runner.invoke(cli, ["datasets", *args, *config])
        # then one line names the record, says it is damaged and how to get rid of it
        assert result.exit_code == 1, result.output
        (line,) = result.output.strip().splitlines()
        assert line.startswith(f"Error: dataset record {damaged} is damaged (not JSON: ")
        assert "feast-spark datasets delete ds-cut" in line and "unexpected" not in line
    # when it is deleted, then it goes (the other record stays)
    deleted = runner.invoke(cli, ["datasets", "delete", "ds-cut", *config])
    assert deleted.exit_code == 0, deleted.output
    assert not damaged.exists() and len(client.list_datasets()) == 1


def test_vacuum_is_refused_while_a_dataset_record_is_damaged_unless_forced(
    tmp_path: Path, entity_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a project with a kept dataset whose record is damaged (which versions it read is
    # unknown)
    (tmp_path / "feature_store.yaml").write_text(CONFIG)
    client = Client(tmp_path / "feature_store.yaml")
    Path(client.datasets.path("ds-cut")).parent.mkdir(parents=True)
    Path(client.datasets.path("ds-cut")).write_text('{"record_version": 1, "datas')
    submitted: list[object] = []
    monkeypatch.setattr(Client, "_maintenance", lambda self, *args: submitted.append(args))
    # when the table is vacuumed, then it is refused before any job, naming the record and fixes
    with pytest.raises(DatasetRecordError) as refused:
        client.vacuum("driver_stats")
    message = str(refused.value)
    assert "ds-cut.json is damaged" in message and "vacuum" in message
    assert "feast-spark datasets delete ds-cut" in message and "--force" in message
    assert submitted == []
    # and with force it runs
    client.vacuum("driver_stats", force=True)
    assert len(submitted) == 1
    # and 'datasets list' says on stderr that a record is left out
    listed = CliRunner().invoke(
        cli, ["datasets", "list", "--config", str(tmp_path / "feature_store.yaml")]
    )
    assert listed.exit_code == 0
    assert "warning: dataset record" in listed.stderr and "ds-cut.json is damaged" in listed.stderr


def test_a_relative_output_path_is_recorded_absolute_and_an_existing_one_refused_before_any_job(
    tmp_path: Path, entity_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a project with a table and a dataset record, run from another folder
    (tmp_path / "feature_store.yaml").write_text(CONFIG)
    client = Client(tmp_path / "feature_store.yaml")
    client.apply(DRIVER, TABLE)
    client.datasets.put(a_record(entity_file))
    capture = _Capture()
    client.__dict__["launcher"] = capture
    work = tmp_path / "work"
    (work / "taken").mkdir(parents=True)
    (work / "taken" / "part-0.parquet").write_bytes(b"someone's rows")
    monkeypatch.chdir(work)
    source = FileSource(path=str(entity_file), event_timestamp_column="ts")
    # when a dataset and a rebuild are written to relative paths
    client.get_historical_features("driver_stats:trips", source, output_path="train")
    client.rebuild_dataset("historical-retrieval-20240301T120000-abc123", "again")
    # then their specs (and so their records) name absolute paths: the job may run elsewhere
    outputs = [s.options.output_path for s in capture.specs]  # type: ignore[union-attr]
    assert outputs == [str(work / "train"), str(work / "again")]
    # and an existing local output is refused before any job, naming it
    for build in (
        lambda: client.get_historical_features("driver_stats:trips", source, output_path="taken"),
        lambda: client.rebuild_dataset("historical-retrieval-20240301T120000-abc123", "taken"),
    ):
        with pytest.raises(ArgumentError, match=f"'{work / 'taken'}': already exists"):
            build()
    assert len(capture.specs) == 2
    assert [p.name for p in (work / "taken").iterdir()] == ["part-0.parquet"]


def test_a_dataset_of_another_project_is_not_described_deleted_or_rebuilt(
    tmp_path: Path, entity_file: Path
) -> None:
    # given a job store shared by two projects, holding a record of project "other"
    (tmp_path / "feature_store.yaml").write_text(CONFIG)
    client = Client(tmp_path / "feature_store.yaml")
    record = a_record(entity_file, project="other")
    client.datasets.put(record)
    client.__dict__["launcher"] = _Capture()
    # when project "demo" asks for it, then it is not found there, with the project it is of
    for act in (
        lambda: client.get_dataset(record.dataset_id),
        lambda: client.delete_dataset(record.dataset_id),
        lambda: client.rebuild_dataset(record.dataset_id, str(tmp_path / "again")),
    ):
        with pytest.raises(NotFoundError, match="belongs to project 'other'"):
            act()
    # and the record is still there, as listed by its own project
    assert client.datasets.list(project="other") == [record]
