"""Reads from Cassandra in flight: every single-partition select sent at once, answers by callback.

``CassandraOnlineStore.start_read`` returns a :class:`PendingRead`: ``result()`` waits for it
(what ``read``, and so ``Client.get_online_features``, does); ``add_done_callback`` tells an event
loop when the last answer arrived, so a server waits without holding a thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from feast_spark.errors import OnlineStoreError
from feast_spark.online.base import ReadRequest, StoredRow, TableRead, is_retained, read_error
from feast_spark.online.cassandra_cql import STORE

if TYPE_CHECKING:
    from cassandra.cluster import Session
    from cassandra.query import PreparedStatement


class PendingRead:
    """A Cassandra read in flight (see :meth:`CassandraOnlineStore.start_read`)."""

    def __init__(
        self,
        fetch: Fetch,
        requests: Sequence[ReadRequest],
        plans: Sequence[tuple[PreparedStatement, tuple[str, ...]] | None],
        now_us: int,
    ) -> None:
        self._fetch = fetch
        self._requests = requests
        self._plans = plans
        self._now_us = now_us

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
            _, present = plan
            index = {name: i for i, name in enumerate(present)}
            max_age = request.schema.max_age
            rows: list[StoredRow | None] = []
            for raw in fetched[position : position + len(request.keys)]:
                if raw is None or raw[-1] is None or not is_retained(raw[-1], max_age, now_us):
                    rows.append(None)
                    continue
                values = tuple(raw[index[f]] if f in index else None for f in request.features)
                rows.append(StoredRow(raw[-1], values))
            position += len(request.keys)
            answers.append(TableRead(tuple(rows), frozenset(request.features) - set(present)))
        return answers


class Fetch:
    """Single-partition selects run asynchronously: the first row of each (or None), in order.

    The driver calls back from its I/O thread as answers arrive; each answer sends the next
    select, so at most ``concurrency`` are in flight. The first error ends the fetch.

    Args:
        session: The driver session.
        jobs: ``(prepared select, key, online table)`` per partition to read.
        target: The contact points, for messages.
        profile: The execution profile of reads.
        concurrency: Selects in flight at most.
        errors: The driver's exceptions (turned into OnlineStoreError naming the table).
    """

    def __init__(
        self,
        session: Session,
        jobs: Sequence[tuple[PreparedStatement, tuple[Any, ...], str]],
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
        self.rows: list[tuple[Any, ...] | None] = [None] * len(jobs)
        self.error: OnlineStoreError | None = None
        self.finished = threading.Event()
        self._lock = threading.Lock()
        self._next = 0
        self._remaining = len(jobs)
        self._callbacks: list[Callable[[], None]] = []

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
        statement, key, _ = self._jobs[index]
        try:
            future = self._session.execute_async(statement, key, execution_profile=self._profile)
        except self._errors as error:
            self._failed(error, index)
            return
        future.add_callbacks(
            self._answered, self._failed, callback_args=(index,), errback_args=(index,)
        )

    def _answered(self, rows: Any, index: int) -> None:
        self.rows[index] = rows[0] if rows else None
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

    def wait(self, timeout: float | None) -> list[tuple[Any, ...] | None]:
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
