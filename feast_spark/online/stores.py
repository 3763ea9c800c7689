"""Opening the online store a configuration describes: the one place that knows every store.

Apart from :mod:`feast_spark.online.base` so that the protocol module never imports the stores
that implement it (no import loop); the Cassandra driver is imported only when a Cassandra store
is opened.
"""

from __future__ import annotations

import atexit
import contextlib
from collections.abc import Callable, Mapping
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


class SharedStores:
    """Cassandra stores kept open across the tasks one Python worker runs, by settings.

    A write task used to open a store (a driver ``Cluster``: control connection, schema
    metadata, a pool per host, prepared statements) and shut it at its end, so a stream
    reconnected every micro-batch from every task. Spark reuses a Python worker for later tasks
    (``spark.python.worker.reuse``, the default), so a store opened here serves them all; it is
    shut when a write through it fails (the next task opens a fresh one) and when the worker
    exits. SQLite stores are not kept: opening a file costs nothing, and a connection must not
    outlive its task's thread.

    Args:
        opener: Opens a store from a configuration (a seam for tests).
    """

    def __init__(
        self, opener: Callable[[OnlineStoreConfig], OnlineStore] = open_online_store
    ) -> None:
        self._opener = opener
        # By the configuration's repr: its replication mapping makes it unhashable.
        self._open: dict[str, OnlineStore] = {}
        atexit.register(self.close_all)

    def get(self, settings: OnlineStoreConfig | Mapping[str, Any]) -> tuple[OnlineStore, bool]:
        """The store for ``settings``, and whether it is shared (then the caller must not close it).

        Raises:
            ConfigError: ``settings`` is a mapping with an unknown key or a bad value.
            OnlineStoreError: The store cannot be reached.
        """
        config = parse_online_store_mapping(settings) if isinstance(settings, Mapping) else settings
        if not isinstance(config, CassandraOnlineStoreConfig):
            return self._opener(config), False
        key = repr(config)
        store = self._open.get(key)
        if store is None:
            store = self._open[key] = self._opener(config)
        return store, True

    def discard(self, store: OnlineStore) -> None:
        """Shut ``store`` and forget it (after a failed write: its state is unknown)."""
        for key, kept in list(self._open.items()):
            if kept is store:
                del self._open[key]
        store.close()

    def close_all(self) -> None:
        """Shut every kept store."""
        while self._open:
            _, store = self._open.popitem()
            with contextlib.suppress(Exception):  # the worker is exiting: nothing to tell
                store.close()


#: The stores of this process (a Python worker's write tasks).
shared_stores = SharedStores()
