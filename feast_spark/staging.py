"""Stage in-memory data (pandas, Arrow, Spark DataFrames) as parquet where jobs can read it.

Jobs run in another process, possibly on another machine: a DataFrame handed to the client is
written under ``launcher.staging_location`` first, and the job reads that path. Also turns a
path given at run time into a source like the table's own.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feast_spark.definitions import BatchSource, DeltaSource, FileSource
from feast_spark.errors import ArgumentError, SourceSchemaError
from feast_spark.storage import filesystem, local_path

if TYPE_CHECKING:
    import pyarrow as pa

_SUFFIX_FORMATS = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json"}


def is_spark_dataframe(data: object) -> bool:
    """Whether ``data`` is a pyspark DataFrame (checked without importing pyspark)."""
    return type(data).__module__.startswith("pyspark.") and hasattr(data, "write")


# Spark reads microseconds at most: it refuses parquet TIMESTAMP(NANOS) columns, which pandas'
# datetime64[ns] (its default) would be written as. Spark keeps no finer time than this anyway.
_SPARK_TIMES = {"coerce_timestamps": "us", "allow_truncated_timestamps": True}


def refuse_nanosecond_times(schema: pa.Schema, owner: str, where: str, instead: str) -> None:
    """Fail, before any job, when a parquet file's column holds nanosecond timestamps.

    Args:
        schema: The file's schema.
        owner: The table name, or ``ENTITY_ROWS``, for the error.
        where: The file.
        instead: The in-memory way out (``push the DataFrame itself``).

    Raises:
        SourceSchemaError: Naming the first such column, the file and how to write it.
    """
    import pyarrow.types as pt

    for field in schema:
        if pt.is_timestamp(field.type) and field.type.unit == "ns":
            raise SourceSchemaError(
                owner,
                field.name,
                f"of {where} holds nanosecond timestamps, which Spark cannot read; write them in "
                "microseconds (pandas: to_parquet(path, coerce_timestamps='us', "
                f"allow_truncated_timestamps=True)), or {instead}",
            )


def to_arrow_table(data: object) -> pa.Table | None:
    """``data`` as an Arrow table if it is pandas or Arrow, else None."""
    import pyarrow as pa

    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if type(data).__module__.startswith("pandas.") and hasattr(data, "to_dict"):
        return pa.Table.from_pandas(data, preserve_index=False)
    return None


def stage(data: object, location: str, name: str) -> str:
    """Write pandas, Arrow or a Spark DataFrame as parquet at ``<location>/<name>``.

    Returns:
        The staged path (a folder for Spark, a file otherwise).

    Raises:
        ArgumentError: ``data`` is none of those.
    """
    target = f"{location.rstrip('/')}/{name}"
    if is_spark_dataframe(data):
        data.write.mode("errorifexists").parquet(target)  # type: ignore[attr-defined]
        return target
    table = to_arrow_table(data)
    if table is None:
        raise ArgumentError(
            "source",
            type(data).__name__,
            "give a path or URI, a pandas DataFrame, an Arrow table or a Spark DataFrame",
        )
    import pyarrow.parquet as pq

    local = local_path(target)
    if local is None:
        files, path = filesystem(target)
        files.create_dir(path.rsplit("/", 1)[0], recursive=True)
        pq.write_table(table, path, filesystem=files, **_SPARK_TIMES)
        return target
    local_file = Path(local)
    local_file.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, local_file, **_SPARK_TIMES)
    return str(local_file)


def source_at(path: str, like: BatchSource) -> BatchSource:
    """A source reading ``path`` with ``like``'s columns, mapping and timestamp settings.

    The format follows the path: a Delta table (a folder with ``_delta_log``), else the file
    suffix (.parquet, .csv, .json), else ``like``'s own format.
    """
    common: dict[str, Any] = {
        "path": path,
        "event_timestamp_column": like.event_timestamp_column,
        "created_timestamp_column": like.created_timestamp_column,
        "date_partition_column": like.date_partition_column,
        "field_mapping": like.field_mapping,
        "timestamp_format": like.timestamp_format,
    }
    if _is_delta_table(path):
        return DeltaSource(**common)
    file_format = _SUFFIX_FORMATS.get(Path(path.rstrip("/")).suffix.lower())
    if isinstance(like, FileSource):
        return replace(like, path=path, file_format=file_format or like.file_format)
    return FileSource(**common, file_format=file_format or "parquet")


def _is_delta_table(path: str) -> bool:
    local = local_path(path)
    if local is None:
        return False  # a remote Delta table needs a DeltaSource in the definition
    return (Path(local) / "_delta_log").is_dir()
