"""Spark settings sized to one job, from what the launcher can see of its inputs before it starts.

A fixed setting suits one table size, so the launcher measures before spark-submit:

- the ``_delta_log`` folders of the tables the job reads or writes (one listing each, local or
  remote), for Delta's snapshot partitions (the rule: :mod:`feast_spark.delta_sizing`);
- on a local master, the bytes of the job's local inputs (the tables, the batch source, the
  entity rows): a job under :data:`SMALL_INPUT_BYTES` runs its driver JVM with the C1 compiler
  only (:data:`SHORT_RUN_JVM_OPTIONS`), which compiles fast and cheaply, where C2's compile threads
  compete with the job for two cores for a gain that a short run never collects.

These settings are the lowest of a job's chosen settings (:func:`feast_spark.launcher.submit.
effective_conf`): ``spark.conf`` of ``feature_store.yaml`` and the job's own ``conf`` win, so a
user who sets a value keeps it.

    >>> sized_conf(JobFootprint(delta_log_bytes=3_000), local_master=False)
    {'spark.databricks.delta.snapshotPartitions': '1'}
    >>> sized_conf(JobFootprint(delta_log_bytes=100 * MIB, input_bytes=10 * MIB), local_master=True)
    {'spark.databricks.delta.snapshotPartitions': '13', \
'spark.driver.extraJavaOptions': '-XX:TieredStopAtLevel=1'}

Pure Python: the sizes are read with ``os`` (local) or ``pyarrow.fs`` (remote), never Spark.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from feast_spark.delta_sizing import MIB, SNAPSHOT_PARTITIONS, snapshot_partitions
from feast_spark.specs import HistoricalRetrievalOptions, IngestOptions, JobSpec, StreamOptions
from feast_spark.storage import filesystem, local_path

DRIVER_JAVA_OPTIONS = "spark.driver.extraJavaOptions"
# Below this many bytes of input a local job is mostly fixed cost (the quickstart's jobs read
# 22-48 MiB): C1 only. Above it, C2's faster code may pay for its compile time; not measured.
SMALL_INPUT_BYTES = 64 * MIB
SHORT_RUN_JVM_OPTIONS = "-XX:TieredStopAtLevel=1"


@dataclass(frozen=True)
class JobFootprint:
    """What the launcher measured of a job's inputs.

    Attributes:
        delta_log_bytes: Bytes in the ``_delta_log`` folders of the job's tables (0: none yet),
            or None when one cannot be listed from here: then Delta's own default is kept.
        input_bytes: Bytes of the job's inputs (counted up to just past
            :data:`SMALL_INPUT_BYTES`), or None when one of them cannot be measured from here (a
            remote URI, a glob): then the job is not treated as small.
    """

    delta_log_bytes: int | None = 0
    input_bytes: int | None = None


def sized_conf(footprint: JobFootprint, *, local_master: bool) -> dict[str, str]:
    """The settings sized to ``footprint`` (see the module docstring)."""
    conf = {}
    if footprint.delta_log_bytes is not None:
        conf[SNAPSHOT_PARTITIONS] = str(snapshot_partitions(footprint.delta_log_bytes))
    small = footprint.input_bytes is not None and footprint.input_bytes <= SMALL_INPUT_BYTES
    if local_master and small:
        conf[DRIVER_JAVA_OPTIONS] = SHORT_RUN_JVM_OPTIONS
    return conf


def measure(spec: JobSpec, *, inputs: bool) -> JobFootprint:
    """Measure a job's Delta logs and, with ``inputs``, the bytes of its local inputs.

    A table or source that does not exist yet counts 0 bytes (an ingest creating its table). A
    stream's input (a Kafka topic, read for hours) has no size: never a short run.
    """
    tables = [spec.offline_table_path(table.name) for table in spec.feature_tables]
    sizes = [_delta_log_bytes(table) for table in tables]
    log_bytes = None if None in sizes else sum(size or 0 for size in sizes)
    if not inputs or isinstance(spec.options, StreamOptions):
        return JobFootprint(log_bytes)
    return JobFootprint(log_bytes, _local_bytes([*tables, *_source_paths(spec)], SMALL_INPUT_BYTES))


def _source_paths(spec: JobSpec) -> list[str]:
    """The paths a job reads besides its tables: batch sources (ingest), entity rows (retrieval)."""
    options = spec.options
    if isinstance(options, HistoricalRetrievalOptions):
        return [options.entity_source.path]
    if spec.job_type != "ingest":
        return []
    if isinstance(options, IngestOptions) and options.source is not None:
        return [options.source.path]
    return [table.batch_source.path for table in spec.feature_tables if table.batch_source]


def _delta_log_bytes(table: str) -> int | None:
    """Bytes of the files directly in ``<table>/_delta_log`` (0: none; None: cannot list it)."""
    log = f"{table.rstrip('/')}/_delta_log"
    path = local_path(log)
    if path is not None:
        try:
            with os.scandir(path) as entries:
                return sum(e.stat().st_size for e in entries if e.is_file())
        except (FileNotFoundError, NotADirectoryError):
            return 0
    import pyarrow.fs

    try:
        files, inner = filesystem(log)
        infos = files.get_file_info(pyarrow.fs.FileSelector(inner, allow_not_found=True))
    except (OSError, ValueError):  # pyarrow's errors subclass these
        return None  # not the smallest setting: the table may have a large log
    return sum(info.size or 0 for info in infos if info.type == pyarrow.fs.FileType.File)


def _local_bytes(paths: Iterable[str], limit: int) -> int | None:
    """Total bytes under local paths (files or folders), counting stops once over ``limit``.

    None when a path is remote or a glob: its size is not known from here.
    """
    local = [local_path(uri) for uri in dict.fromkeys(paths)]  # a shared source counts once
    if any(path is None or any(char in path for char in "*?[") for path in local):
        return None
    total = 0
    for path in local:
        total += _tree_bytes(str(path), limit - total)
        if total > limit:
            break
    return total


def _tree_bytes(path: str, limit: int) -> int:
    """Bytes of a file or a folder's files; a large table is not walked past ``limit``."""
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for folder, _dirs, names in os.walk(path):
        for name in names:
            try:
                total += os.path.getsize(os.path.join(folder, name))
            except OSError:
                continue  # removed while counting (a vacuum): it is not read either
        if total > limit:
            break
    return total
