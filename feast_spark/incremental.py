"""Incremental materialization: each table's high-water mark, the next window, settling a job.

A table's state lives in the registry (``table_state``), with these keys on disk::

    {"materialized_until": "2024-01-02T00:00:00+00:00", "pending_materialization": "<job id>"}

The protocol, driven by ``Client.materialize_incremental``:

1. :meth:`IncrementalBook.plan`: each table's :meth:`IncrementalState.next_window`, joined into
   one window (:func:`joint_window`) for one job.
2. :meth:`IncrementalBook.begin`: one registry commit marks every table's job as pending.
3. When the job ends (its handle is waited for, or the next run asks the job store), the state
   is settled (:meth:`IncrementalState.settled`): the mark moves to the window's end if the job
   succeeded, and the pending job is cleared either way.

A window never ends later than now plus ``future_event_time_allowance``: the job skips rows dated
after that, so a mark beyond it would skip them for ever once they are ingested.

Pure Python: the book reads and writes through :class:`~feast_spark.registry.Registry`, and
learns a job's outcome through a function it is given (no launcher import).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from feast_spark.errors import ArgumentError, IncrementalStateError
from feast_spark.specs import Window

if TYPE_CHECKING:
    from feast_spark.definitions import FeatureTable
    from feast_spark.registry import Registry

#: Key of the high-water mark (ISO-8601 instant; absent or null before the first run).
MATERIALIZED_UNTIL: Final = "materialized_until"
#: Key of the id of the incremental job not settled yet (absent or null when none).
PENDING_MATERIALIZATION: Final = "pending_materialization"
_KEYS: Final = frozenset({MATERIALIZED_UNTIL, PENDING_MATERIALIZATION})


@dataclass(frozen=True)
class JobOutcome:
    """What the book needs to know of a job, as the job store tells it.

    Attributes:
        ended: Whether the job is in a final state.
        succeeded: Whether it ended SUCCEEDED.
        window: The window it materialized.
    """

    ended: bool
    succeeded: bool
    window: Window


#: Learns a job's outcome by id; None when the job store does not know the job.
OutcomeLookup = Callable[[str], JobOutcome | None]


@dataclass(frozen=True)
class IncrementalState:
    """One table's incremental bookkeeping.

    Attributes:
        materialized_until: The high-water mark: every row before it was materialized (None
            before the first run, or after a purge).
        pending_job: The incremental job launched and not settled yet.
    """

    materialized_until: datetime | None = None
    pending_job: str | None = None

    def __post_init__(self) -> None:
        mark = self.materialized_until
        if mark is not None and (not isinstance(mark, datetime) or mark.utcoffset() is None):
            raise IncrementalStateError(MATERIALIZED_UNTIL, mark, "must be an aware datetime (UTC)")
        job = self.pending_job
        if job is not None and (not isinstance(job, str) or not job):
            raise IncrementalStateError(PENDING_MATERIALIZATION, job, "must be a job id")

    @classmethod
    def parse(cls, mapping: Mapping[str, Any], *, table: str = "?") -> IncrementalState:
        """The state of ``table`` as the registry holds it (as every release wrote it).

        Raises:
            IncrementalStateError: An unknown key, a mark that is not an ISO-8601 instant with
                a time zone, or a pending job that is not an id.
        """
        if not isinstance(mapping, Mapping):
            raise IncrementalStateError(table, mapping, "a table state must be a mapping")
        unknown = sorted(set(mapping) - _KEYS)
        if unknown:
            raise IncrementalStateError(
                f"{table}.{unknown[0]}", mapping[unknown[0]], f"unknown; known: {sorted(_KEYS)}"
            )
        raw = mapping.get(MATERIALIZED_UNTIL)
        mark = None
        if raw is not None:
            try:
                mark = datetime.fromisoformat(raw) if isinstance(raw, str) else None
            except ValueError:
                mark = None
            if mark is None or mark.utcoffset() is None:
                raise IncrementalStateError(
                    f"{table}.{MATERIALIZED_UNTIL}",
                    raw,
                    "is not an ISO-8601 instant with a time zone; purge the online table "
                    "(feast-spark online purge) to reset the mark",
                )
        job = mapping.get(PENDING_MATERIALIZATION)
        if job is not None and (not isinstance(job, str) or not job):
            raise IncrementalStateError(
                f"{table}.{PENDING_MATERIALIZATION}", job, "is not a job id"
            )
        return cls(mark, job)

    def serialize(self) -> dict[str, Any]:
        """The JSON form :meth:`parse` reads (both keys, null when unset)."""
        mark = self.materialized_until
        return {
            MATERIALIZED_UNTIL: mark.isoformat() if mark is not None else None,
            PENDING_MATERIALIZATION: self.pending_job,
        }

    def next_window(
        self,
        table: FeatureTable,
        now: datetime,
        *,
        end: datetime | None = None,
        allowance: timedelta = timedelta(0),
    ) -> Window | None:
        """The window the next incremental materialization of ``table`` covers.

        - It ends at ``end`` (default: ``now``), but never after ``now + allowance``: the job
          skips rows dated later, so a later mark would never materialize them.
        - It starts at the mark; on the first run at ``end - max_age`` (older values would be
          withheld as OUTSIDE_MAX_AGE anyway), or open when the table has no ``max_age``.

        Args:
            table: The feature table.
            now: The current time, aware.
            end: The requested exclusive end, aware (None: ``now``).
            allowance: ``future_event_time_allowance`` of the configuration.

        Returns:
            The window, or None when the table is materialized up to the end already.

        Raises:
            ArgumentError: ``now`` or ``end`` has no time zone.
        """
        for name, moment in (("now", now), ("end", end)):
            if moment is not None and moment.utcoffset() is None:
                raise ArgumentError(name, moment.isoformat(), "has no time zone; give one (UTC)")
        until = now if end is None else end
        latest = now + allowance
        until = min(until, latest)
        start: datetime | None = self.materialized_until
        if start is None and table.max_age is not None:
            try:
                start = until - table.max_age
            except OverflowError:  # reaches before year one: every row is young enough
                start = None
        if start is not None and start >= until:
            return None
        return Window(start, until)

    def pending(self, job_id: str) -> IncrementalState:
        """The state once ``job_id`` was launched to materialize the table."""
        return replace(self, pending_job=job_id)

    def settled(self, job_id: str, outcome: JobOutcome | None) -> IncrementalState:
        """The state once the outcome of ``job_id`` is known (pure).

        A state waiting for another job is unchanged (an older job's late news). A job still
        running leaves it pending. An ended job clears it; a success also moves the mark to
        the window's end, forward only (an older window, a backfill, keeps it). An unknown job
        (``outcome`` None, e.g. pruned from the job store) clears it without moving the mark.
        """
        if self.pending_job != job_id or (outcome is not None and not outcome.ended):
            return self
        mark = self.materialized_until
        end = outcome.window.end if outcome is not None and outcome.succeeded else None
        if end is not None and (mark is None or end > mark):
            mark = end
        return IncrementalState(mark, None)

    def reset(self) -> IncrementalState:
        """The state after the table's online rows were purged: no mark, so a full rebuild."""
        return replace(self, materialized_until=None)


def joint_window(windows: Iterable[Window | None]) -> Window | None:
    """One window covering each table's: the earliest start, the latest end.

    Rematerializing a window is harmless (the online store keeps the newest event), so the
    tables of one job share it. None when every table is up to date (every window None).

    Raises:
        IncrementalStateError: A window has no end (incremental windows always have one).
    """
    wanted = [w for w in windows if w is not None]
    if not wanted:
        return None
    ends = [w.end for w in wanted]
    if any(end is None for end in ends):
        raise IncrementalStateError("window.end", None, "an incremental window has an end")
    starts = [w.start for w in wanted]
    start = None if None in starts else min(s for s in starts if s is not None)
    return Window(start, max(e for e in ends if e is not None))


class IncrementalBook:
    """The incremental bookkeeping of one project's tables, in the registry.

    Every write is one registry commit: a read-modify-write of the tables' states that the
    registry re-applies on the newer document when another writer committed in between.

    Args:
        registry: The registry holding the states.
        project: The project of the tables.
    """

    def __init__(self, registry: Registry, project: str) -> None:
        self.registry = registry
        self.project = project

    def state(self, table: str) -> IncrementalState:
        """The table's state as stored (not settled)."""
        return IncrementalState.parse(self.registry.table_state(self.project, table), table=table)

    def plan(
        self,
        tables: Sequence[FeatureTable],
        now: datetime,
        lookup: OutcomeLookup,
        *,
        end: datetime | None = None,
        allowance: timedelta = timedelta(0),
    ) -> Window | None:
        """Settle each table, then the one window a job materializing them all covers.

        Returns:
            The joint window, or None when every table is up to date.
        """
        return joint_window(
            self.settle(table.name, lookup).next_window(table, now, end=end, allowance=allowance)
            for table in tables
        )

    def begin(self, tables: Sequence[str], job_id: str) -> None:
        """Record ``job_id`` as the pending job of every table, in one commit."""
        self._change(tables, lambda state: state.pending(job_id))

    def settle(self, table: str, lookup: OutcomeLookup) -> IncrementalState:
        """Fold the outcome of the table's pending job (if any) into its state.

        The job store is asked once, outside the commit; the commit then applies the pure
        :meth:`IncrementalState.settled`, which ignores the news if another job is pending by
        then.

        Returns:
            The table's state afterwards.
        """
        state = self.state(table)
        job_id = state.pending_job
        if job_id is None:
            return state
        return self.settle_job([table], job_id, lookup(job_id))[table]

    def settle_job(
        self, tables: Sequence[str], job_id: str, outcome: JobOutcome | None
    ) -> dict[str, IncrementalState]:
        """Fold a job's known outcome into the states of its tables, in one commit."""
        return self._change(tables, lambda state: state.settled(job_id, outcome))

    def reset(self, table: str) -> None:
        """Forget the table's mark (after a purge of its online rows), in one commit.

        A state that does not parse is replaced: the purge is the fix its error names.
        """

        def apply(name: str, stored: dict[str, Any]) -> dict[str, Any]:
            try:
                state = IncrementalState.parse(stored, table=name)
            except IncrementalStateError:
                state = IncrementalState()
            return state.reset().serialize()

        self.registry.change_table_states(self.project, [table], apply)

    def _change(
        self, tables: Sequence[str], change: Callable[[IncrementalState], IncrementalState]
    ) -> dict[str, IncrementalState]:
        after: dict[str, IncrementalState] = {}

        def apply(table: str, stored: dict[str, Any]) -> dict[str, Any]:
            before = IncrementalState.parse(stored, table=table)
            after[table] = change(before)
            # An unchanged state keeps its stored form: no commit for nothing.
            return stored if after[table] == before else after[table].serialize()

        self.registry.change_table_states(self.project, tables, apply)
        return after
