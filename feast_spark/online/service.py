"""Online serving: what the Client and the CLI call to read features.

Reading::

    refs = ["driver_stats:conv_rate", "driver_stats:trips"]
    plan = read_plan_from_registry(registry, "my_project", refs)
    with open_online_store(config.online_store) as store:
        response = plan.read(store, [{"driver_id": 1001}, {"driver_id": 1002}])
    response.to_dict()
    # {"driver_id": [1001, 1002],
    #  "driver_stats:conv_rate": [0.5, None],
    #  "driver_stats:conv_rate__status": ["PRESENT", "NOT_FOUND"],
    #  "driver_stats:trips": [7, None],
    #  "driver_stats:trips__status": ["PRESENT", "NOT_FOUND"]}

Incremental materialization windows are :mod:`feast_spark.incremental`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Protocol

from feast_spark.definitions import Entity, FeatureTable
from feast_spark.errors import ENTITY_ROWS, DefinitionError, NotFoundError
from feast_spark.feature_refs import parse_feature_refs, split_refs, table_names
from feast_spark.online.base import (
    FeatureStatus,
    OnlineStore,
    OnlineTableSchema,
    ReadRequest,
    TableRead,
    needs_conversion,
    now_micros,
    stored_key,
    user_value,
)
from feast_spark.types import ValueType

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

_MICROSECOND = timedelta(microseconds=1)
PRESENT = FeatureStatus.PRESENT
NULL_VALUE = FeatureStatus.NULL_VALUE
NOT_FOUND = FeatureStatus.NOT_FOUND
OUTSIDE_MAX_AGE = FeatureStatus.OUTSIDE_MAX_AGE

#: Suffix of a feature's status column in a response.
STATUS_SUFFIX: Final = "__status"

EntityRows = Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]] | Any


class DefinitionSource(Protocol):
    """What reads need from a registry (``feast_spark.registry.Registry`` fits)."""

    def get_feature_table(self, project: str, name: str) -> FeatureTable:
        """One feature table."""
        ...

    def list_entities(self, project: str) -> list[Entity]:
        """The project's entities."""
        ...


def _parse_refs(
    refs: Iterable[str], tables: Mapping[str, FeatureTable] | None
) -> list[tuple[str, str]]:
    return [(ref.table, ref.feature) for ref in parse_feature_refs(refs, tables)]


@dataclass(frozen=True)
class OnlineResponse:
    """Values and statuses of an online read, one row per entity row.

    Attributes:
        entity_columns: ``(name, type, values)`` of each entity used, in order of first use.
        feature_columns: ``(ref, type, values)`` of each feature reference, in request order;
            values withheld (OUTSIDE_MAX_AGE) or missing are None.
        statuses: One tuple of statuses per feature reference, parallel to ``feature_columns``.
        event_timestamps: Per feature reference, each row's stored event time in microseconds
            since the epoch (None where NOT_FOUND); empty when not known.
    """

    entity_columns: tuple[tuple[str, ValueType, tuple[Any, ...]], ...]
    feature_columns: tuple[tuple[str, ValueType, tuple[Any, ...]], ...]
    statuses: tuple[tuple[FeatureStatus, ...], ...]
    event_timestamps: tuple[tuple[int | None, ...], ...] = ()

    @property
    def num_rows(self) -> int:
        """Number of entity rows."""
        columns = self.entity_columns or self.feature_columns
        return len(columns[0][2]) if columns else 0

    def status(self, ref: str) -> tuple[FeatureStatus, ...]:
        """Statuses of feature ``ref``.

        Raises:
            NotFoundError: ``ref`` was not requested.
        """
        for (name, _, _), statuses in zip(self.feature_columns, self.statuses, strict=True):
            if name == ref:
                return statuses
        raise NotFoundError("feature", ref, hint="it was not part of the request")

    def to_dict(self) -> dict[str, list[Any]]:
        """Columns as lists: entities, then each ``ref`` and ``ref__status`` (status names)."""
        result: dict[str, list[Any]] = {name: list(v) for name, _, v in self.entity_columns}
        for (ref, _, values), statuses in zip(self.feature_columns, self.statuses, strict=True):
            result[ref] = list(values)
            result[ref + STATUS_SUFFIX] = [s.value for s in statuses]
        return result

    def to_arrow(self) -> pa.Table:
        """An Arrow table with typed columns (statuses as strings)."""
        import pyarrow as pa

        arrays: dict[str, pa.Array] = {}
        for name, value_type, values in self.entity_columns:
            arrays[name] = pa.array(values, type=value_type.arrow_type())
        for (ref, value_type, values), statuses in zip(
            self.feature_columns, self.statuses, strict=True
        ):
            arrays[ref] = pa.array(values, type=value_type.arrow_type())
            arrays[ref + STATUS_SUFFIX] = pa.array([s.value for s in statuses], type=pa.string())
        return pa.table(arrays)

    def to_pandas(self) -> pd.DataFrame:
        """A pandas DataFrame (from :meth:`to_arrow`; integer columns with nulls become floats)."""
        return self.to_arrow().to_pandas()


