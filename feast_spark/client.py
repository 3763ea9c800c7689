"""The Python entry point: a thin facade over the registry, the launcher and the online store."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from feast_spark.config import CassandraOnlineStoreConfig, RepoConfig, load_config
from feast_spark.definitions import Entity, FeatureTable
from feast_spark.definitions.yaml_files import load_definitions
from feast_spark.online.naming import online_table_name
from feast_spark.registry import ApplyResult, Registry


@dataclass(frozen=True)
class DeletedTable:
    """A deleted feature table and the data it leaves behind.

    Attributes:
        table: The definition that was removed.
        left_behind: Locations of data that still exist (delete them yourself if unwanted).
    """

    table: FeatureTable
    left_behind: tuple[str, ...]


class Client:
    """Manage definitions and run jobs for one project.

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

    @property
    def project(self) -> str:
        """The project this client works in."""
        return self.config.project

    # --- definitions ---------------------------------------------------------------------------

    def apply(self, *objects: Entity | FeatureTable) -> list[ApplyResult]:
        """Create or update entities and feature tables (idempotent; one registry commit)."""
        return self.registry.apply(self.project, objects)

    def apply_files(self, paths: Iterable[str | Path]) -> list[ApplyResult]:
        """Apply every definition in YAML files or folders."""
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
