"""What one worker process holds: the project's definitions (re-read every TTL) and its store.

- :class:`Definitions` reads the project's tables and entities from the registry at most once per
  ``registry.cache_ttl_seconds`` and keeps one :class:`OnlineReadPlan` per list of feature
  references until then: a table applied while the server runs is served once the TTL has passed,
  without a restart, and a request pays no registry read or reference parsing otherwise.
- :class:`StoreHolder` opens the online store once (one Cassandra session with its prepared
  statements per worker) and, while it cannot, retries at most once a second, so a server
  started before its store comes up starts serving when it does. Once open, the Cassandra driver
  reconnects by itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from feast_spark.config import OnlineStoreConfig
from feast_spark.definitions import Entity, FeatureTable
from feast_spark.errors import OnlineStoreError
from feast_spark.online.base import OnlineStore
from feast_spark.online.service import OnlineReadPlan
from feast_spark.online.stores import open_online_store
from feast_spark.registry import Registry

_log = logging.getLogger(__name__)

#: Plans kept per snapshot of the definitions at most (a client sending ever new lists of
#: references cannot grow the cache without bound).
MAX_PLANS: Final = 1024
#: Least time between two attempts to open an unreachable store.
RECONNECT_INTERVAL_S: Final = 1.0


@dataclass
class _Snapshot:
    read_at: float
    tables: list[FeatureTable]
    entities: list[Entity]
    plans: dict[tuple[str, ...], OnlineReadPlan] = field(default_factory=dict)


class Definitions:
    """The project's definitions as of at most ``ttl_s`` ago, and read plans built on them.

    Args:
        registry: The registry.
        project: The project served.
        ttl_s: ``registry.cache_ttl_seconds`` (0: read the registry for every request).
        clock: Monotonic seconds (tests pass a fake).
    """

    def __init__(
        self,
        registry: Registry,
        project: str,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.project = project
        self.ttl_s = ttl_s
        self._clock = clock
        self._snapshot: _Snapshot | None = None
        self._lock = threading.Lock()

    def cached_plan(self, refs: tuple[str, ...]) -> OnlineReadPlan | None:
        """The plan of ``refs`` if the definitions are fresh and it was built; never blocks."""
        snapshot = self._snapshot
        if snapshot is None or self._clock() - snapshot.read_at >= self.ttl_s:
            return None
        return snapshot.plans.get(refs)

    def plan(self, refs: tuple[str, ...]) -> OnlineReadPlan:
        """The plan of ``refs``, reading the registry first when the definitions are stale.

        Blocks on the registry read: call it from a worker thread, not the event loop. When the
        registry cannot be read, the last definitions read keep being served (logged).

        Raises:
            NotFoundError: A referenced table, feature or entity is unknown (or the project).
            DefinitionError: A malformed or repeated reference.
            OSError: The registry cannot be read and there are no definitions yet.
        """
        snapshot = self._fresh()
        plan = snapshot.plans.get(refs)
        if plan is None:
            plan = OnlineReadPlan.build(self.project, snapshot.tables, snapshot.entities, refs)
            if len(snapshot.plans) >= MAX_PLANS:
                snapshot.plans.clear()
            snapshot.plans[refs] = plan
        return plan

    def _fresh(self) -> _Snapshot:
        with self._lock:
            snapshot = self._snapshot
            now = self._clock()
            if snapshot is not None and now - snapshot.read_at < self.ttl_s:
                return snapshot
            try:
                tables = self.registry.list_feature_tables(self.project)
                entities = self.registry.list_entities(self.project)
            except OSError as error:
                if snapshot is None:
                    raise
                _log.warning(
                    "reading registry %s failed, serving the definitions read %.0f s ago: %s",
                    self.registry.uri,
                    now - snapshot.read_at,
                    error,
                )
                snapshot.read_at = now  # try again after another TTL
                return snapshot
            self._snapshot = _Snapshot(now, tables, entities)
            return self._snapshot


class StoreHolder:
    """The worker's online store: opened on first need, retried while unreachable.

    Args:
        config: The ``online_store`` settings.
        opener: Opens a store (tests pass a fake).
    """

    def __init__(
        self,
        config: OnlineStoreConfig,
        opener: Callable[[OnlineStoreConfig], OnlineStore] = open_online_store,
    ) -> None:
        self.config = config
        self.kind = config.type
        self._opener = opener
        self._store: OnlineStore | None = None
        self._last_error: OnlineStoreError | None = None
        self._last_attempt = float("-inf")
        self._lock = threading.Lock()

    @property
    def current(self) -> OnlineStore | None:
        """The open store, or None (never blocks)."""
        return self._store

    def connect(self) -> OnlineStore:
        """The store, opening it if needed (blocks: call from a worker thread).

        Raises:
            OnlineStoreError: It cannot be opened (the last error again when the last attempt
                was less than :data:`RECONNECT_INTERVAL_S` ago).
        """
        with self._lock:
            if self._store is not None:
                return self._store
            now = time.monotonic()
            if self._last_error is not None and now - self._last_attempt < RECONNECT_INTERVAL_S:
                raise self._last_error
            self._last_attempt = now
            try:
                self._store = self._opener(self.config)
            except OnlineStoreError as error:
                self._last_error = error
                raise
            self._last_error = None
            _log.info("online store open: %s at %s", self._store.kind, self._store.target)
            return self._store

    def close(self) -> None:
        """Close the store if it was opened."""
        with self._lock:
            store, self._store = self._store, None
        if store is not None:
            store.close()
