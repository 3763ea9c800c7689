"""The client's push: a small batch of rows straight to the online store (Feast's push source).

A part of :class:`feast_spark.client.Client` (which inherits :class:`PushMethods`), kept in its
own module so the facade stays small. The rows go to a ``push`` job (:mod:`feast_spark.spark.push`)
that checks them like a batch ingest and writes them like a stream's micro-batch. In-memory rows
are staged under ``launcher.staging_location/<job id>/rows.parquet`` first.

What is checked here, before any job (rows in memory, or a local parquet file, from its metadata):
every column the table needs is there (named as in its batch source, ``field_mapping``
applied), and there is at least one row. Values are checked by the job, row by row: a bad row
is rejected with its reason, the others are written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from feast_spark.errors import ArgumentError, NothingToPushError, SourceSchemaError
from feast_spark.specs import PUSH_TARGETS, PushOptions, Window, new_job_id
from feast_spark.staging import refuse_nanosecond_times, source_at, to_arrow_table

if TYPE_CHECKING:
    import pyarrow as pa

    from feast_spark.config import RepoConfig
    from feast_spark.definitions import FeatureTable
    from feast_spark.launcher import Job, Launcher
    from feast_spark.specs import JobOptions, JobSpec

JOB_TYPE = "push"


class PushMethods:
    """``Client.push`` (mixed into ``Client``)."""

    config: RepoConfig

    if TYPE_CHECKING:  # the Client's

        @property
        def launcher(self) -> Launcher:
            """Submits and tracks this project's jobs."""
            ...

        def get_feature_table(self, name: str) -> FeatureTable:
            """One feature table of the project."""
            ...

        def _spec(
            self,
            job_type: str,
            job_id: str,
            tables: Sequence[FeatureTable],
            window: Window,
            *,
            options: JobOptions | None = None,
        ) -> JobSpec: ...

        def _stage(self, data: object, job_id: str, name: str) -> str: ...

    def push(self, table: str, rows: object, *, to: str = "online") -> Job:
        """Write a small batch of rows straight to the online store (and, ``to="both"``, offline).

        The rows look like the table's batch source rows: the entity columns, its event
        timestamp column, its created timestamp column if it names one, and the features, all
        named as in the batch source (its ``field_mapping`` applies). Each row is checked like
        an ingested one; a row failing a check is rejected with its reason (the table's
        rejected-rows table) and the others are written. Online, each key gets its latest row,
        unless the store holds a newer one: pushing an older row never regresses a value.

        Each push is its own job: ``to="both"`` appends the rows to the offline table once per
        job (a rerun of that job adds nothing), so pushing the same rows twice appends them
        twice.

        Args:
            table: The feature table.
            rows: A pandas DataFrame or Arrow table (staged for the job), or the path or URI
                of a file (parquet; csv or json by suffix).
            to: ``online``, or ``both`` to also append the valid rows to the offline table.

        Returns:
            The launched job: ``wait()`` or ``result()`` for it; its result's ``details`` hold
            the counts (``rows_read``, ``rows_written``, ``rows_rejected``, ``rows_offline``).

        Raises:
            ArgumentError: ``to`` is unknown, ``rows`` is of another kind, or a local file
                does not exist.
            NotFoundError: The table is not registered.
            SourceSchemaError: A column is missing (rows in memory, a local parquet file).
            NothingToPushError: There are no rows (same).
        """
        if to not in PUSH_TARGETS:
            raise ArgumentError("to", to, "must be online or both")
        definition = self.get_feature_table(table)
        job_id = new_job_id(JOB_TYPE, definition.name)
        if isinstance(rows, str | Path):
            path = _local_or_uri(rows)
            if _is_local_parquet(path, definition):
                check_push_parquet(path, definition)
        else:
            arrow = to_arrow_table(rows)
            if arrow is None:
                raise ArgumentError(
                    "rows", type(rows).__name__,
                    "give a pandas DataFrame, an Arrow table, or a file's path or URI",
                )  # fmt: skip
            check_push_schema(arrow.schema, arrow.num_rows, definition, "the rows given")
            path = self._stage(arrow, job_id, "rows")
        options = PushOptions(self.config.online_store, path, to)
        spec = self._spec(JOB_TYPE, job_id, [definition], Window(), options=options)
        return self.launcher.submit(spec)


def push_columns(table: FeatureTable) -> list[str]:
    """The columns pushed rows need, as named in the table's batch source."""
    source = table.batch_source
    columns = [source.source_column(name) for name in table.entities]
    columns.append(source.event_timestamp_column)
    if source.created_timestamp_column:
        columns.append(source.created_timestamp_column)
    return columns + [source.source_column(f.name) for f in table.features]


def check_push_schema(schema: pa.Schema, num_rows: int, table: FeatureTable, where: str) -> None:
    """Fail unless the rows hold every column :func:`push_columns` names, and at least one row.

    Columns match as Spark resolves them: exactly, else one case-insensitive match.

    Raises:
        SourceSchemaError: Naming the first missing column and the columns there are.
        NothingToPushError: No rows.
    """
    names = list(schema.names)
    for column in push_columns(table):
        if column in names or [n.lower() for n in names].count(column.lower()) == 1:
            continue
        raise SourceSchemaError(
            table.name,
            column,
            f"is missing from {where}; its columns are {', '.join(names) or 'none'}. Add it, "
            "or map it with the batch source's field_mapping",
        )
    if num_rows == 0:
        raise NothingToPushError(table.name, where)


def check_push_parquet(path: str, table: FeatureTable) -> None:
    """:func:`check_push_schema` for a local parquet file or folder, from its metadata only."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    try:
        dataset = ds.dataset(path, format="parquet", partitioning="hive")
        schema, rows = dataset.schema, dataset.count_rows()
    except (pa.ArrowInvalid, OSError) as error:
        reason = str(error).split(". ", 1)[0]
        raise ArgumentError(
            "rows",
            path,
            f"is not a readable parquet file or folder ({reason}); give parquet, "
            "or a .csv or .json file",
        ) from None
    check_push_schema(schema, rows, table, path)
    refuse_nanosecond_times(schema, table.name, path, "push the DataFrame itself")


def _local_or_uri(rows: str | Path) -> str:
    """A URI as given; a local path made absolute (the job runs elsewhere), which must exist."""
    text = str(rows)
    if "://" in text or text.startswith("file:"):
        return text
    path = Path(text).expanduser()
    if not any(c in text for c in "*?[") and not path.exists():
        raise ArgumentError("rows", text, "does not exist; give the path or URI of the rows")
    return str(path.resolve())


def _is_local_parquet(path: str, table: FeatureTable) -> bool:
    """Whether pyarrow can check the file here, before any Spark work."""
    if "://" in path or path.startswith("file:") or any(c in path for c in "*?["):
        return False
    source = source_at(path, table.batch_source)
    return getattr(source, "file_format", None) == "parquet" and Path(path).exists()
