"""The handle of a training-data job: wait for it, then read the dataset in any form."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
            from feast_spark.staging import read_delta_as_arrow

            return read_delta_as_arrow(self.output_path)
        import pyarrow.dataset as ds

        from feast_spark.job_results import pyarrow_uri

        return ds.dataset(pyarrow_uri(self.output_path), format="parquet").to_table()

    def to_pandas(self, timeout: float | None = None) -> pd.DataFrame:
        """Wait, then read the dataset as pandas."""
        return self.to_arrow(timeout).to_pandas()

    def to_spark_dataframe(self, spark: Any, timeout: float | None = None) -> Any:
        """Wait, then read the dataset with ``spark`` (a SparkSession) as a DataFrame."""
        self.result(timeout)
        return spark.read.format(self.output_format).load(self.output_path)
