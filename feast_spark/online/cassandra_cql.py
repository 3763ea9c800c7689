"""The Cassandra store's CQL text and error texts, and the driver's error classes.

Shared by the store (:mod:`feast_spark.online.cassandra`), its connection
(:mod:`feast_spark.online.cassandra_connection`), its prepared statements
(:mod:`feast_spark.online.cassandra_statements`) and its writes
(:mod:`feast_spark.online.cassandra_writes`). Importing it does not import the driver.
"""

from __future__ import annotations

import functools
from typing import Any, Final

from feast_spark.types import ValueType

STORE: Final = "cassandra"

#: CQL templates; identifiers are checked names (``[a-z_][a-z0-9_]*``), quoted anyway.
CQL: Final = {
    "create_keyspace": "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {replication}",
    "create_table": (
        "CREATE TABLE IF NOT EXISTS {keyspace}.{table} ({columns}, PRIMARY KEY (({keys}))) "
        "WITH comment = {comment}"
    ),
    "add_column": "ALTER TABLE {keyspace}.{table} ADD {column} {type}",
    "insert": "INSERT INTO {keyspace}.{table} ({columns}) VALUES ({markers}) USING TIMESTAMP ?",
    "insert_ttl": (
        "INSERT INTO {keyspace}.{table} ({columns}) VALUES ({markers}) USING TIMESTAMP ? AND TTL ?"
    ),
    "select": "SELECT {columns} FROM {keyspace}.{table} WHERE {where}",
}

#: Error texts.
ERRORS: Final = {
    "version_read_failed": (
        "reading the stored rows of {failed} of {total} keys of table {keyspace}.{table} (to "
        "compare them with the rows to write) failed{after}; first error: {error}"
    ),
    "unreachable": (
        "cannot connect: {errors}; check that Cassandra runs there and that "
        "online_store.hosts / port (and TLS, credentials) are right"
    ),
    "ddl_failed": "{action} failed: {error}",
    "key_mismatch": (
        "table {keyspace}.{table} is keyed by ({actual}) but feature table '{feature_table}' by "
        "({expected}); drop the online table (DROP TABLE {keyspace}.{table}) and materialize again"
    ),
    "type_mismatch": (
        "column {keyspace}.{table}.{column} has type {actual} but feature table "
        "'{feature_table}' declares {expected}; drop the online table "
        "(DROP TABLE {keyspace}.{table}) and materialize again"
    ),
    "write_failed": (
        "{failed} of {total} rows for table {keyspace}.{table} failed{after}; first error: "
        "{error_type}: {error}"
    ),
    "tls_file": "cannot load {what} from {path}: {error}",
    "poisoned_key": (
        "key {key} of table {keyspace}.{table} holds a value written at {written}, beyond now "
        "plus future_event_time_allowance: a Cassandra delete must be timestamped at least that "
        "late, and its tombstone would hide every correct value of the key until then; nothing "
        "was deleted. Remove the table's rows instead: feast-spark online purge {feature_table}, "
        "then materialize it again"
    ),
}


def cql_column_type(value_type: ValueType) -> str:
    """The CQL type of a feature or key column: lists are *frozen* (``frozen<list<int>>``).

    A frozen collection is one cell, so it follows last-write-wins by write timestamp like a
    scalar. A non-frozen list is one cell per element, keyed by a time UUID of the write: writing
    the same list again with the same timestamp (a rerun) would append its elements a second time.
    """
    return f"frozen<{value_type.cql_type}>" if value_type.is_list else value_type.cql_type


def string_literal(text: str) -> str:
    """``text`` as a CQL string literal (``'text'``, inner quotes doubled)."""
    return "'" + text.replace("'", "''") + "'"


def replication_literal(replication: dict[str, Any]) -> str:
    """A replication mapping as a CQL map literal (all values as strings)."""
    items = ", ".join(
        f"{string_literal(str(k))}: {string_literal(str(v))}" for k, v in replication.items()
    )
    return "{" + items + "}"


@functools.cache
def driver_errors() -> tuple[type[BaseException], ...]:
    """Exceptions the driver raises for a failed request or connection."""
    from cassandra import DriverException
    from cassandra.cluster import NoHostAvailable
    from cassandra.connection import ConnectionException
    from cassandra.protocol import ErrorMessage

    return (DriverException, NoHostAvailable, ConnectionException, ErrorMessage, OSError)


def retryable_errors() -> tuple[type[BaseException], ...]:
    """Write failures worth retrying: timeouts, unavailability, overload, lost connections."""
    from cassandra import CoordinationFailure, OperationTimedOut, Timeout, Unavailable
    from cassandra.cluster import NoHostAvailable
    from cassandra.connection import ConnectionException
    from cassandra.protocol import IsBootstrappingErrorMessage, OverloadedErrorMessage

    return (
        Timeout, Unavailable, CoordinationFailure, OperationTimedOut, NoHostAvailable,
        ConnectionException, OverloadedErrorMessage, IsBootstrappingErrorMessage,
    )  # fmt: skip
