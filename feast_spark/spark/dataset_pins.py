"""Pin what a training dataset reads: offline table versions and the entity source.

A historical retrieval resolves, once when it starts, the Delta version of every offline table
it joins and reads each at that version (``versionAsOf``): a commit landing during the job
changes nothing, and the dataset record (:mod:`feast_spark.datasets`) names exactly what was
read. The entity source is pinned too: a Delta source at its version, files by checksum. A
rebuild passes the recorded pins back; here they are checked before any row is read, so that a
vacuumed version or a changed file fails the job with one line instead of a Spark stack trace.

Rules:

- A pinned version must still be readable: the Delta log still has it and none of its data files
  was deleted (by ``VACUUM``). Otherwise :class:`~feast_spark.errors.DatasetGoneError`.
- Entity files are the files Spark lists for the source (a folder, a glob); a rebuild needs
  the same set with the same SHA-256 each.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import PurePosixPath

from pyspark.errors import AnalysisException
from pyspark.sql import SparkSession

from feast_spark.datasets import (
    KIND_DELTA,
    KIND_FILES,
    STAGED_ENTITY_ROWS,
    EntitySourceRecord,
    FileChecksum,
    check_entity_files,
    file_checksum,
    pinned_delta_source,
)
from feast_spark.definitions import BatchSource, DeltaSource, FileSource
from feast_spark.errors import DatasetGoneError
from feast_spark.spark.offline_store import table_version
from feast_spark.specs import HistoricalRetrievalOptions

#: Delta refuses by default to read a version older than the table's
#: ``delta.deletedFileRetentionDuration``, as vacuum may have deleted its files.
ENFORCE_RETENTION_CONF = (
    "spark.databricks.delta.vacuum.enforceTimeTravelWithinDeletedFileRetentionDuration"
)
KEEP_VERSIONS = (
    "a kept dataset's versions survive 'feast-spark offline vacuum' unless --force is given; "
    "Delta also drops versions older than the table's delta.logRetentionDuration (30 days by "
    "default): raise it on tables whose datasets must be rebuilt later"
)


@dataclass(frozen=True)
class DatasetPins:
    """What a retrieval reads, pinned.

    Attributes:
        table_versions: Delta version to read per feature table.
        entity_source: The entity source to read (a Delta source with ``versionAsOf`` set).
        entity_record: How the dataset record describes the entity source.
    """

    table_versions: dict[str, int]
    entity_source: BatchSource
    entity_record: EntitySourceRecord


@contextmanager
def time_travel_past_retention(spark: SparkSession) -> Iterator[None]:
    """Let reads within reach versions older than ``delta.deletedFileRetentionDuration``.

    Delta blocks such reads because vacuum may have deleted their files; a rebuild checks that
    every file of its pinned versions still exists (:func:`check_version_readable`), so a kept
    dataset stays rebuildable after the retention as long as no vacuum removed its files. The
    session's setting is restored afterwards.
    """
    before = spark.conf.get(ENFORCE_RETENTION_CONF, None)
    spark.conf.set(ENFORCE_RETENTION_CONF, "false")
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset(ENFORCE_RETENTION_CONF)
        else:
            spark.conf.set(ENFORCE_RETENTION_CONF, before)


def pin_dataset(
    spark: SparkSession,
    job_id: str,
    options: HistoricalRetrievalOptions,
    paths: Mapping[str, str],
) -> DatasetPins | None:
    """Resolve (or, in a rebuild, check) the versions and entity files of a retrieval.

    Returns:
        The pins, or None when the spec asks for no dataset record (nothing is pinned then).

    Raises:
        DatasetGoneError: A rebuild's version or entity file is gone or changed.
    """
    wanted = options.dataset
    if wanted is None:
        return None
    dataset_id = wanted.rebuild_of or job_id
    versions = pin_table_versions(spark, paths, wanted.table_versions, dataset_id=dataset_id)
    source, record = pin_entity_source(
        spark,
        options.entity_source,
        dataset_id=dataset_id,
        expected_files=[FileChecksum.from_dict(f) for f in wanted.entity_files],
        rebuild=wanted.rebuild_of is not None,
    )
    return DatasetPins(versions, source, record)


def pin_table_versions(
    spark: SparkSession,
    paths: Mapping[str, str],
    pinned: Mapping[str, int],
    *,
    dataset_id: str,
) -> dict[str, int]:
    """The version to read of each offline table: the pinned one (checked), else the latest.

    Args:
        spark: The session.
        paths: Delta table path per feature table.
        pinned: Recorded versions (a rebuild); tables not named get their latest version.
        dataset_id: The dataset being built or rebuilt, for errors.

    Returns:
        ``{table: version}``; a table without a Delta table yet is left out (the read fails
        later with the usual error).

    Raises:
        DatasetGoneError: A pinned version is no longer readable.
    """
    versions: dict[str, int] = {}
    for name, path in paths.items():
        if name in pinned:
            version = int(pinned[name])
            check_version_readable(
                spark, path, version, dataset_id=dataset_id, what=f"offline table '{name}'"
            )
            versions[name] = version
            continue
        latest = table_version(spark, path)
        if latest is not None:
            versions[name] = latest
    return versions


def check_version_readable(
    spark: SparkSession, path: str, version: int, *, dataset_id: str, what: str
) -> None:
    """Raise DatasetGoneError unless version ``version`` of the Delta table at ``path`` reads.

    Reads the log only (the version's file list), then lists the folders holding its files.
    """
    try:
        files = (
            spark.read.format("delta").option("versionAsOf", str(version)).load(path).inputFiles()
        )
    except AnalysisException as error:
        reason = " ".join(str(error).split())[:200]
        raise DatasetGoneError(
            dataset_id,
            f"version {version} of {what} ({path}) is no longer in its Delta log ({reason})",
            KEEP_VERSIONS,
        ) from None
    gone = missing_files(spark, files)
    if gone:
        raise DatasetGoneError(
            dataset_id,
            f"version {version} of {what} ({path}) was vacuumed: {len(gone)} of its "
            f"{len(files)} file(s) are deleted, e.g. {gone[0]}",
            KEEP_VERSIONS,
        )


def missing_files(spark: SparkSession, uris: Sequence[str]) -> list[str]:
    """The URIs among ``uris`` that do not exist (one listing per folder, any Hadoop FS)."""
    # Hadoop's FileSystem (any scheme Spark reads) has no Python API: ask it through py4j.
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    if jvm is None:  # pragma: no cover - a classic session always has its JVM
        raise RuntimeError("no JVM behind this Spark session (Spark Connect cannot list files)")
    by_folder: dict[str, list[str]] = defaultdict(list)
    for uri in uris:
        folder, _, _name = uri.rpartition("/")
        by_folder[folder].append(uri)
    gone = []
    for folder, members in sorted(by_folder.items()):
        hadoop_folder = jvm.org.apache.hadoop.fs.Path(folder)
        fs = hadoop_folder.getFileSystem(conf)
        if not fs.exists(hadoop_folder):
            gone += members
            continue
        present = {str(status.getPath().getName()) for status in fs.listStatus(hadoop_folder)}
        gone += [uri for uri in members if _decoded_name(uri) not in present]
    return sorted(gone)


def _decoded_name(uri: str) -> str:
    from urllib.parse import unquote

    return unquote(uri.rpartition("/")[2])


def pin_entity_source(
    spark: SparkSession,
    source: BatchSource,
    *,
    dataset_id: str,
    expected_files: Iterable[FileChecksum] = (),
    rebuild: bool = False,
) -> tuple[BatchSource, EntitySourceRecord]:
    """The entity source to read, pinned, and how the dataset record describes it.

    - A Delta source is read at one version: its ``versionAsOf`` if given, else the latest,
      resolved now. In a rebuild the version is checked readable first.
    - Files: the files Spark lists for the path (folder or glob), each with its SHA-256. In a
      rebuild (``expected_files``) they must be exactly the recorded ones.

    Raises:
        DatasetGoneError: A rebuild's entity version or files are gone or changed.
    """
    if isinstance(source, DeltaSource):
        options = dict(source.options)
        if "timestampAsOf" in options and "versionAsOf" not in options:
            note = f"read as of {options['timestampAsOf']} (timestampAsOf), not pinned to a version"
            return source, EntitySourceRecord(source.to_dict(), KIND_DELTA, note=note)
        if "versionAsOf" in options:
            version = int(options["versionAsOf"])
        else:
            version = table_version(spark, source.path) or 0
        if rebuild:
            check_version_readable(
                spark, source.path, version, dataset_id=dataset_id, what="the entity Delta table"
            )
        pinned = pinned_delta_source(source, version)
        note = f"Delta version {version}; {KEEP_VERSIONS}"
        return pinned, EntitySourceRecord(pinned.to_dict(), KIND_DELTA, version, note=note)
    if not isinstance(source, FileSource):  # pragma: no cover - BatchSource has two kinds
        raise TypeError(f"unknown source kind {type(source).__name__}")
    listed = _listed_files(spark, source)
    expected = list(expected_files)
    if rebuild:
        check_entity_files(dataset_id, expected, listed)
    files = tuple(file_checksum(uri) for uri in sorted(listed))
    return source, EntitySourceRecord(
        source.to_dict(), KIND_FILES, files=files, note=_staged_note(source.path)
    )


def _listed_files(spark: SparkSession, source: FileSource) -> list[str]:
    options = dict(source.options)
    if source.file_format == "csv":
        options.setdefault("header", "true")
    try:
        reader = spark.read.format(source.file_format).options(**options)
        return list(reader.load(source.path).inputFiles())
    except AnalysisException:
        return []  # nothing there: check_entity_files names the first recorded file


def _staged_note(path: str) -> str | None:
    """A note when the entity rows were a DataFrame the client staged for the job."""
    name = PurePosixPath(path.rstrip("/"))
    if name.name.startswith(STAGED_ENTITY_ROWS) and name.parent.name.startswith(
        "historical-retrieval-"
    ):
        return (
            "entity rows given as a DataFrame, staged for the job: 'feast-spark jobs prune' "
            "deletes them; copy them elsewhere to keep this dataset rebuildable"
        )
    return None
