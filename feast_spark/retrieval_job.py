"""The handle of a training-data job: wait for it, then read the dataset in any form."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from feast_spark.errors import FeastSparkError
from feast_spark.launcher import Job

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


class RetrievalJob:
    """A running or finished historical retrieval.

    Args:
        job: The launched job.
        output_path: Where the dataset is written.
        output_format: ``parquet`` or ``delta``.
    """

    def __init__(self, job: Job, output_path: str, output_format: str) -> None:
        self.job = job
        self.output_path = output_path
        self.output_format = output_format

    @property
    def id(self) -> str:
        """The job id."""
        return self.job.id

    def result(self, timeout: float | None = None) -> dict[str, Any]:
        """Wait for the job; its result record (raises JobFailedError if it did not succeed)."""
        return self.job.result(timeout)

    def to_arrow(self, timeout: float | None = None) -> pa.Table:
        """Wait, then read the dataset with pyarrow (no Spark needed)."""
        self.result(timeout)
        if self.output_format == "delta":
            return read_delta_as_arrow(self.output_path)
        import pyarrow.dataset as ds

        from feast_spark.storage import resolve

        return ds.dataset(resolve(self.output_path), format="parquet").to_table()

    def to_pandas(self, timeout: float | None = None) -> pd.DataFrame:
        """Wait, then read the dataset as pandas."""
        return self.to_arrow(timeout).to_pandas()

    def to_spark_dataframe(self, spark: Any, timeout: float | None = None) -> Any:
        """Wait, then read the dataset with ``spark`` (a SparkSession) as a DataFrame."""
        self.result(timeout)
        return spark.read.format(self.output_format).load(self.output_path)


def read_delta_as_arrow(uri: str) -> pa.Table:
    """Read the current version of the Delta table at ``uri`` with delta-rs (no Spark, no JVM).

    The ``deltalake`` package reads the Delta log itself (JSON commits and checkpoints) on any
    file system it supports (local paths, ``file://``, ``s3://``/``s3a://``, ``gs://``,
    ``abfss://``; credentials from the usual environment variables), and scans through
    DataFusion, which applies deletion vectors and column mapping. What it cannot read is an
    error, never an empty table.

    Raises:
        FeastSparkError: No Delta table at ``uri``, or one deltalake cannot read (the message
            says so and points at ``to_spark_dataframe``).
    """
    import pyarrow as pa
    from deltalake import DeltaTable, QueryBuilder
    from deltalake.exceptions import TableNotFoundError

    from feast_spark.storage import resolve

    location = resolve(uri)  # s3a:// -> s3://, file:/p -> /p, as pyarrow and delta-rs name them
    try:
        table = DeltaTable(location)
    except TableNotFoundError:
        raise FeastSparkError(
            f"dataset '{uri}': no Delta table there (no _delta_log with a commit); check the "
            "output path, or read a parquet dataset with output_format='parquet'"
        ) from None
    except Exception as error:  # delta-rs raises plain exceptions for unknown schemes, I/O
        raise FeastSparkError(
            f"dataset '{uri}': cannot be opened with the deltalake package: {_one_line(error)}"
        ) from None
    try:
        batches = QueryBuilder().register("dataset", table).execute("SELECT * FROM dataset")
        return pa.RecordBatchReader.from_stream(batches).read_all()
    except Exception as error:  # e.g. a reader feature delta-rs does not support yet
        raise FeastSparkError(
            f"dataset '{uri}' (Delta version {table.version()}): cannot be read with the "
            f"deltalake package: {_one_line(error)}; read it with to_spark_dataframe(spark)"
        ) from None


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__
