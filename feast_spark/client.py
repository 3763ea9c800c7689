"""The Python entry point: a thin facade over the registry, the launcher and the online store."""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from feast_spark.audit import audit_options
from feast_spark.client_datasets import DatasetMethods
from feast_spark.client_push import PushMethods
from feast_spark.columns import EVENT_TIMESTAMP
from feast_spark.config import CassandraOnlineStoreConfig, RepoConfig, load_config
from feast_spark.config_reader import resolve_location
from feast_spark.datasets import STAGED_ENTITY_ROWS, keep_versions, new_output_location
from feast_spark.definitions import BatchSource, Entity, FeatureTable, FileSource
from feast_spark.definitions.durations import parse_duration
from feast_spark.definitions.yaml_files import load_definitions
from feast_spark.entity_checks import check_entity_parquet, check_entity_rows
from feast_spark.errors import ArgumentError, NotFoundError
from feast_spark.feature_refs import parse_feature_refs, split_refs, table_names
from feast_spark.incremental import IncrementalBook, IncrementalState, JobOutcome
from feast_spark.launcher import Job, JobRecord, JobState, Launcher, PrunedJob
from feast_spark.online.base import OnlineStore, OnlineTableSchema, stored_key
from feast_spark.online.naming import online_table_name
from feast_spark.online.service import OnlineReadPlan, OnlineResponse, read_plan_from_registry
from feast_spark.online.stores import open_online_store
from feast_spark.registry import ApplyResult, Registry
from feast_spark.retrieval_job import RetrievalJob
from feast_spark.specs import (
    DatasetOptions,
    HistoricalRetrievalOptions,
    IngestOptions,
    JobOptions,
    JobSpec,
    MaintenanceOptions,
    MaterializeOptions,
    Window,
    new_job_id,
    parse_instant,
)
from feast_spark.staging import is_spark_dataframe, source_at, stage, to_arrow_table
from feast_spark.statistics import IngestStatistics, read_statistics

_MAX_CACHED_READ_PLANS = 256


@dataclass(frozen=True)
class DeletedTable:
    """A deleted feature table and the data it leaves behind.

    Attributes:
        table: The definition that was removed.
        left_behind: Locations of data that still exist (delete them yourself if unwanted).
    """

    table: FeatureTable
    left_behind: tuple[str, ...]


