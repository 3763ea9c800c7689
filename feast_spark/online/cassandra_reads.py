"""Reads from Cassandra in flight: every select of a read sent at once, answers by callback.

A table keyed by one entity is read with one ``IN`` select per group of keys that share a
replica (at most :data:`KEYS_PER_SELECT` keys each), so 100 keys cost one query per replica, not 100
round trips through the driver; a table keyed by several entities is read one partition per
select. ``CassandraOnlineStore.start_read`` returns a :class:`PendingRead`: ``result()`` waits for
it (what ``read``, and so ``Client.get_online_features``, does); ``add_done_callback`` tells an
event loop when the last answer arrived, so a server waits without holding a thread.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

from feast_spark.errors import OnlineStoreError
from feast_spark.online.base import (
    OnlineTableSchema,
    ReadRequest,
    StoredRow,
    TableRead,
    read_error,
    retention_cutoff_us,
    value_picker,
)
from feast_spark.online.cassandra_cql import STORE

if TYPE_CHECKING:
    from cassandra.cluster import Session
    from cassandra.query import BoundStatement, PreparedStatement, Statement

#: Keys in one ``IN`` select at most. The selects are unpaged, so a coordinator reads a select's
#: partitions as one group: fewer, larger selects cost less on both sides than many small ones
#: (each is a message, a bind and a callback). The bound keeps one answer, and one coordinator's
#: share of a request, small.
KEYS_PER_SELECT: Final = 100

#: Key types whose Python values compare exactly as Cassandra compares the stored bytes (so a
#: returned row can be matched to its requested key); others are read one partition per select.
#: Floats are not: 0.0 and -0.0 are two partitions, NaN never equals itself.
EXACT_KEY_TYPES: Final = frozenset({"INT32", "INT64", "STRING", "BYTES", "BOOL"})

#: One select: the statement (bound already when ``parameters`` is None), its parameters, and
#: the online table, for messages.
Select = tuple["Statement", "tuple[Any, ...] | None", str]


def routed_statement(prepared: PreparedStatement, routing_key: bytes | None) -> BoundStatement:
    """An unbound statement of ``prepared`` that the driver sends to ``routing_key``'s replicas.

    The driver computes no routing key for ``IN ?`` (Cassandra reports no partition key index
    for it), so such a select would go to any node, which forwards it; this one goes to a
    replica of its keys.
    """
    return _routed_class()(prepared, routing_key=routing_key)


@functools.cache
def _routed_class() -> type[BoundStatement]:
    from cassandra.query import BoundStatement

    class RoutedBoundStatement(BoundStatement):  # type: ignore[misc]
        @property
        def routing_key(self) -> bytes | None:
            return self._routing_key  # type: ignore[no-any-return]

    return RoutedBoundStatement


def reads_by_key_list(schema: OnlineTableSchema) -> bool:
    """Whether ``schema``'s rows can be read many keys per select (``IN ?``) and matched back.

    True for a table keyed by one entity whose key values compare exactly as Cassandra compares
    the stored bytes (:data:`EXACT_KEY_TYPES`); other tables are read one partition per select.
    """
    return len(schema.entities) == 1 and schema.entities[0][1].value in EXACT_KEY_TYPES


def key_list_selects(
    session: Session,
    keyspace: str,
    single: PreparedStatement,
    many: PreparedStatement,
    keys: Sequence[tuple[Any, ...]],
) -> list[tuple[BoundStatement, int]]:
    """``many`` (``... IN ?``) bound to ``keys``: one select per replica and KEYS_PER_SELECT keys.

    Keys are grouped by their first replica (one group when the cluster has one node), and each
    select is routed to that replica (``single``, the same select of one key, gives the routing
    key).

    Args:
        session: The driver session (its cluster's token map groups the keys).
        keyspace: The tables' keyspace.
        single: The select of one key (``= ?``).
        many: The select of a list of keys (``IN ?``).
        keys: Distinct one-entity keys, as 1-tuples.

    Returns:
        ``(select, keys in it)`` pairs.
    """
    metadata = session.cluster.metadata
    groups: list[list[tuple[Any, ...]]]
    if len(keys) < 2 or len(metadata.all_hosts()) < 2:
        groups = [list(keys)] if keys else []
    else:
        by_replica: dict[Any, list[tuple[Any, ...]]] = {}
        for key in keys:
            replicas = metadata.get_replicas(keyspace, single.bind(key).routing_key)
            by_replica.setdefault(replicas[0] if replicas else None, []).append(key)
        groups = list(by_replica.values())
    selects: list[tuple[BoundStatement, int]] = []
    for group in groups:
        for start in range(0, len(group), KEYS_PER_SELECT):
            chunk = group[start : start + KEYS_PER_SELECT]
            routed = routed_statement(many, single.bind(chunk[0]).routing_key)
            selects.append((routed.bind(([key[0] for key in chunk],)), len(chunk)))
    return selects


class PendingRead:
    """A Cassandra read in flight (see :meth:`CassandraOnlineStore.start_read`).

    Args:
        fetch: The selects in flight.
        requests: The read's requests.
        plans: Per request, the features its table has columns for and how many selects of
            ``fetch`` (consecutive, in request order) read it; None for a table not created yet.
        now_us: The read's time, for ``max_age``.
    """

    def __init__(
        self,
        fetch: Fetch,
        requests: Sequence[ReadRequest],
        plans: Sequence[tuple[tuple[str, ...], int] | None],
        now_us: int,
    ) -> None:
        self._fetch = fetch
        self._requests = requests
        self._plans = plans
        self._now_us = now_us

    @property
    def selects(self) -> int:
        """How many selects the read sends."""
        return self._fetch.selects

    def done(self) -> bool:
        """Whether every answer (or the first error) has arrived."""
        return self._fetch.finished.is_set()

    def add_done_callback(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` once done: at once if done already, else from the driver's thread.

        Keep it short and thread-safe (e.g. ``loop.call_soon_threadsafe``); then call
        :meth:`result`, which will not block.
        """
        self._fetch.add_done_callback(callback)

    def result(self, timeout: float | None = None) -> list[TableRead]:
        """Wait for the answers; one :class:`TableRead` per request, in request order.

        Raises:
            OnlineStoreError: A read failed (naming the table), or ``timeout`` passed first.
        """
        fetched = self._fetch.wait(timeout)
        answers: list[TableRead] = []
        position = 0
        now_us = self._now_us
        for request, plan in zip(self._requests, self._plans, strict=True):
            if plan is None:
                answers.append(TableRead((None,) * len(request.keys), frozenset(request.features)))
                continue
            present, selects = plan
            width = len(request.schema.entities)
            # Rows come back in token order, not request order: match them by their key columns.
            answered = (raw for answer in fetched[position : position + selects] for raw in answer)
            if width == 1:
                stored = {raw[0]: raw for raw in answered}
                found = [stored.get(key[0]) for key in request.keys]
            else:
                stored = {raw[:width]: raw for raw in answered}
                found = [stored.get(key) for key in request.keys]
            position += selects
            pick = value_picker(present, request.features, offset=width)
            cutoff = retention_cutoff_us(request.schema.max_age, now_us)
            rows: list[StoredRow | None] = [
                None
                if raw is None or raw[-1] is None or (cutoff is not None and raw[-1] <= cutoff)
                else StoredRow(raw[-1], pick(raw))
                for raw in found
            ]
            answers.append(TableRead(tuple(rows), frozenset(request.features) - set(present)))
        return answers


class Fetch:
    """Selects run asynchronously: the rows of each, in order.

    The driver calls back from its I/O thread as answers arrive; each answer sends the next
    select, so at most ``concurrency`` are in flight. The first error ends the fetch.

    Args:
        session: The driver session.
        jobs: The selects (:data:`Select`), each answered by one page (at most
            :data:`KEYS_PER_SELECT` rows).
        target: The contact points, for messages.
        profile: The execution profile of reads.
        concurrency: Selects in flight at most.
        errors: The driver's exceptions (turned into OnlineStoreError naming the table).
    """

    def __init__(
        self,
        session: Session,
        jobs: Sequence[Select],
        target: str,
        profile: str,
        concurrency: int,
        errors: tuple[type[BaseException], ...],
    ) -> None:
        self._session = session
        self._profile = profile
        self._concurrency = concurrency
        self._errors = errors
        self._jobs = jobs
        self._target = target
        self.rows: list[Sequence[tuple[Any, ...]]] = [()] * len(jobs)
        self.error: OnlineStoreError | None = None
        self.finished = threading.Event()
        self._lock = threading.Lock()
        self._next = 0
        self._remaining = len(jobs)
        self._callbacks: list[Callable[[], None]] = []

    @property
    def selects(self) -> int:
        """How many selects the fetch sends."""
        return len(self._jobs)

    def start(self) -> None:
        """Send the first selects (the rest follow as answers arrive)."""
        if not self._jobs:
            self._finish()
            return
        for _ in range(min(len(self._jobs), self._concurrency)):
            self._send_next()

    def _send_next(self) -> None:
        with self._lock:
            index = self._next
            if index >= len(self._jobs) or self.finished.is_set():
                return
            self._next += 1
        statement, parameters, _ = self._jobs[index]
        try:
            future = self._session.execute_async(
                statement, parameters, execution_profile=self._profile
            )
        except self._errors as error:
            self._failed(error, index)
            return
        future.add_callbacks(
            self._answered, self._failed, callback_args=(index,), errback_args=(index,)
        )

    def _answered(self, rows: Any, index: int) -> None:
        self.rows[index] = rows or ()
        with self._lock:
            self._remaining -= 1
            last = self._remaining == 0
        if last:
            self._finish()
        else:
            self._send_next()

    def _failed(self, error: BaseException, index: int) -> None:
        with self._lock:
            if self.error is not None:
                return
            self.error = read_error(STORE, self._target, self._jobs[index][2], error)
            self.error.__cause__ = error
        self._finish()

    def _finish(self) -> None:
        with self._lock:
            if self.finished.is_set():
                return
            self.finished.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def add_done_callback(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` when finished (at once if finished already)."""
        with self._lock:
            if not self.finished.is_set():
                self._callbacks.append(callback)
                return
        callback()

    def wait(self, timeout: float | None) -> list[Sequence[tuple[Any, ...]]]:
        """The rows, once finished.

        Raises:
            OnlineStoreError: A select failed, or ``timeout`` seconds passed first.
        """
        if not self.finished.wait(timeout):
            raise OnlineStoreError(
                STORE, self._target, f"no answer within {timeout} s; the node may be overloaded"
            )
        if self.error is not None:
            raise self.error
        return self.rows