@dataclass(frozen=True)
class OnlineReadPlan:
    """Feature references resolved against their definitions, ready to read many times.

    Build one per set of references (and definitions) and reuse it for every request: parsing
    references and building table schemas is then paid once, not per request.

    Attributes:
        project: The project.
        refs: ``(table, feature)`` per reference, ``table:*`` expanded, in request order.
        feature_types: The value type of each reference.
        schemas: The online tables read, in order of first reference.
        features: Per table, the features read from it.
        positions: Per table, the position in ``refs`` of each of its features.
        entity_types: Entities of the tables read, in order of first use.
    """

    project: str
    refs: tuple[tuple[str, str], ...]
    feature_types: tuple[ValueType, ...]
    schemas: tuple[OnlineTableSchema, ...]
    features: tuple[tuple[str, ...], ...]
    positions: tuple[tuple[int, ...], ...]
    entity_types: tuple[tuple[str, ValueType], ...]

    @classmethod
    def build(
        cls,
        project: str,
        feature_tables: Iterable[FeatureTable],
        entities: Iterable[Entity],
        feature_refs: Iterable[str],
    ) -> OnlineReadPlan:
        """Resolve ``feature_refs`` (``table:feature`` or ``table:*``).

        Raises:
            NotFoundError: A referenced table, feature or entity is unknown.
            DefinitionError: A malformed or repeated reference.
        """
        tables = {table.name: table for table in feature_tables}
        refs = _parse_refs(feature_refs, tables)
        entity_list = list(entities)
        schemas: dict[str, OnlineTableSchema] = {}
        features: dict[str, list[str]] = {}
        positions: dict[str, list[int]] = {}
        feature_types: list[ValueType] = []
        for position, (table_name, feature) in enumerate(refs):
            schema = schemas.get(table_name)
            if schema is None:
                if table_name not in tables:
                    raise NotFoundError(
                        "feature table", table_name, project,
                        f"referenced by '{table_name}:{feature}'; known: "
                        + (", ".join(sorted(tables)) or "none"),
                    )  # fmt: skip
                schema = schemas[table_name] = OnlineTableSchema.of(
                    project, tables[table_name], entity_list
                )
                features[table_name] = []
                positions[table_name] = []
            feature_types.append(schema.feature_type(feature))
            features[table_name].append(feature)
            positions[table_name].append(position)
        entity_types: dict[str, ValueType] = {}
        for schema in schemas.values():
            entity_types.update(schema.entities)
        return cls(
            project=project,
            refs=tuple(refs),
            feature_types=tuple(feature_types),
            schemas=tuple(schemas.values()),
            features=tuple(tuple(f) for f in features.values()),
            positions=tuple(tuple(p) for p in positions.values()),
            entity_types=tuple(entity_types.items()),
        )

    def read(
        self, store: OnlineStore, entity_rows: EntityRows, *, now: datetime | None = None
    ) -> OnlineResponse:
        """Read the planned features for ``entity_rows`` (see :func:`get_online_features`).

        The store reads every table and key of the request concurrently (Cassandra: one
        asynchronous single-partition select each, all in flight at once). A server that must
        not block while they are in flight splits this call in three: :meth:`prepare`, the
        store's read of ``prepared.requests``, then ``prepared.respond``.

        Raises:
            DefinitionError: An entity row lacks a needed entity, or has a value of another type.
            OnlineStoreError: The store failed to answer.
        """
        prepared = self.prepare(entity_rows)
        return prepared.respond(store.read(prepared.requests, now=now), now=now)

    def prepare(self, entity_rows: EntityRows) -> PreparedRead:
        """Check and convert ``entity_rows`` into one :class:`ReadRequest` per table.

        Each table reads each distinct key once, however many rows repeat it.

        Raises:
            DefinitionError: An entity row lacks a needed entity, or has a value of another type.
        """
        stored = _stored_keys(_entity_rows(entity_rows), self.entity_types, self.schemas)
        requests: list[ReadRequest] = []
        key_index: list[list[int]] = []  # per table: each row's position among its distinct keys
        for schema, features in zip(self.schemas, self.features, strict=True):
            names = schema.entity_names
            distinct: dict[tuple[Any, ...], int] = {}
            key_index.append(
                [distinct.setdefault(tuple([k[e] for e in names]), len(distinct)) for k in stored]
            )
            requests.append(ReadRequest(schema, features, tuple(distinct)))
        return PreparedRead(self, tuple(requests), stored, key_index)


