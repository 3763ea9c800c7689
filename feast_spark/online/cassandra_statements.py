"""The Cassandra store's prepared statements: built from the CQL templates, prepared once.

Statements are prepared once per session (that is, per store object) and never shared between
sessions; the store, its writer and its repair all take them from one :class:`PreparedStatements`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from feast_spark.columns import CREATED_TIMESTAMP, EVENT_TIMESTAMP
from feast_spark.errors import OnlineStoreError
from feast_spark.online.base import OnlineTableSchema
from feast_spark.online.cassandra_cql import CQL, STORE, driver_errors
from feast_spark.online.naming import quote_identifier

if TYPE_CHECKING:
    from cassandra.cluster import Session
    from cassandra.query import PreparedStatement


class PreparedStatements:
    """The statements prepared in one session, keyed by what they do and on which columns."""

    def __init__(self, session: Session, keyspace: str, target: str) -> None:
        """Prepare statements in ``session`` for tables of ``keyspace``.

        Args:
            session: The driver session that prepares and runs them.
            keyspace: The keyspace, unquoted.
            target: The contact points as ``host:port,...``, for error messages.
        """
        self._session = session
        self._keyspace = quote_identifier(keyspace)
        self._target = target
        self._statements: dict[tuple[Any, ...], PreparedStatement] = {}

    def prepared(
        self,
        key: tuple[Any, ...],
        text: Callable[[], str],
        *,
        idempotent: bool,
        paged: bool = True,
    ) -> PreparedStatement:
        """The statement prepared under ``key`` in this session (``text`` builds its CQL).

        ``paged=False`` for a select by whole primary keys (one row per key at most): a paged
        ``IN`` select makes the coordinator read its partitions one after another through a
        pager, each a full read path of its own; unpaged, it reads them as one group.

        Raises:
            OnlineStoreError: Preparing failed (names the CQL and the driver's error).
        """
        statement = self._statements.get(key)
        if statement is None:
            cql = text()
            try:
                statement = self._session.prepare(cql)
            except driver_errors() as error:
                raise OnlineStoreError(
                    STORE, self._target, f"preparing '{cql}' failed: {error}"
                ) from error
            statement.is_idempotent = idempotent
            if not paged:
                statement.fetch_size = None
            self._statements[key] = statement
        return statement

    def insert(self, schema: OnlineTableSchema) -> PreparedStatement:
        """The insert of a whole row at a given write timestamp (and TTL under ``max_age``)."""
        with_ttl = schema.max_age is not None
        columns = (*schema.entity_names, *schema.feature_names, EVENT_TIMESTAMP, CREATED_TIMESTAMP)

        def text() -> str:
            return CQL["insert_ttl" if with_ttl else "insert"].format(
                keyspace=self._keyspace,
                table=quote_identifier(schema.name),
                columns=", ".join(quote_identifier(c) for c in columns),
                markers=", ".join("?" for _ in columns),
            )

        # Idempotent: the explicit write timestamp makes a repeated write a no-op.
        return self.prepared(("insert", schema.name, columns, with_ttl), text, idempotent=True)

    def select(
        self, schema: OnlineTableSchema, features: tuple[str, ...], *, many: bool = False
    ) -> PreparedStatement:
        """The select of the key columns, ``features`` and the event time.

        Of one key (one ``= ?`` per entity), or with ``many`` of a list of keys of a table keyed
        by one entity (``IN ?``, bound to a list): one query for many partitions.
        """
        if many and len(schema.entity_names) != 1:
            raise ValueError("a select of many keys needs a table keyed by one entity")

        def text() -> str:
            if many:
                where = f"{quote_identifier(schema.entity_names[0])} IN ?"
            else:
                where = " AND ".join(f"{quote_identifier(k)} = ?" for k in schema.entity_names)
            columns = (*schema.entity_names, *features, EVENT_TIMESTAMP)
            return CQL["select"].format(
                keyspace=self._keyspace,
                table=quote_identifier(schema.name),
                columns=", ".join(quote_identifier(c) for c in columns),
                where=where,
            )

        key = ("select", schema.name, features, schema.entity_names, many)
        return self.prepared(key, text, idempotent=True, paged=False)

    def select_version(self, schema: OnlineTableSchema, *, many: bool = False) -> PreparedStatement:
        """The select of a key's stored times, write timestamp and values (before a write).

        Of one key (one ``= ?`` per entity), or with ``many`` of a list of keys of a table keyed
        by one entity (``IN ?``): then each row starts with its key.
        """
        if many and len(schema.entity_names) != 1:
            raise ValueError("a select of many keys needs a table keyed by one entity")

        def text() -> str:
            event = quote_identifier(EVENT_TIMESTAMP)
            columns = [
                event,
                quote_identifier(CREATED_TIMESTAMP),
                f"WRITETIME({event})",
                *(quote_identifier(f) for f in schema.feature_names),
            ]
            if many:
                key = quote_identifier(schema.entity_names[0])
                columns.insert(0, key)
                where = f"{key} IN ?"
            else:
                where = " AND ".join(f"{quote_identifier(k)} = ?" for k in schema.entity_names)
            return CQL["select"].format(
                keyspace=self._keyspace,
                table=quote_identifier(schema.name),
                columns=", ".join(columns),
                where=where,
            )

        key = ("select_version", schema.name, schema.feature_names, schema.entity_names, many)
        return self.prepared(key, text, idempotent=True, paged=False)
