"""Opening the online store a configuration describes: the one place that knows every store.

Apart from :mod:`feast_spark.online.base` so that the protocol module never imports the stores
that implement it (no import loop); the Cassandra driver is imported only when a Cassandra store
is opened.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from feast_spark.config import (
    CassandraOnlineStoreConfig,
    OnlineStoreConfig,
    SqliteOnlineStoreConfig,
)
from feast_spark.online.base import OnlineStore
from feast_spark.online_store_config import parse_online_store_mapping


def open_online_store(config: OnlineStoreConfig | Mapping[str, Any]) -> OnlineStore:
    """Open the store ``config`` describes (a config object, or its mapping as in a job spec).

    The Cassandra driver is imported here, not when feast_spark is imported.

    Raises:
        ConfigError: ``config`` is a mapping with an unknown key or a bad value.
        OnlineStoreError: The store cannot be reached (names the hosts or file and the error).
    """
    if isinstance(config, Mapping):
        config = parse_online_store_mapping(config)
    if isinstance(config, SqliteOnlineStoreConfig):
        from feast_spark.online.sqlite import SqliteOnlineStore

        return SqliteOnlineStore(config)
    if isinstance(config, CassandraOnlineStoreConfig):
        from feast_spark.online.cassandra import CassandraOnlineStore

        return CassandraOnlineStore(config)
    raise TypeError(f"not an online store configuration: {config!r}")