class Client(DatasetMethods, PushMethods):
    """Manage definitions, run jobs, push rows and rebuild training datasets for one project.

    Args:
        config: Settings, a path to ``feature_store.yaml`` (or its folder), or None to search the
            working directory and ``$FEAST_SPARK_CONFIG``.
        project: Use this project instead of the configured one.

    Example:
        >>> client = Client("feature_store.yaml")  # doctest: +SKIP
        >>> client.apply(driver, driver_stats)  # doctest: +SKIP
    """

    def __init__(
        self,
        config: RepoConfig | str | os.PathLike[str] | None = None,
        *,
        project: str | None = None,
    ) -> None:
        loaded = config if isinstance(config, RepoConfig) else load_config(config)
        self.config = loaded.with_project(project)
        self.registry = Registry(self.config.registry)
        self.incremental = IncrementalBook(self.registry, self.config.project)
        # online read plans by feature references: (time.monotonic() when built, plan)
        self._read_plans: dict[tuple[str, ...], tuple[float, OnlineReadPlan]] = {}

    @property
    def project(self) -> str:
        """The project this client works in."""
        return self.config.project

    # --- definitions ---------------------------------------------------------------------------

    def apply(self, *objects: Entity | FeatureTable) -> list[ApplyResult]:
        """Create or update entities and feature tables (idempotent; one registry commit)."""
        self._read_plans.clear()
        return self.registry.apply(self.project, objects)

    def apply_files(self, paths: Iterable[str | Path]) -> list[ApplyResult]:
        """Apply every definition in YAML files or folders."""
        self._read_plans.clear()
        return self.registry.apply(self.project, load_definitions(paths))

    def list_entities(self) -> list[Entity]:
        """Entities of the project."""
        return self.registry.list_entities(self.project)

    def get_entity(self, name: str) -> Entity:
        """One entity of the project."""
        return self.registry.get_entity(self.project, name)

    def list_feature_tables(self) -> list[FeatureTable]:
        """Feature tables of the project."""
        return self.registry.list_feature_tables(self.project)

    def get_feature_table(self, name: str) -> FeatureTable:
        """One feature table of the project."""
        return self.registry.get_feature_table(self.project, name)

    def delete_feature_table(self, name: str) -> DeletedTable:
        """Remove a table's definition; its offline and online data stay where they are."""
        self._read_plans.clear()
        table = self.registry.delete_feature_table(self.project, name)
        return DeletedTable(table, self.data_locations(table.name))

    def data_locations(self, table: str) -> tuple[str, ...]:
        """Where a table's data lives: its Delta table and its online table."""
        offline = f"{self.config.offline_store.path.rstrip('/')}/{self.project}/{table}"
        online_store = self.config.online_store
        name = online_table_name(self.project, table)
        if isinstance(online_store, CassandraOnlineStoreConfig):
            online = f"cassandra table {online_store.keyspace}.{name}"
        else:
            online = f"sqlite table {name} in {online_store.path}"
        return (f"delta table {offline}", online)

    def list_projects(self) -> list[str]:
        """All projects in the registry."""
        return self.registry.list_projects()

    def create_project(self, name: str) -> bool:
        """Create a project; False when it already exists."""
        return self.registry.create_project(name)

    # --- jobs ----------------------------------------------------------------------------------

    @functools.cached_property
    def launcher(self) -> Launcher:
        """Submits and tracks this project's jobs (``launcher`` of feature_store.yaml)."""
        return Launcher.from_config(self.config)

    def ingest(
        self,
        table: str,
        source: object = None,
        *,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        max_rejected_fraction: float = 1.0,
    ) -> Job:
        """Load a window of a source into the table's Delta offline table; returns the job.

        Args:
            table: The feature table.
            source: None for the table's batch source; a path or URI read like it; or a pandas
                DataFrame, Arrow table or Spark DataFrame, staged for the job first.
            start: Window start (inclusive); None for the source's beginning.
            end: Window end (exclusive); None for the source's end. With both bounds the
                window's rows are replaced (and counted as deleted); otherwise the source's
                rows the table lacks are added and nothing is deleted.
            max_rejected_fraction: Fail, committing nothing, above this share of rejected rows.

        Returns:
            The launched job: ``wait()`` or ``result()`` for it.
        """
        if not 0.0 <= max_rejected_fraction <= 1.0:  # before staging: nothing left behind
            raise ArgumentError(
                "max_rejected_fraction", max_rejected_fraction, "must be between 0 and 1"
            )
        definition = self.get_feature_table(table)
        job_id = new_job_id("ingest", definition.name)
        override = None
        if source is not None:
            path = (
                source if isinstance(source, str | Path) else self._stage(source, job_id, "source")
            )
            override = source_at(str(path), definition.batch_source)
        spec = self._spec(
            "ingest",
            job_id,
            [definition],
            _window(start, end),
            options=IngestOptions(override, max_rejected_fraction),
        )
        return self.launcher.submit(spec)

    def get_historical_features(
        self,
        feature_refs: Sequence[str] | str,
        entity_source: object,
        *,
        timestamp_column: str = EVENT_TIMESTAMP,
        output_path: str | None = None,
        output_format: str = "parquet",
    ) -> RetrievalJob:
        """Start building a point-in-time correct training dataset.

        Args:
            feature_refs: ``table:feature`` or ``table:*`` references (or one comma-separated
                string).
            entity_source: Entity rows: a path or URI (parquet, csv, json or a Delta table),
                a pandas DataFrame, an Arrow table or a Spark DataFrame (staged for the job),
                or a FileSource/DeltaSource for full control.
            timestamp_column: The entity rows' timestamp column (paths and frames).
            output_path: Where to write the dataset (default: under the staging location).
            output_format: ``parquet`` or ``delta``.

        Returns:
            The job; ``to_pandas()``, ``to_arrow()`` or ``to_spark_dataframe(spark)`` wait for it.

        Raises:
            NotFoundError: A table or feature is not registered.
            SourceSchemaError: Staged entity rows miss a key or timestamp column, or are empty.
            ArgumentError: A local ``output_path`` exists already.
        """
        HistoricalRetrievalOptions.check_output_format(output_format)  # before staging anything
        if output_path is not None:
            output_path = new_output_location(output_path)
        parse_feature_refs(feature_refs, known_tables=self.list_feature_tables)  # syntax first
        revision = self.registry.revision()  # the definitions below are of it or later
        tables = {name: self.get_feature_table(name) for name in table_names(feature_refs)}
        refs = parse_feature_refs(feature_refs, tables)
        entities = self._entities(_entity_names(tables.values()))
        job_id = new_job_id("historical_retrieval")
        if isinstance(entity_source, BatchSource):
            source = entity_source
        else:
            arrow = to_arrow_table(entity_source)
            if arrow is not None:
                check_entity_rows(arrow, entities, timestamp_column)
            path = (
                str(entity_source)
                if isinstance(entity_source, str | Path)
                else self._stage(
                    arrow if arrow is not None else entity_source, job_id, STAGED_ENTITY_ROWS
                )
            )
            source = source_at(path, FileSource(path=path, event_timestamp_column=timestamp_column))
            if arrow is None and _is_local_parquet(source):
                check_entity_parquet(source.path, entities, timestamp_column)
        output = output_path or f"{self.config.launcher.staging_location}/{job_id}/dataset"
        record = DatasetOptions(self.datasets.path(job_id), registry_revision=revision)
        options = HistoricalRetrievalOptions(
            tuple(str(r) for r in refs), source, output, output_format, dataset=record
        )
        spec = self._spec(
            "historical_retrieval", job_id, list(tables.values()), Window(), options=options
        )
        return RetrievalJob(self.launcher.submit(spec), output, output_format)

    def materialize(self, tables: Sequence[str], start: datetime | str, end: datetime | str) -> Job:
        """Push the latest value of every key in ``[start, end)`` to the online store."""
        definitions = [self.get_feature_table(name) for name in tables]
        window = _window(start, end)
        return self._submit_materialize(definitions, window)

    def materialize_incremental(
        self, tables: Sequence[str], end: datetime | str | None = None
    ) -> Job | None:
        """Materialize each table from its high-water mark up to ``end`` (default: now).

        The first run starts at ``end - max_age`` (or at the table's first row when it has no
        ``max_age``). The end is capped at now plus ``future_event_time_allowance``: the job
        skips rows dated later, and a mark past them would never materialize them. The mark
        moves when the job succeeds: when the returned job is seen to end (``wait()``,
        ``result()``, ``status()``), else at the next call, which asks the job store.

        Returns:
            The job, or None when every table is materialized up to the end already.
        """
        until = _instant(end, "end")
        definitions = [self.get_feature_table(name) for name in tables]
        window = self.incremental.plan(
            definitions,
            datetime.now(UTC),
            self._job_outcome,
            end=until,
            allowance=self.config.future_event_time_allowance,
        )
        if window is None:
            return None
        job = self._submit_materialize(definitions, window)
        names = [table.name for table in definitions]
        self.incremental.begin(names, job.id)

        def settle(record: JobRecord) -> None:
            outcome = JobOutcome(True, record.state is JobState.SUCCEEDED, record.window)
            self.incremental.settle_job(names, record.job_id, outcome)

        job.on_end(settle)
        return job

    def get_online_features(
        self, feature_refs: Sequence[str] | str, entity_rows: Any
    ) -> OnlineResponse:
        """Latest values and statuses of ``feature_refs`` for ``entity_rows``.

        Args:
            feature_refs: ``table:feature`` or ``table:*`` references.
            entity_rows: ``[{"driver_id": 1001}, ...]``, a mapping of columns, or pandas.

        Returns:
            Values with a status each (PRESENT, NULL_VALUE, NOT_FOUND, OUTSIDE_MAX_AGE), in
            request order; ``to_dict()``, ``to_pandas()`` or ``to_arrow()``.
        """
        return self._read_plan(tuple(split_refs(feature_refs))).read(self.online_store, entity_rows)

    def _read_plan(self, refs: tuple[str, ...]) -> OnlineReadPlan:
        """The resolved plan of ``refs``, reused for ``registry.cache_ttl_seconds``.

        A serving loop then pays the registry read and the reference checks once a TTL, not
        once a request; ``apply`` and deletes through this client drop the cache.
        """
        now = time.monotonic()
        cached = self._read_plans.get(refs)
        if cached is not None and now - cached[0] < self.config.registry_cache_ttl_seconds:
            return cached[1]
        parse_feature_refs(refs, known_tables=self.list_feature_tables)  # syntax, with hints
        plan = read_plan_from_registry(self.registry, self.project, refs)
        if len(self._read_plans) >= _MAX_CACHED_READ_PLANS:
            self._read_plans.clear()
        self._read_plans[refs] = (now, plan)
        return plan

    def compact(self, table: str) -> Job:
        """Rewrite a table's Delta files in time order (OPTIMIZE ZORDER BY event_timestamp)."""
        return self._maintenance(table, MaintenanceOptions("compact"), Window())

    def vacuum(self, table: str, *, force: bool = False) -> Job:
        """Delete files of a table's Delta table that no version within the retention needs.

        The retention is the table's ``delta.deletedFileRetentionDuration`` (7 days by default;
        change it with ``ALTER TABLE ... SET TBLPROPERTIES``): Delta 4.4 ignores a retention
        passed to VACUUM, and its safety check against short retentions stays on. The job
        fails, deleting nothing, if it would delete a file of a version that a kept dataset
        read (:meth:`list_datasets`), unless ``force``.

        Raises:
            DatasetRecordError: A dataset record is damaged (the versions it read are unknown),
                and not ``force``: checked before any job.
        """
        if not force:
            self.datasets.refuse_damaged(vacuum_of=table)
        keep = {} if force else {table: keep_versions(self.list_datasets(), self.project, table)}
        return self._maintenance(table, MaintenanceOptions("vacuum", keep), Window())

    def audit(self, table: str, sample: int | None = None, *, examples: int = 5) -> Job:
        """Start a job comparing a table's online rows with its offline latest row per key.

        ``sample`` random offline keys, or every key (None: the online table is enumerated too);
        ``AuditReport.from_dict(job.result()["details"])`` (:mod:`feast_spark.audit`) is the
        report. Raises ArgumentError for a ``sample`` below 1 or ``examples`` below 0.
        """
        options = audit_options(self.config.online_store, sample, examples)
        definition = self.get_feature_table(table)
        job_id = new_job_id("audit", definition.name)
        spec = self._spec("audit", job_id, [definition], Window(), options=options)
        return self.launcher.submit(spec)

    def feature_statistics(self, table: str, versions: int = 5) -> list[IngestStatistics]:
        """Feature statistics of a table's last ``versions`` ingests, oldest first (no Spark).

        See :mod:`feast_spark.statistics`; empty when no ingest recorded any yet.
        """
        if versions < 1:
            raise ArgumentError("versions", versions, "give the number of ingests to show (>= 1)")
        name = self.get_feature_table(table).name  # an unknown table is a NotFoundError
        path = f"{self.config.offline_store.path.rstrip('/')}/{self.project}/{name}"
        return read_statistics(path, versions)

    def list_jobs(
        self,
        include_terminated: bool = True,
        *,
        table_name: str | None = None,
        job_type: str | None = None,
    ) -> list[Job]:
        """This project's jobs, newest first, as feast-spark 0.2's ``Client.list_jobs``.

        Args:
            include_terminated: False keeps only jobs that have not ended (each asked first).
            table_name: Only jobs that read or write this feature table.
            job_type: Only ``ingest``, ``historical_retrieval``, ``materialize``, ...

        Returns:
            Handles to ``wait()``, ``cancel()``, ``result()`` or read ``record`` of.
        """
        records = self.launcher.list(table=table_name, job_type=job_type, project=self.project)
        if not include_terminated:
            records = [r for r in records if not r.state.is_final]
        return [self.launcher.get(r.job_id) for r in records]

    def get_job(self, job_id: str) -> Job:
        """One job by id, launched by any process (as feast-spark 0.2's ``Client.get_job``).

        Raises:
            NotFoundError: No such job in the job store.
        """
        return self.launcher.get(job_id)

    def prune_jobs(self, older_than: timedelta | str, *, dry_run: bool = False) -> list[PrunedJob]:
        """Delete the jobs that ended more than ``older_than`` ago (``30d``, ``12h``, ...).

        Their records, specs, logs and results go, and their staged inputs under
        ``launcher.staging_location`` (with a training dataset written there because no output
        path was given). Jobs still running are kept; see :meth:`Launcher.prune`.

        Raises:
            ArgumentError: ``older_than`` is not a duration, or is negative.
        """
        try:
            age = parse_duration(older_than)
        except ValueError as error:
            raise ArgumentError("older_than", older_than, str(error)) from None
        return self.launcher.prune(
            age, staging_location=self.config.launcher.staging_location, dry_run=dry_run
        )

    def _maintenance(self, table: str, options: MaintenanceOptions, window: Window) -> Job:
        definition = self.get_feature_table(table)
        job_id = new_job_id(options.action, definition.name)
        spec = self._spec("maintenance", job_id, [definition], window, options=options)
        return self.launcher.submit(spec)

    @functools.cached_property
    def online_store(self) -> OnlineStore:
        """The configured online store, opened at first use (``close()`` releases it)."""
        return open_online_store(self.config.online_store)

    def close(self) -> None:
        """Release the online store's connection, if one was opened."""
        store = self.__dict__.pop("online_store", None)
        if store is not None:
            store.close()

    # --- online repair -------------------------------------------------------------------------

    def delete_online_keys(self, table: str, entity_rows: Sequence[Mapping[str, Any]]) -> int:
        """Remove keys' online rows whatever their event times; returns the keys that had one.

        SQLite: the rows are deleted, and the next materialization writes each key's latest
        row. Cassandra: each key is deleted at its newest write timestamp, so only events newer
        than the deleted value show again; a key written beyond now plus
        ``future_event_time_allowance`` is refused (purge the table instead). See README,
        "Repairing a bad online value".

        Raises:
            DefinitionError: An entity row lacks a key or holds a value of another type.
            OnlineStoreError: The store failed, or refused a key (nothing is deleted then).
        """
        schema = self._online_schema(table)
        keys = [
            tuple(
                stored_key(row.get(name), value_type, entity=name, row=number)
                for name, value_type in schema.entities
            )
            for number, row in enumerate(entity_rows)
        ]
        latest = datetime.now(UTC) + self.config.future_event_time_allowance
        return self.online_store.delete_keys(schema, keys, latest_write=latest)

    def purge_online_table(self, table: str) -> None:
        """Empty a table's online rows whatever their event times, and reset its high-water mark.

        The next ``materialize_incremental`` then starts afresh (``end - max_age``, or the
        table's first row), so it rebuilds the online table; ``materialize`` a window to
        rebuild by hand.

        Raises:
            OnlineStoreError: The store failed (Cassandra: TRUNCATE needs every node up).
        """
        self.online_store.purge(self._online_schema(table))
        self.incremental.reset(table)

    def _online_schema(self, table: str) -> OnlineTableSchema:
        definition = self.get_feature_table(table)
        entities = self._entities(definition.entities)
        return OnlineTableSchema.of(self.project, definition, entities)

    # --- plumbing ------------------------------------------------------------------------------

    def _submit_materialize(self, tables: Sequence[FeatureTable], window: Window) -> Job:
        job_id = new_job_id("materialize", tables[0].name if len(tables) == 1 else None)
        options = MaterializeOptions(self.config.online_store)
        spec = self._spec("materialize", job_id, tables, window, options=options)
        return self.launcher.submit(spec)

    def settle_incremental(self, table: str) -> IncrementalState:
        """Fold the outcome of the table's last incremental job into its high-water mark.

        Returns:
            The table's state afterwards (``materialized_until``: the mark).
        """
        return self.incremental.settle(table, self._job_outcome)

    def _job_outcome(self, job_id: str) -> JobOutcome | None:
        """A job's outcome from the job store (None: unknown there, e.g. pruned)."""
        try:
            job = self.launcher.get(job_id)
        except NotFoundError:
            return None
        # One status read: asking twice could see RUNNING, then SUCCEEDED, and drop the window.
        status = job.status()
        return JobOutcome(status.is_final, status is JobState.SUCCEEDED, job.record.window)

    def _spec(
        self,
        job_type: str,
        job_id: str,
        tables: Sequence[FeatureTable],
        window: Window,
        *,
        options: JobOptions | None = None,
    ) -> JobSpec:
        entities = tuple(self._entities(_entity_names(tables)))
        tables = [self._with_absolute_source(table) for table in tables]
        return JobSpec(
            job_id=job_id,
            job_type=job_type,
            project=self.project,
            entities=entities,
            feature_tables=tuple(tables),
            offline_store_path=self.config.offline_store.path,
            window=window,
            options=options,
            future_event_time_allowance_s=self.config.future_event_time_allowance.total_seconds(),
        )

    def _entities(self, names: Iterable[str]) -> list[Entity]:
        """Entities by name from one registry read (NotFoundError names a missing one)."""
        known = {entity.name: entity for entity in self.list_entities()}
        return [known[name] if name in known else self.get_entity(name) for name in names]

    def _with_absolute_source(self, table: FeatureTable) -> FeatureTable:
        """Resolve a relative source path against the project folder, as config paths are.

        Jobs run in another working directory (or machine): a relative path would move.
        """
        source = table.batch_source
        base = Path(self.config.source).parent if Path(self.config.source).is_file() else Path()
        resolved = resolve_location(source.path, base)
        if resolved == source.path:
            return table
        return dataclasses.replace(table, batch_source=dataclasses.replace(source, path=resolved))

    def _stage(self, data: object, job_id: str, name: str) -> str:
        suffix = "" if is_spark_dataframe(data) else ".parquet"
        return stage(data, f"{self.config.launcher.staging_location}/{job_id}", name + suffix)


def _entity_names(tables: Iterable[FeatureTable]) -> list[str]:
    names: list[str] = []
    for table in tables:
        names += [name for name in table.entities if name not in names]
    return names


def _is_local_parquet(source: BatchSource) -> bool:
    """Whether pyarrow can check the source here, before any Spark work."""
    return (
        isinstance(source, FileSource)
        and source.file_format == "parquet"
        and "://" not in source.path
        and not any(c in source.path for c in "*?[")
        and Path(source.path).exists()
    )


def _instant(value: datetime | str | None, name: str) -> datetime | None:
    return None if value is None else parse_instant(value, name=name)


def _window(start: datetime | str | None, end: datetime | str | None) -> Window:
    """``[start, end)`` from the caller's values (ArgumentError naming ``start`` if empty)."""
    begin, until = _instant(start, "start"), _instant(end, "end")
    if begin is not None and until is not None and begin >= until:
        raise ArgumentError(
            "start",
            begin.isoformat(),
            f"must be before end {until.isoformat()} (windows are [start, end))",
        )
    return Window(begin, until)