@dataclass(frozen=True)
class PreparedRead:
    """One request's entity rows, checked and grouped into per-table reads.

    Attributes:
        plan: The plan it was prepared from.
        requests: What to read, one per table of the plan (pass to ``OnlineStore.read``).
        stored: Each entity row's keys in stored form.
        key_index: Per table, each row's position among the table's distinct keys.
    """

    plan: OnlineReadPlan
    requests: tuple[ReadRequest, ...]
    stored: list[dict[str, Any]]
    key_index: list[list[int]]

    @property
    def num_rows(self) -> int:
        """Entity rows in the request."""
        return len(self.stored)

    def respond(
        self, answers: Sequence[TableRead], *, now: datetime | None = None
    ) -> OnlineResponse:
        """Values and statuses of every row from the store's ``answers`` to :attr:`requests`."""
        plan = self.plan
        stored = self.stored
        now_us = now_micros(now)
        feature_types = plan.feature_types
        columns: list[tuple[Any, ...]] = [()] * len(plan.refs)
        statuses: list[tuple[FeatureStatus, ...]] = [()] * len(plan.refs)
        event_times: list[tuple[int | None, ...]] = [()] * len(plan.refs)
        for request, answer, rows, positions in zip(
            self.requests, answers, self.key_index, plan.positions, strict=True
        ):
            max_age = request.schema.max_age
            oldest = None if max_age is None else now_us - max_age // _MICROSECOND
            # per distinct key: None when absent, else (row, whether it is older than max_age)
            found = [
                None
                if row is None
                else (row, oldest is not None and row.event_timestamp_us < oldest)
                for row in answer.rows
            ]
            stamps = [None if hit is None else hit[0].event_timestamp_us for hit in found]
            table_times = tuple([stamps[index] for index in rows])
            hits = [found[index] for index in rows]
            # the usual case: every row stored and recent, so only nulls need a look
            fresh = all(hit is not None and not hit[1] for hit in hits)
            for slot, feature in enumerate(request.features):
                position = positions[slot]
                value_type = feature_types[position]
                convert = needs_conversion(value_type)
                missing = feature in answer.missing_features
                values: list[Any] = []
                column_statuses: list[FeatureStatus] = []
                if fresh and not missing:
                    values = [hit[0].values[slot] for hit in hits]  # type: ignore[index]
                    column_statuses = [NULL_VALUE if v is None else PRESENT for v in values]
                    if convert:
                        values = [user_value(v, value_type) for v in values]
                else:
                    for hit in hits:
                        if hit is None or missing:
                            values.append(None)
                            column_statuses.append(NOT_FOUND)
                            continue
                        row, too_old = hit
                        value = row.values[slot]
                        if too_old:
                            values.append(None)
                            column_statuses.append(OUTSIDE_MAX_AGE)
                        elif value is None:
                            values.append(None)
                            column_statuses.append(NULL_VALUE)
                        else:
                            values.append(user_value(value, value_type) if convert else value)
                            column_statuses.append(PRESENT)
                columns[position] = tuple(values)
                statuses[position] = tuple(column_statuses)
                event_times[position] = (
                    tuple(
                        None if s is NOT_FOUND else t
                        for s, t in zip(column_statuses, table_times, strict=True)
                    )
                    if missing
                    else table_times
                )

        entity_columns = tuple(
            (name, value_type, tuple([user_value(keys[name], value_type) for keys in stored]))
            for name, value_type in plan.entity_types
        )
        feature_columns = tuple(
            (f"{table}:{feature}", value_type, values)
            for (table, feature), value_type, values in zip(
                plan.refs, feature_types, columns, strict=True
            )
        )
        return OnlineResponse(entity_columns, feature_columns, tuple(statuses), tuple(event_times))


