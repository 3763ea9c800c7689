"""Enumerating an online table's keys, for the audit's keys that are online but not offline.

- **SQLite**: one ``SELECT keys, event_timestamp`` over the table (the file is local; one part).
- **Cassandra**: the token ring split into ``parts`` contiguous ranges, each read with
  ``SELECT keys, event_timestamp ... WHERE token(keys) >= ? AND token(keys) <= ?`` and paged by
  the driver, so Spark tasks can scan the ranges in parallel, each with its own session. Ranges
  follow Murmur3 tokens, the partitioner of every Cassandra cluster this store creates tables in.

Only rows still retained at ``now`` are returned (:func:`~feast_spark.online.base.is_retained`),
as reads would see them. A table that does not exist has no keys. Keys come in stored form.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

from feast_spark.columns import EVENT_TIMESTAMP
from feast_spark.config import CassandraOnlineStoreConfig, SqliteOnlineStoreConfig
from feast_spark.online.base import (
    OnlineTableSchema,
    is_retained,
    read_error,
)
from feast_spark.online.naming import quote_identifier
from feast_spark.online_store_config import parse_online_store_mapping
from feast_spark.types import ValueType

#: Murmur3Partitioner's token range.
MIN_TOKEN: Final = -(2**63)
MAX_TOKEN: Final = 2**63 - 1
#: Rows per Cassandra page.
SCAN_PAGE_ROWS: Final = 5000


def token_ranges(parts: int) -> list[tuple[int, int]]:
    """``parts`` disjoint inclusive ``(first, last)`` token ranges covering the whole ring.

    Raises:
        ValueError: ``parts`` is below 1.
    """
    if parts < 1:
        raise ValueError(f"parts must be at least 1, got {parts}")
    span = (MAX_TOKEN - MIN_TOKEN + 1) // parts
    bounds = [MIN_TOKEN + i * span for i in range(parts)] + [MAX_TOKEN + 1]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(parts)]


def scan_parts(store: Mapping[str, Any], wanted: int) -> int:
    """How many parts to scan a store in: 1 for SQLite, ``wanted`` (at least 1) otherwise."""
    config = parse_online_store_mapping(store)
    return 1 if isinstance(config, SqliteOnlineStoreConfig) else max(1, wanted)


def scan_keys(
    store: Mapping[str, Any],
    schema: OnlineTableSchema,
    part: int,
    parts: int,
    *,
    now_us: int,
) -> Iterator[tuple[tuple[Any, ...], int]]:
    """Yield ``(key, event_timestamp_us)`` of the retained rows in part ``part`` of ``parts``.

    Args:
        store: The online store's settings (as in a job spec).
        schema: The online table.
        part: Which part, ``0 <= part < parts``.
        parts: How many parts the table is scanned in (SQLite: part 0 holds every row).
        now_us: Rows whose retention ended before this instant are left out.

    Raises:
        OnlineStoreError: The store cannot be reached or a read failed.
    """
    config = parse_online_store_mapping(store)
    if isinstance(config, SqliteOnlineStoreConfig):
        if part == 0:
            yield from _scan_sqlite(config, schema, now_us)
        return
    if isinstance(config, CassandraOnlineStoreConfig):
        first, last = token_ranges(parts)[part]
        yield from _scan_cassandra(config, schema, first, last, now_us)
        return
    raise TypeError(f"not an online store configuration: {config!r}")


def _scan_sqlite(
    config: SqliteOnlineStoreConfig, schema: OnlineTableSchema, now_us: int
) -> Iterator[tuple[tuple[Any, ...], int]]:
    from feast_spark.online.sqlite import STORE

    bools = [i for i, (_, t) in enumerate(schema.entities) if t is ValueType.BOOL]
    try:
        uri = Path(config.path).absolute().as_uri() + "?mode=ro"  # as_uri escapes ? and #
        connection = sqlite3.connect(uri, uri=True)
    except sqlite3.Error:
        return  # no database file: no table, no keys
    try:
        exists = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (schema.name,)
        ).fetchone()
        if exists is None:
            return
        columns = ", ".join(quote_identifier(c) for c in (*schema.entity_names, EVENT_TIMESTAMP))
        cursor = connection.execute(f"SELECT {columns} FROM {quote_identifier(schema.name)}")
        width = len(schema.entities)
        for row in cursor:
            event_us = row[width]
            if not is_retained(event_us, schema.max_age, now_us):
                continue
            key = list(row[:width])
            for i in bools:
                key[i] = bool(key[i])
            yield tuple(key), event_us
    except sqlite3.Error as error:
        raise read_error(STORE, config.path, schema.name, error) from error
    finally:
        connection.close()


def _scan_cassandra(
    config: CassandraOnlineStoreConfig,
    schema: OnlineTableSchema,
    first: int,
    last: int,
    now_us: int,
) -> Iterator[tuple[tuple[Any, ...], int]]:
    from cassandra.query import SimpleStatement

    from feast_spark.online.cassandra_connection import READ_PROFILE, connect
    from feast_spark.online.cassandra_cql import STORE, driver_errors

    target = ",".join(f"{host}:{config.port}" for host in config.hosts)
    cluster, session = connect(config, target)
    try:
        keyspace = cluster.metadata.keyspaces.get(config.keyspace)
        if keyspace is None or schema.name not in keyspace.tables:
            return
        keys = ", ".join(quote_identifier(k) for k in schema.entity_names)
        query = (
            f"SELECT {keys}, {quote_identifier(EVENT_TIMESTAMP)} "
            f"FROM {quote_identifier(config.keyspace)}.{quote_identifier(schema.name)} "
            f"WHERE token({keys}) >= %s AND token({keys}) <= %s"
        )
        statement = SimpleStatement(query, fetch_size=SCAN_PAGE_ROWS)
        width = len(schema.entities)
        try:
            rows = session.execute(statement, (first, last), execution_profile=READ_PROFILE)
            for row in rows:  # the driver fetches the next page as the loop reaches it
                event_us = row[width]
                if event_us is None or not is_retained(event_us, schema.max_age, now_us):
                    continue
                yield tuple(row[:width]), event_us
        except driver_errors() as error:
            raise read_error(STORE, target, schema.name, error) from error
    finally:
        cluster.shutdown()
