"""The registry: the single source of truth for definitions, one JSON document at any URI.

Layout (``format_version`` 1)::

    {"format_version": 1, "revision": 7, "updated_at": "...",
     "projects": {"<project>": {"created_at": "...",
                                "entities": {"<name>": {...}},
                                "feature_tables": {"<name>": {...}},
                                "table_state": {"<table>": {"materialized_until": "..."}}}}}

Writes use optimistic concurrency: read the document and its ``revision``, compute the change,
then commit only if the revision is still the one read; otherwise re-read and re-apply (the change
is a pure function of the current document), up to ``max_attempts`` times. On a local file system
the check and the replace happen under an advisory lock and the replace is atomic, so two
processes never lose an update. Object stores offer no compare-and-swap through ``pyarrow.fs``;
there the check narrows the window but cannot close it, so keep one writer at a time (e.g. apply
from CI) or keep the registry on a local or HDFS path.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from feast_spark import storage
from feast_spark.definitions import Entity, FeatureTable
from feast_spark.definitions.names import check_name
from feast_spark.errors import (
    CompatibilityError,
    DefinitionError,
    FeastSparkError,
    NotFoundError,
    RegistryConflictError,
    RegistryCorruptError,
)

FORMAT_VERSION = 1
Action = Literal["created", "updated", "unchanged"]
Document = dict[str, Any]


@dataclass(frozen=True)
class ApplyResult:
    """What ``apply`` did to one object.

    Attributes:
        kind: ``entity`` or ``feature table``.
        name: The object's name.
        action: ``created``, ``updated`` or ``unchanged``.
    """

    kind: str
    name: str
    action: Action


class Registry:
    """Definitions of every project, persisted at ``uri``.

    Args:
        uri: A local path or any URI ``pyarrow.fs`` understands (``s3://``, ``hdfs://``, ``gs://``).
        max_attempts: Commits tried before a :class:`RegistryConflictError`.
    """

    def __init__(self, uri: str, *, max_attempts: int = 20) -> None:
        self.uri = uri
        self.max_attempts = max_attempts
        self._store = _open_store(uri)

    # --- reads ---------------------------------------------------------------------------------

    def revision(self) -> int:
        """The registry's revision (0 before the first commit); every commit adds one."""
        return self._read()[0]

    def list_projects(self) -> list[str]:
        """Names of all projects, sorted."""
        return sorted(self._read()[1]["projects"])

    def list_entities(self, project: str) -> list[Entity]:
        """Entities of ``project``, sorted by name."""
        entities = self._project(self._read()[1], project)["entities"]
        return [Entity.from_dict(_definition(entities[n])) for n in sorted(entities)]

    def get_entity(self, project: str, name: str) -> Entity:
        """The entity ``name`` of ``project``.

        Raises:
            NotFoundError: No such project or entity.
        """
        entities = self._project(self._read()[1], project)["entities"]
        if name not in entities:
            raise NotFoundError("entity", name, project, _known(entities))
        return Entity.from_dict(_definition(entities[name]))

    def list_feature_tables(self, project: str) -> list[FeatureTable]:
        """Feature tables of ``project``, sorted by name."""
        tables = self._project(self._read()[1], project)["feature_tables"]
        return [FeatureTable.from_dict(_definition(tables[n])) for n in sorted(tables)]

    def get_feature_table(self, project: str, name: str) -> FeatureTable:
        """The feature table ``name`` of ``project``.

        Raises:
            NotFoundError: No such project or feature table.
        """
        tables = self._project(self._read()[1], project)["feature_tables"]
        if name not in tables:
            raise NotFoundError("feature table", name, project, _known(tables))
        return FeatureTable.from_dict(_definition(tables[name]))

    def describe(self, project: str, kind: str, name: str) -> dict[str, Any]:
        """The stored document of an object, with its ``created_at``/``updated_at`` stamps."""
        section = "entities" if kind == "entity" else "feature_tables"
        objects = self._project(self._read()[1], project)[section]
        if name not in objects:
            raise NotFoundError(kind, name, project, _known(objects))
        return dict(objects[name])

    def describe_all(self, project: str, kind: str) -> list[dict[str, Any]]:
        """:meth:`describe` of every entity (``kind="entity"``) or feature table, by name."""
        section = "entities" if kind == "entity" else "feature_tables"
        objects = self._project(self._read()[1], project)[section]
        return [dict(objects[name]) for name in sorted(objects)]

    def describe_projects(self) -> list[dict[str, Any]]:
        """Every project as ``{"name", "created_at", "entities", "feature_tables"}`` (counts)."""
        projects = self._read()[1]["projects"]
        return [
            {
                "name": name,
                "created_at": projects[name].get("created_at"),
                "entities": len(projects[name].get("entities", {})),
                "feature_tables": len(projects[name].get("feature_tables", {})),
            }
            for name in sorted(projects)
        ]

    def table_state(self, project: str, table: str) -> dict[str, Any]:
        """Bookkeeping of a table kept by jobs (e.g. the materialization high-water mark)."""
        state = self._project(self._read()[1], project).get("table_state", {})
        return dict(state.get(table, {}))

    # --- writes --------------------------------------------------------------------------------

    def create_project(self, project: str) -> bool:
        """Create an empty project; returns False when it already exists."""
        check_name("project", project)
        created: list[bool] = []

        def change(document: Document) -> None:
            created.clear()
            created.append(project not in document["projects"])
            _ensure_project(document, project)

        self._commit(change)
        return created[0]

    def apply(self, project: str, objects: Sequence[Entity | FeatureTable]) -> list[ApplyResult]:
        """Create or update entities and feature tables in one commit; idempotent.

        Entities are applied before tables, so a table may use an entity of the same call. The
        project is created when missing.

        Raises:
            CompatibilityError: A change Feast forbids (an entity's value type, a table's
                entities, an existing feature's type).
            DefinitionError: A table references an entity that is not registered.
        """
        check_name("project", project)
        for obj in objects:
            if not isinstance(obj, Entity | FeatureTable):
                raise TypeError(f"apply takes Entity and FeatureTable objects, got {obj!r}")
        ordered = sorted(objects, key=lambda o: isinstance(o, FeatureTable))
        results: list[ApplyResult] = []

        def change(document: Document) -> None:
            results.clear()
            state = _ensure_project(document, project)
            now = _now()
            for obj in ordered:
                results.append(_apply_one(state, obj, project, now))

        self._commit(change)
        return results

    def delete_feature_table(self, project: str, name: str) -> FeatureTable:
        """Remove a feature table's definition and return it (its data is left in place).

        Raises:
            NotFoundError: No such project or table.
        """
        deleted: list[FeatureTable] = []

        def change(document: Document) -> None:
            tables = self._project(document, project)["feature_tables"]
            if name not in tables:
                raise NotFoundError("feature table", name, project, _known(tables))
            deleted[:] = [FeatureTable.from_dict(_definition(tables.pop(name)))]
            document["projects"][project].get("table_state", {}).pop(name, None)

        self._commit(change)
        return deleted[0]

    def update_table_state(self, project: str, table: str, **values: Any) -> None:
        """Merge ``values`` into a table's bookkeeping (JSON-serialisable values)."""

        def change(document: Document) -> None:
            tables = self._project(document, project)["feature_tables"]
            if table not in tables:
                raise NotFoundError("feature table", table, project, _known(tables))
            state = document["projects"][project].setdefault("table_state", {})
            state.setdefault(table, {}).update(values)

        self._commit(change)

    def change_table_states(
        self,
        project: str,
        tables: Sequence[str],
        change: Callable[[str, dict[str, Any]], dict[str, Any]],
    ) -> None:
        """Replace tables' bookkeeping with ``change(table, state)`` in one commit.

        ``change`` is a pure function of the stored state: on a conflict it runs again on the
        newer document.

        Raises:
            NotFoundError: No such project or table.
        """

        def commit(document: Document) -> None:
            known = self._project(document, project)["feature_tables"]
            states = document["projects"][project].setdefault("table_state", {})
            for table in tables:
                if table not in known:
                    raise NotFoundError("feature table", table, project, _known(known))
                changed = change(table, dict(states.get(table, {})))
                if changed != states.get(table, {}):
                    states[table] = changed

        self._commit(commit)

    # --- plumbing ------------------------------------------------------------------------------

    def _read(self) -> tuple[int, Document]:
        revision, document = self._store.read()
        if document is None:
            return 0, {"format_version": FORMAT_VERSION, "revision": 0, "projects": {}}
        version = document.get("format_version")
        if version != FORMAT_VERSION:
            raise FeastSparkError(
                f"registry '{self.uri}': format_version {version!r} is not supported by this "
                f"feast-spark (which reads {FORMAT_VERSION}); upgrade feast-spark"
            )
        return revision, document

    def _project(self, document: Document, project: str) -> dict[str, Any]:
        projects = document["projects"]
        if project not in projects:
            raise NotFoundError(
                "project", project, hint=_known(projects) or "apply definitions to create it"
            )
        state: dict[str, Any] = projects[project]
        return state

    def _commit(self, change: Callable[[Document], None]) -> None:
        for attempt in range(1, self.max_attempts + 1):
            revision, document = self._read()
            before = json.dumps(document, sort_keys=True)
            change(document)
            if json.dumps(document, sort_keys=True) == before:
                return  # nothing changed: no write, so apply is idempotent to the byte
            document["revision"] = revision + 1
            document["updated_at"] = _now()
            if self._store.write_if_revision(revision, document):
                return
            # Someone committed in between: back off a little, then re-apply on their state.
            time.sleep(random.uniform(0.005, 0.05) * attempt)
        raise RegistryConflictError(self.uri, self.max_attempts)


def _apply_one(
    state: dict[str, Any], obj: Entity | FeatureTable, project: str, now: str
) -> ApplyResult:
    if isinstance(obj, Entity):
        kind, section = "entity", state["entities"]
    else:
        kind, section = "feature table", state["feature_tables"]
        for entity in obj.entities:
            if entity not in state["entities"]:
                raise DefinitionError(
                    kind,
                    obj.name,
                    f"entity '{entity}' is not registered in project '{project}'; "
                    "apply the Entity first (or in the same call)",
                )
    new = obj.to_dict()
    old_record = section.get(obj.name)
    if old_record is None:
        section[obj.name] = {**new, "created_at": now, "updated_at": now}
        return ApplyResult(kind, obj.name, "created")
    old = _definition(old_record)
    if old == new:
        return ApplyResult(kind, obj.name, "unchanged")
    _check_compatible(old, obj)
    section[obj.name] = {**new, "created_at": old_record["created_at"], "updated_at": now}
    return ApplyResult(kind, obj.name, "updated")


def _check_compatible(old: dict[str, Any], new: Entity | FeatureTable) -> None:
    if isinstance(new, Entity):
        if old["value_type"] != new.value_type.value:
            raise CompatibilityError(
                "entity", new.name, "value_type", old["value_type"], new.value_type.value
            )
        return
    if list(old["entities"]) != list(new.entities):
        raise CompatibilityError(
            "feature table", new.name, "entities", list(old["entities"]), list(new.entities)
        )
    old_types = {f["name"]: f["dtype"] for f in old["features"]}
    for feature in new.features:
        before = old_types.get(feature.name)
        if before is not None and before != feature.dtype.value:
            raise CompatibilityError(
                "feature table",
                new.name,
                f"type of feature '{feature.name}'",
                before,
                feature.dtype.value,
            )


def _ensure_project(document: Document, project: str) -> dict[str, Any]:
    state: dict[str, Any] = document["projects"].setdefault(
        project, {"created_at": _now(), "entities": {}, "feature_tables": {}, "table_state": {}}
    )
    return state


def _definition(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in ("created_at", "updated_at")}


def _known(objects: dict[str, Any]) -> str:
    return f"known: {', '.join(sorted(objects))}" if objects else ""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


# --- storage -------------------------------------------------------------------------------------


class _Store:
    """The registry file at an address, read and written through :mod:`feast_spark.storage`.

    On a local file system commits are serialised with ``flock`` on ``<file>.lock`` and made
    atomic by storage's replace; elsewhere the revision check narrows the race but cannot close it.
    """

    def __init__(self, uri: str) -> None:
        # Resolved once: a relative path means the working directory the registry was opened in.
        self.local = storage.local_path(uri)
        self.where = self.local if self.local is not None else uri

    def read(self) -> tuple[int, Document | None]:
        try:
            return _parse(storage.read_bytes(self.where, kind="registry"), self.where)
        except NotFoundError:
            return 0, None
        except IsADirectoryError:
            raise FeastSparkError(
                f"registry '{self.where}' is a folder; point 'registry' in feature_store.yaml at "
                f"a file, e.g. {self.where}/registry.json"
            ) from None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if self.local is None:  # no lock through pyarrow.fs: see the module's docstring
            yield
            return
        import fcntl

        Path(self.local).parent.mkdir(parents=True, exist_ok=True)
        with open(f"{self.local}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def write_if_revision(self, expected: int, document: Document) -> bool:
        with self._locked():
            if self.read()[0] != expected:
                return False
            if expected > 0:  # keep the revision being replaced: the way back from damage
                storage.copy_file(self.where, backup_uri(self.where))
            storage.write_bytes(self.where, json.dumps(document, indent=1, sort_keys=True).encode())
            return True


def _parse(payload: bytes, where: str) -> tuple[int, Document]:
    """The revision and document of a registry file that exists; anything else is an error.

    An empty or cut-short file is damage (a full disk, a copy interrupted), never "no registry":
    reading it as empty would let the next commit write revision 1 over every definition.
    """
    if not payload.strip():
        raise _corrupt(where, f"the file is empty: {len(payload)} bytes")
    try:
        document = json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise _corrupt(where, f"not valid JSON ({len(payload)} bytes): {error}") from None
    if not isinstance(document, dict):
        raise _corrupt(where, f"a JSON {type(document).__name__}, not a registry document")
    if document.get("format_version") != FORMAT_VERSION:
        return 0, document  # another release's layout: Registry._read says which to install
    revision = document.get("revision")
    if not isinstance(revision, int) or isinstance(revision, bool) or revision < 0:
        raise _corrupt(where, f"'revision' is {revision!r}, not a revision number")
    if not isinstance(document.get("projects"), dict):
        raise _corrupt(where, "'projects' is missing or not an object")
    return revision, document


def backup_uri(uri: str) -> str:
    """Where the previous revision of the registry at ``uri`` is kept: ``<uri>.bak``."""
    return f"{uri}.bak"


def _corrupt(where: str, reason: str) -> RegistryCorruptError:
    return RegistryCorruptError(where, reason, backup_uri(where))


def _open_store(uri: str) -> _Store:
    if storage.local_path(uri) is None:
        import pyarrow as pa

        try:
            storage.filesystem(uri)  # an unknown scheme is an error now, not at the first read
        except (pa.ArrowInvalid, ValueError) as error:
            raise FeastSparkError(
                f"registry '{uri}': {error}; use a local path or an s3://, gs://, hdfs:// or "
                "abfss:// URI"
            ) from None
    return _Store(uri)