def get_online_features(
    store: OnlineStore,
    project: str,
    feature_tables: Iterable[FeatureTable],
    entities: Iterable[Entity],
    feature_refs: Iterable[str],
    entity_rows: EntityRows,
    *,
    now: datetime | None = None,
) -> OnlineResponse:
    """Read the latest values of ``feature_refs`` for ``entity_rows``.

    For many requests with the same references, build an :class:`OnlineReadPlan` once and call
    its ``read``; this function does both each time.

    Args:
        store: An open online store.
        project: The project.
        feature_tables: Definitions of (at least) the referenced tables.
        entities: Definitions of (at least) the entities of those tables.
        feature_refs: ``table:feature`` or ``table:*`` references.
        entity_rows: One mapping per row (``[{"driver_id": 1}]``), a mapping of columns
            (``{"driver_id": [1, 2]}``) or a pandas DataFrame; each row needs a value for every
            entity of every referenced table; other keys are ignored.
        now: The instant ``max_age`` is measured from (default: the clock); must be aware.

    Returns:
        Values and statuses, rows in the order of ``entity_rows``.

    Raises:
        NotFoundError: A referenced table, feature or entity is unknown.
        DefinitionError: A malformed or repeated reference, or an entity row without a value (or
            with a value of the wrong type) for an entity it needs.
        OnlineStoreError: The store failed to answer.
    """
    plan = OnlineReadPlan.build(project, feature_tables, entities, feature_refs)
    return plan.read(store, entity_rows, now=now)


def read_plan_from_registry(
    registry: DefinitionSource, project: str, feature_refs: Iterable[str] | str
) -> OnlineReadPlan:
    """An :class:`OnlineReadPlan` for ``feature_refs`` with definitions read from ``registry``.

    Raises:
        NotFoundError: A referenced table or feature is not registered in ``project``.
        DefinitionError: A malformed or repeated reference.
    """
    refs = split_refs(feature_refs)
    parse_feature_refs(refs)  # syntax first: 'conv_rate' is a malformed reference, not a table
    tables = [registry.get_feature_table(project, name) for name in table_names(refs)]
    return OnlineReadPlan.build(project, tables, registry.list_entities(project), refs)


def parse_entity_value(text: str, entity: Entity) -> Any:
    """An entity value typed on a command line, as the entity's type wants it.

    ``1001`` for INT32/INT64, ``true``/``false`` for BOOL, an ISO-8601 instant for UNIX_TIMESTAMP
    (UTC when it has no offset), hex for BYTES, the text itself for STRING.

    Raises:
        DefinitionError: The text does not parse as the entity's type.
    """
    element = entity.value_type.element
    try:
        if element in (ValueType.INT32, ValueType.INT64):
            return int(text)
        if element is ValueType.BOOL:
            lowered = text.strip().lower()
            if lowered not in ("true", "false"):
                raise ValueError("use true or false")
            return lowered == "true"
        if element is ValueType.UNIX_TIMESTAMP:
            moment = datetime.fromisoformat(text)
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        if element is ValueType.BYTES:
            return bytes.fromhex(text)
    except ValueError as error:
        raise DefinitionError(
            "entity", entity.name,
            f"value {text!r} is not a {entity.value_type.value}: {error}",
        ) from None  # fmt: skip
    return text


def _entity_rows(entity_rows: EntityRows) -> list[Mapping[str, Any]]:
    """Normalize entity rows to a list of mappings."""
    if hasattr(entity_rows, "to_dict") and hasattr(entity_rows, "columns"):  # pandas DataFrame
        return list(entity_rows.to_dict(orient="records"))
    if isinstance(entity_rows, Mapping):
        columns = {name: list(values) for name, values in entity_rows.items()}
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            raise DefinitionError(
                ENTITY_ROWS, ", ".join(columns),
                f"columns have different lengths {sorted(lengths)}; give one value per row",
            )  # fmt: skip
        count = lengths.pop() if lengths else 0
        return [{name: values[i] for name, values in columns.items()} for i in range(count)]
    if isinstance(entity_rows, str | bytes) or not isinstance(entity_rows, Sequence):
        raise TypeError(
            "entity_rows must be a list of mappings, a mapping of columns or a pandas "
            f"DataFrame, got {type(entity_rows).__name__}"
        )
    for i, row in enumerate(entity_rows):
        if not isinstance(row, Mapping):
            raise TypeError(f"entity row {i} must be a mapping, got {type(row).__name__}")
    return list(entity_rows)


def _stored_keys(
    rows: Sequence[Mapping[str, Any]],
    entity_types: Sequence[tuple[str, ValueType]],
    schemas: Sequence[OnlineTableSchema],
) -> list[dict[str, Any]]:
    """Each row's entity values in stored form; raises naming the row, entity and table."""
    stored = []
    for i, row in enumerate(rows):
        keys: dict[str, Any] = {}
        for name, value_type in entity_types:
            if name not in row:
                needing = [s.table for s in schemas if name in s.entity_names]
                raise DefinitionError(
                    "entity",
                    name,
                    f"entity row {i} has no value for '{name}', which feature table(s) "
                    f"{', '.join(needing)} are keyed by (row keys: "
                    f"{', '.join(map(str, row)) or 'none'}); add it to every row",
                )
            keys[name] = stored_key(row[name], value_type, entity=name, row=i)
        stored.append(keys)
    return stored
