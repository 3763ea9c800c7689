"""The client's training dataset methods: list, describe, delete and rebuild dataset records.

A part of :class:`feast_spark.client.Client` (which inherits :class:`DatasetMethods`), kept in its
own module so the facade stays small; the records themselves are :mod:`feast_spark.datasets`.
"""

from __future__ import annotations

import contextlib
import functools
from typing import TYPE_CHECKING

from feast_spark.datasets import (
    DatasetRecord,
    DatasetStore,
    new_output_location,
    precheck_entity_files,
    rebuild_spec,
)
from feast_spark.errors import DatasetRecordError, NotFoundError
from feast_spark.retrieval_job import RetrievalJob
from feast_spark.specs import HistoricalRetrievalOptions, new_job_id

if TYPE_CHECKING:
    from feast_spark.config import RepoConfig
    from feast_spark.launcher import Launcher


class DatasetMethods:
    """Training dataset records of one project (mixed into ``Client``).

    Every ``get_historical_features`` job records its dataset (:mod:`feast_spark.datasets`):
    what it read, at which Delta versions, so that :meth:`rebuild_dataset` can build the same
    rows again after later ingests and definition changes.
    """

    config: RepoConfig

    if TYPE_CHECKING:  # the Client's (a cached property there)

        @property
        def launcher(self) -> Launcher:
            """Submits and tracks this project's jobs."""
            ...

    @functools.cached_property
    def datasets(self) -> DatasetStore:
        """The training dataset records, beside the job records (``<job store>/_datasets``)."""
        return DatasetStore(self.config.launcher.job_store)

    def list_datasets(self) -> list[DatasetRecord]:
        """This project's training dataset records, newest first."""
        return self.datasets.list(project=self.config.project)

    def get_dataset(self, dataset_id: str) -> DatasetRecord:
        """One training dataset's record.

        Raises:
            NotFoundError: No dataset of this project has this id (a job store may be shared).
        """
        record = self.datasets.get(dataset_id)
        if record.project != self.config.project:
            raise NotFoundError(
                "dataset", dataset_id, self.config.project,
                f"it belongs to project '{record.project}' (give -p {record.project})",
            )  # fmt: skip
        return record

    def delete_dataset(self, dataset_id: str) -> None:
        """Forget a dataset: its record goes (vacuum may then remove what it read); files stay.

        Raises:
            NotFoundError: No dataset of this project has this id.
        """
        with contextlib.suppress(DatasetRecordError):  # a damaged one names no project
            self.get_dataset(dataset_id)
        self.datasets.delete(dataset_id)

    def rebuild_dataset(
        self, dataset_id: str, output_path: str, *, output_format: str | None = None
    ) -> RetrievalJob:
        """Build a recorded dataset again, row for row, into ``output_path``.

        Same feature references and definitions as recorded, each offline table at its recorded
        Delta version (time travel), the entity rows checked against their recorded Delta
        version or file checksums. The rebuild records a dataset of its own (``rebuild_of``).

        Args:
            dataset_id: The dataset to rebuild.
            output_path: Where to write the rows (must not exist).
            output_format: ``parquet`` or ``delta``; default: the recorded format.

        Returns:
            The job; its ``to_pandas()``, ... wait for it. It fails with a DatasetGoneError's
            message when a version it needs was vacuumed or an entity file changed.

        Raises:
            NotFoundError: No dataset has this id.
            DatasetGoneError: A local entity file changed or is gone (checked before any job).
            ArgumentError: A local ``output_path`` exists already (checked before any job).
        """
        record = self.get_dataset(dataset_id)
        output_path = new_output_location(output_path)
        precheck_entity_files(record)
        job_id = new_job_id("historical_retrieval")
        spec = rebuild_spec(
            record,
            job_id=job_id,
            offline_store_path=self.config.offline_store.path,
            output_path=output_path,
            record_path=self.datasets.path(job_id),
            output_format=output_format,
        )
        options = spec.options
        written = options.output_format if isinstance(options, HistoricalRetrievalOptions) else ""
        return RetrievalJob(self.launcher.submit(spec), output_path, written)
