"""Training dataset records: what a historical retrieval read, so that it can be rebuilt.

Every ``get-historical-features`` job writes one record when it succeeds, beside the job records::

    <job store>/_datasets/<dataset id>.json      (the dataset id is the retrieval job's id)

A record holds what is needed to build the same rows again: the feature references, the
definitions as the job read them from its spec (with the registry revision they came from),
the Delta version of every offline table the job read (pinned when it started, read with
``versionAsOf``), and the entity source pinned too: a Delta source at its version, files with
their size, modification time and SHA-256. A rebuild (:func:`rebuild_options`) reads the same
versions and refuses to run when an entity file changed or a version was vacuumed.

Example record (abridged)::

    {"record_version": 1, "dataset_id": "historical-retrieval-20240201T000000-a1b2c3",
     "project": "demo", "feature_refs": ["driver_stats:conv_rate"],
     "tables": {"driver_stats": {"path": "/data/offline/demo/driver_stats", "version": 7}},
     "entity_source": {"kind": "files", "source": {...}, "delta_version": null,
                       "files": [{"path": "file:/data/e.parquet", "size": 1024,
                                  "mtime": "2024-02-01T00:00:00+00:00", "sha256": "9f..."}],
                       "note": null},
     "definitions": {"registry_revision": 12, "entities": [...], "feature_tables": [...]},
     "feast_spark_version": "0.1.0", "rows": 1000, "output_path": "/data/train",
     "output_format": "parquet", "created_at": "...", "rebuild_of": null}

Pure Python: the job computes the pins with Spark (:mod:`feast_spark.spark.dataset_pins`), this
module stores, reads and checks them.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from feast_spark.definitions import Entity, FeatureTable
from feast_spark.definitions.sources import BatchSource, DeltaSource, source_from_dict
from feast_spark.errors import ArgumentError, DatasetGoneError, DatasetRecordError, NotFoundError
from feast_spark.join_tuning import JoinTuning
from feast_spark.specs import DatasetOptions, HistoricalRetrievalOptions, JobSpec
from feast_spark.storage import filesystem, list_files, local_path, read_text, write_text

RECORD_VERSION = 1
#: The folder of dataset records under the job store's root (never a job id: ids start with
#: a letter or digit, so ``jobs list`` and ``jobs prune`` pass it by).
DATASETS_FOLDER = "_datasets"
#: The name the client stages in-memory entity rows under (``<staging>/<job id>/entity_rows*``).
STAGED_ENTITY_ROWS = "entity_rows"
KIND_DELTA = "delta"
KIND_FILES = "files"
_CHUNK = 1 << 20
# Dataset ids are job ids (feast_spark.launcher.job_store's rule): they name a file.
_DATASET_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


@dataclass(frozen=True)
class FileChecksum:
    """One entity file as it was read.

    Attributes:
        path: The file's URI as Spark listed it.
        size: Bytes.
        sha256: Hex digest of its content.
        mtime: Last modification time, when the file system tells (informative only: a copy
            with the same content is the same file).
    """

    path: str
    size: int
    sha256: str
    mtime: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"path": self.path, "size": self.size, "sha256": self.sha256, "mtime": self.mtime}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FileChecksum:
        """Inverse of :meth:`to_dict`."""
        return cls(str(data["path"]), int(data["size"]), str(data["sha256"]), data.get("mtime"))


@dataclass(frozen=True)
class EntitySourceRecord:
    """The entity rows a dataset was built from, pinned.

    Attributes:
        source: The source document as read (a Delta source with ``versionAsOf`` set).
        kind: ``delta`` or ``files``.
        delta_version: The Delta version read (``delta`` only).
        files: Every file read, with its checksum (``files`` only).
        note: What could not be pinned, or what may remove the rows (staged frames).
    """

    source: Mapping[str, Any]
    kind: str
    delta_version: int | None = None
    files: tuple[FileChecksum, ...] = ()
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "source": dict(self.source),
            "kind": self.kind,
            "delta_version": self.delta_version,
            "files": [f.to_dict() for f in self.files],
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EntitySourceRecord:
        """Inverse of :meth:`to_dict`."""
        return cls(
            source=dict(data["source"]),
            kind=str(data["kind"]),
            delta_version=data.get("delta_version"),
            files=tuple(FileChecksum.from_dict(f) for f in data.get("files") or ()),
            note=data.get("note"),
        )

    def batch_source(self) -> BatchSource:
        """The source to read again (pinned to its version when it is a Delta table)."""
        return source_from_dict(self.source)


@dataclass(frozen=True)
class DatasetRecord:
    """Everything a training dataset was built from, and where it went.

    Attributes:
        dataset_id: The id (the retrieval job's id).
        project: The project.
        created_at: When the job finished.
        feature_refs: ``table:feature`` references, in output order.
        entity_source: The entity rows, pinned.
        tables: Per feature table: ``{"path": Delta table, "version": version read}``.
        entities: The entity definitions as applied (as in the job spec).
        feature_tables: The feature table definitions as applied.
        registry_revision: The registry revision the definitions were read at.
        feast_spark_version: The code that built it.
        rows: Rows written.
        columns: The dataset's columns.
        output_path: Where the dataset is.
        output_format: ``parquet`` or ``delta``.
        join_tuning: The join's tuning (it does not change the rows; kept to run the same plan).
        rebuild_of: The dataset this one rebuilt, if any.
    """

    dataset_id: str
    project: str
    created_at: datetime
    feature_refs: tuple[str, ...]
    entity_source: EntitySourceRecord
    tables: Mapping[str, Mapping[str, Any]]
    entities: tuple[Mapping[str, Any], ...]
    feature_tables: tuple[Mapping[str, Any], ...]
    registry_revision: int | None
    feast_spark_version: str
    rows: int
    columns: tuple[str, ...]
    output_path: str
    output_format: str
    join_tuning: Mapping[str, Any] = field(default_factory=dict)
    rebuild_of: str | None = None

    @property
    def table_versions(self) -> dict[str, int]:
        """Delta version read per feature table."""
        return {name: int(table["version"]) for name, table in self.tables.items()}

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON document."""
        return {
            "record_version": RECORD_VERSION,
            "dataset_id": self.dataset_id,
            "project": self.project,
            "created_at": self.created_at.isoformat(),
            "feature_refs": list(self.feature_refs),
            "entity_source": self.entity_source.to_dict(),
            "tables": {name: dict(table) for name, table in self.tables.items()},
            "definitions": {
                "registry_revision": self.registry_revision,
                "entities": [dict(e) for e in self.entities],
                "feature_tables": [dict(t) for t in self.feature_tables],
            },
            "feast_spark_version": self.feast_spark_version,
            "rows": self.rows,
            "columns": list(self.columns),
            "output_path": self.output_path,
            "output_format": self.output_format,
            "join_tuning": dict(self.join_tuning),
            "rebuild_of": self.rebuild_of,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatasetRecord:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: A field is missing or malformed, or the version is unknown.
        """
        if data.get("record_version") != RECORD_VERSION:
            raise ValueError(
                f"record_version {data.get('record_version')!r}; this reader knows {RECORD_VERSION}"
            )
        try:
            definitions = data["definitions"]
            tables = {
                str(name): {"path": str(t["path"]), "version": int(t["version"])}
                for name, t in data["tables"].items()
            }
            return cls(
                dataset_id=str(data["dataset_id"]),
                project=str(data["project"]),
                created_at=datetime.fromisoformat(data["created_at"]),
                feature_refs=tuple(str(r) for r in data["feature_refs"]),
                entity_source=EntitySourceRecord.from_dict(data["entity_source"]),
                tables=tables,
                entities=tuple(dict(e) for e in definitions["entities"]),
                feature_tables=tuple(dict(t) for t in definitions["feature_tables"]),
                registry_revision=definitions.get("registry_revision"),
                feast_spark_version=str(data["feast_spark_version"]),
                rows=int(data["rows"]),
                columns=tuple(str(c) for c in data.get("columns") or ()),
                output_path=str(data["output_path"]),
                output_format=str(data["output_format"]),
                join_tuning=dict(data.get("join_tuning") or {}),
                rebuild_of=data.get("rebuild_of"),
            )
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"field {error} is missing or malformed") from None

    def definitions(self) -> tuple[list[Entity], list[FeatureTable]]:
        """The entities and feature tables as applied when the dataset was built."""
        return (
            [Entity.from_dict(e) for e in self.entities],
            [FeatureTable.from_dict(t) for t in self.feature_tables],
        )


# --- the store ----------------------------------------------------------------------------------


class DatasetStore:
    """Dataset records under ``<job store>/_datasets``.

    Args:
        job_store: The job store's root (a local folder or a ``pyarrow.fs`` URI).
    """

    def __init__(self, job_store: str) -> None:
        self.uri = f"{job_store.rstrip('/')}/{DATASETS_FOLDER}"

    def __repr__(self) -> str:
        return f"DatasetStore({self.uri!r})"

    def path(self, dataset_id: str) -> str:
        """Where the record of ``dataset_id`` is (or will be).

        Raises:
            ArgumentError: The id cannot name a file (it is a job id: letters, digits, ``._-``).
        """
        if not _DATASET_ID.match(dataset_id):
            raise ArgumentError(
                "dataset", dataset_id, "is not a dataset id; see 'feast-spark datasets list'"
            )
        return f"{self.uri}/{dataset_id}.json"

    def put(self, record: DatasetRecord) -> None:
        """Write a record."""
        write_record(self.path(record.dataset_id), record)

    def get(self, dataset_id: str) -> DatasetRecord:
        """The record of ``dataset_id``.

        Raises:
            NotFoundError: No such dataset.
            DatasetRecordError: The record is damaged (a ValueError).
        """
        try:
            text = read_text(self.path(dataset_id), kind="dataset")
        except NotFoundError:
            raise NotFoundError(
                "dataset",
                dataset_id,
                hint=f"no record in {self.uri}; see 'feast-spark datasets list'",
            ) from None
        return parse_record(text, self.path(dataset_id))

    def list(self, *, project: str | None = None) -> builtins.list[DatasetRecord]:
        """Readable records, newest first (a damaged one is left out)."""
        records = []
        for dataset_id in self._ids():
            try:
                record = self.get(dataset_id)
            except (NotFoundError, ValueError):
                continue
            if project is None or record.project == project:
                records.append(record)
        return sorted(records, key=lambda r: (r.created_at, r.dataset_id), reverse=True)

    def damaged(self) -> builtins.list[DatasetRecordError]:
        """The records that cannot be read (any project's: a damaged one names none)."""
        errors = []
        for dataset_id in self._ids():
            try:
                self.get(dataset_id)
            except DatasetRecordError as error:
                errors.append(error)
            except NotFoundError:
                continue
        return errors

    def refuse_damaged(self, *, vacuum_of: str) -> None:
        """Fail if a record is damaged: the versions it read are unknown, so none may go.

        Raises:
            DatasetRecordError: Naming the first damaged record, for a vacuum of ``vacuum_of``.
        """
        for damaged in self.damaged():
            raise DatasetRecordError(
                damaged.path, damaged.dataset_id, damaged.reason, vacuum_of=vacuum_of
            )

    def delete(self, dataset_id: str) -> None:
        """Remove a record (the dataset's files stay where they are).

        Raises:
            NotFoundError: No such dataset.
        """
        with contextlib.suppress(DatasetRecordError):  # deleting is the way out of a damaged one
            self.get(dataset_id)
        path = self.path(dataset_id)
        local = local_path(path)
        if local is not None:
            Path(local).expanduser().unlink(missing_ok=True)
            return
        files, inner = filesystem(path)
        files.delete_file(inner)

    def _ids(self) -> builtins.list[str]:
        names = list_files(self.uri)
        return sorted(n[: -len(".json")] for n in names if n.endswith(".json") and n[0] != ".")


def new_output_location(output_path: str) -> str:
    """Where a new dataset goes: a URI as given, a local path made absolute.

    Absolute because the job may run in another folder (or machine) and the dataset record must
    name the place for good.

    Raises:
        ArgumentError: A local output exists already (checked before any job; the job checks
            every file system again before it writes).
    """
    local = local_path(output_path)
    if local is None:
        return output_path
    if Path(local).exists() or Path(local).is_symlink():
        raise ArgumentError(
            "output_path",
            local,
            "already exists; choose another output path or delete it (datasets are never "
            "overwritten)",
        )
    return output_path if output_path.startswith("file:") else local


def write_record(path: str, record: DatasetRecord) -> None:
    """Write ``record`` as JSON at ``path`` (atomically on a local file system)."""
    write_text(path, json.dumps(record.to_dict(), indent=1, sort_keys=True) + "\n")


def parse_record(text: str, where: str) -> DatasetRecord:
    """Parse a record's JSON text.

    Raises:
        DatasetRecordError: It is not a readable record (a ValueError naming ``where``).
    """
    dataset_id = where.rpartition("/")[2].removesuffix(".json")
    try:
        document = json.loads(text)
    except ValueError as error:  # json.JSONDecodeError is a ValueError
        reason = f"not JSON: {' '.join(str(error).split())}"
        raise DatasetRecordError(where, dataset_id, reason) from None
    if not isinstance(document, dict):
        reason = f"not a JSON object but a {type(document).__name__}"
        raise DatasetRecordError(where, dataset_id, reason)
    try:
        return DatasetRecord.from_dict(document)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise DatasetRecordError(where, dataset_id, reason) from None


# --- entity files -------------------------------------------------------------------------------


def file_checksum(uri: str) -> FileChecksum:
    """Size, modification time and SHA-256 of a file (a local path, ``file:`` or other URI).

    Raises:
        FileNotFoundError: The file is not there.
    """
    digest = hashlib.sha256()
    local = local_path(uri)
    if local is not None:
        path = Path(local)
        stat = path.stat()
        with path.open("rb") as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
        mtime = datetime.fromtimestamp(stat.st_mtime, UTC).isoformat()
        return FileChecksum(uri, stat.st_size, digest.hexdigest(), mtime)
    import pyarrow.fs

    files, inner = filesystem(uri)
    info = files.get_file_info(inner)
    if info.type != pyarrow.fs.FileType.File:
        raise FileNotFoundError(2, "No such file", uri)
    with files.open_input_stream(inner) as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    when = info.mtime.astimezone(UTC).isoformat() if info.mtime is not None else None
    return FileChecksum(uri, int(info.size or 0), digest.hexdigest(), when)


def check_entity_files(
    dataset_id: str, expected: Sequence[FileChecksum], listed: Iterable[str]
) -> None:
    """Refuse a rebuild whose entity files are not exactly the recorded ones.

    Args:
        dataset_id: The dataset being rebuilt.
        expected: The recorded files.
        listed: The files the source lists now.

    Raises:
        DatasetGoneError: A file is gone, changed, or was added; the message names it.
    """
    recorded = {_same_file(f.path): f for f in expected}
    present = {_same_file(uri): uri for uri in listed}
    keep = (
        "keep entity files unchanged while a dataset built from them is kept (write new rows "
        "to new files)"
    )
    for key, wanted in sorted(recorded.items()):
        if key not in present:
            note = ""
            if f"/{STAGED_ENTITY_ROWS}" in wanted.path:
                note = " (staged from a DataFrame: 'jobs prune' deletes staged inputs; copy them)"
            raise DatasetGoneError(
                dataset_id, f"entity file {wanted.path} is deleted", f"restore it; {keep}{note}"
            )
        try:
            now = file_checksum(present[key])
        except FileNotFoundError:
            raise DatasetGoneError(
                dataset_id, f"entity file {wanted.path} is deleted", f"restore it; {keep}"
            ) from None
        if now.size != wanted.size or now.sha256 != wanted.sha256:
            raise DatasetGoneError(
                dataset_id,
                f"entity file {wanted.path} changed (sha256 {now.sha256[:12]}, recorded "
                f"{wanted.sha256[:12]}; modified {now.mtime})",
                f"restore the recorded content; {keep}",
            )
    added = sorted(set(present) - set(recorded))
    if added:
        raise DatasetGoneError(
            dataset_id,
            f"the entity source now lists a file it did not: {present[added[0]]}",
            f"remove it; {keep}",
        )


def _same_file(uri: str) -> str:
    """A file's URI in one spelling (``file:/x``, ``file:///x`` and ``/x`` are the same)."""
    local = local_path(uri)
    return str(Path(local).resolve()) if local is not None else uri


# --- rebuilding ---------------------------------------------------------------------------------


def rebuild_options(
    record: DatasetRecord,
    output_path: str,
    record_path: str,
    *,
    output_format: str | None = None,
) -> HistoricalRetrievalOptions:
    """The retrieval options that rebuild ``record``'s rows into ``output_path``.

    Same references, the entity source pinned (Delta version; files checked by the job), each
    offline table at its recorded version.
    """
    source = record.entity_source.batch_source()
    return HistoricalRetrievalOptions(
        feature_refs=record.feature_refs,
        entity_source=source,
        output_path=output_path,
        output_format=output_format or record.output_format,
        join_tuning=JoinTuning.from_dict(record.join_tuning),
        dataset=DatasetOptions(
            record_path=record_path,
            registry_revision=record.registry_revision,
            table_versions=record.table_versions,
            entity_files=tuple(f.to_dict() for f in record.entity_source.files),
            rebuild_of=record.dataset_id,
        ),
    )


def rebuild_spec(
    record: DatasetRecord,
    *,
    job_id: str,
    offline_store_path: str,
    output_path: str,
    record_path: str,
    output_format: str | None = None,
) -> JobSpec:
    """The retrieval job spec that rebuilds ``record`` with its definitions as recorded."""
    entities, tables = record.definitions()
    return JobSpec(
        job_id=job_id,
        job_type="historical_retrieval",
        project=record.project,
        entities=tuple(entities),
        feature_tables=tuple(tables),
        offline_store_path=offline_store_path,
        options=rebuild_options(record, output_path, record_path, output_format=output_format),
    )


def precheck_entity_files(record: DatasetRecord) -> None:
    """Check local entity files against the record before any job starts (others: in the job).

    Raises:
        DatasetGoneError: A recorded local file is gone or changed.
    """
    files = record.entity_source.files
    if files and all(local_path(f.path) is not None for f in files):
        check_entity_files(record.dataset_id, files, [f.path for f in files])


def pinned_delta_source(source: BatchSource, version: int) -> BatchSource:
    """``source`` read at ``version`` (``versionAsOf``), other options kept."""
    options = {k: v for k, v in source.options.items() if k not in ("timestampAsOf",)}
    options["versionAsOf"] = str(version)
    return replace(source, options=options)


def is_delta(source: BatchSource) -> bool:
    """Whether the entity source is a Delta table."""
    return isinstance(source, DeltaSource)


def keep_versions(records: Iterable[DatasetRecord], project: str, table: str) -> dict[str, int]:
    """``{dataset id: version}`` of ``table`` that the kept datasets of ``project`` read."""
    return {
        r.dataset_id: r.table_versions[table]
        for r in records
        if r.project == project and table in r.tables
    }
