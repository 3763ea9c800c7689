"""A launched job: its state from the target's source of truth, waiting, cancelling, logs, result.

:class:`Job` works the same for every target; a :class:`Target` says how to learn the state of a
job and how to stop it (a process on this machine, the standalone master's REST server, YARN,
Kubernetes). The job store keeps the last state learnt, so any process can pick a job up again
(``Launcher.get(job_id)``) and a final state is read from the store without asking anyone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from feast_spark import warm_protocol
from feast_spark.errors import JobFailedError, NotFoundError
from feast_spark.job_results import read_result
from feast_spark.launcher import logparse
from feast_spark.launcher.errors import JobTimeoutError, TrackingError
from feast_spark.launcher.progress import Progress, application_id, fetch_progress
from feast_spark.launcher.records import JobRecord, JobState

if TYPE_CHECKING:
    from feast_spark.launcher.job_store import JobStore

__all__ = ["EndWatcher", "Job", "JobRecord", "JobState", "Observation", "Progress", "Target"]

# Consecutive failures to reach a job's source of truth that `wait` tolerates before it gives up
# with a TrackingError (a master restarting, a network blip).
MAX_TRACKING_FAILURES = 5
LOG_TAIL_LINES = 20


@dataclass(frozen=True)
class Observation:
    """What a target learnt about a job from its source of truth (None: not known / unchanged).

    Attributes:
        state: The job's state.
        exit_code: spark-submit's exit status (process targets).
        error: Why it did not succeed, as the target knows it.
        started_at: When it started.
        ended_at: When it ended.
        pid: The supervisor process (process targets).
        app_id: The Spark application id.
        ui_url: The driver's web UI.
        log_path: Where the driver's log can be read (a file or a URL).
        outcome_known: False when the target saw the job end but cannot tell how (its process
            or pod vanished): the job's result record decides, and FAILED stands without one.
    """

    state: JobState | None = None
    exit_code: int | None = None
    error: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    pid: int | None = None
    app_id: str | None = None
    ui_url: str | None = None
    log_path: str | None = None
    outcome_known: bool = True


class Target(Protocol):
    """How to learn a job's state, read its driver log and stop it, on one kind of target."""

    def observe(self, record: JobRecord) -> Observation:
        """Ask the job's source of truth.

        Raises:
            TrackingError: The source of truth cannot be asked.
        """
        ...

    def kill(self, record: JobRecord) -> None:
        """Ask the target to stop the job (returns without waiting for it to stop).

        Raises:
            TrackingError: The target cannot be asked.
        """
        ...

    def read_log(self, record: JobRecord) -> str | None:
        """The driver's log so far, or None when it cannot be read from here."""
        ...


@runtime_checkable
class EndWatcher(Protocol):
    """A target that can see a job end as it happens (its process on this machine)."""

    def pause(self, record: JobRecord, seconds: float) -> None:
        """Sleep up to ``seconds``, returning as soon as the job may have ended."""
        ...


ProgressCallback = Callable[[JobRecord, Progress | None], None]


class Job:
    """One job run, tracked through its target and persisted in the job store.

    Args:
        record: The job's record.
        store: The job store that keeps it.
        target: How to reach the job's source of truth.
    """

    def __init__(self, record: JobRecord, store: JobStore, target: Target) -> None:
        self._record = record
        self._store = store
        self._target = target
        self._on_end: list[Callable[[JobRecord], None]] = []

    def __repr__(self) -> str:
        return f"Job({self.id!r}, {self._record.state.value})"

    @property
    def id(self) -> str:
        """The job id."""
        return self._record.job_id

    @property
    def record(self) -> JobRecord:
        """The last record read or learnt (no remote call; see :meth:`refresh`)."""
        return self._record

    # --- state -----------------------------------------------------------------------------------

    def refresh(self) -> JobRecord:
        """Learn the job's state from its source of truth, store it if it changed, return it.

        A final state is never changed again, and is returned from the store without asking.

        Raises:
            TrackingError: The job's source of truth cannot be asked.
        """
        stored = self._store.get(self.id)
        if stored.state.is_final:
            self._record = stored
            return self._ended(stored)
        observation = self._target.observe(stored)
        updated = self._apply(stored, observation)
        if updated != stored:
            updated = self._store.put(updated)
        self._record = updated
        return self._ended(updated) if updated.state.is_final else updated

    def on_end(self, callback: Callable[[JobRecord], None]) -> None:
        """Call ``callback`` with the final record once this handle sees the job end.

        Runs from :meth:`refresh` (so :meth:`status`, :meth:`wait` and :meth:`result`), once;
        e.g. incremental materialization moves its high-water mark there. Its errors propagate.
        """
        self._on_end.append(callback)

    def _ended(self, record: JobRecord) -> JobRecord:
        while self._on_end:
            self._on_end.pop(0)(record)
        return record

    def status(self) -> JobState:
        """The job's state, from its source of truth (see :meth:`refresh`)."""
        return self.refresh().state

    def wait(
        self,
        timeout: float | None = None,
        *,
        poll_interval: float = 2.0,
        on_progress: ProgressCallback | None = None,
    ) -> JobState:
        """Block until the job ends and return its final state (whatever it is).

        A job whose process runs on this machine is seen ending at once, whatever
        ``poll_interval``: each pause ends when its supervisor exits (:class:`EndWatcher`).

        Args:
            timeout: Seconds to wait at most; None waits as long as it takes.
            poll_interval: Seconds between two looks at the job (and its progress).
            on_progress: Called after each look with the record and the Spark progress (None when
                the driver UI does not answer).

        Raises:
            JobTimeoutError: ``timeout`` passed; the job keeps running.
            TrackingError: The job's source of truth could not be asked
                :data:`MAX_TRACKING_FAILURES` times in a row.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        failures = 0
        while True:
            try:
                record = self.refresh()
                failures = 0
            except TrackingError:
                failures += 1
                if failures >= MAX_TRACKING_FAILURES:
                    raise
                record = self._record
            if on_progress is not None:
                on_progress(record, None if record.state.is_final else self.progress())
            if record.state.is_final:
                return record.state
            if deadline is not None and time.monotonic() >= deadline:
                raise JobTimeoutError(self.id, record.state.value, float(timeout or 0))
            pause = poll_interval
            if deadline is not None:
                pause = max(0.0, min(pause, deadline - time.monotonic()))
            if isinstance(self._target, EndWatcher):
                self._target.pause(record, pause)
            else:
                time.sleep(pause)

    def result(self, timeout: float | None = None) -> dict[str, Any]:
        """Wait for the job and return its result record (counts, versions, ...).

        Like ``concurrent.futures.Future.result``: the outcome of a job that succeeded, or the
        job's own error raised.

        Raises:
            JobFailedError: The job FAILED or was CANCELLED (with the job's own error).
            JobTimeoutError: ``timeout`` passed.
        """
        state = self.wait(timeout)
        record = self._record
        if state is not JobState.SUCCEEDED:
            raise JobFailedError(self.id, state.value, record.error or "no error message recorded")
        return dict(record.result or {})

    def cancel(self, *, timeout: float = 60.0, poll_interval: float = 1.0) -> JobState:
        """Stop the job and wait until it has stopped; return its final state.

        A job that already ended keeps its state (SUCCEEDED stays SUCCEEDED).

        Raises:
            TrackingError: The target could not be asked to stop the job.
            JobTimeoutError: The job did not stop within ``timeout`` seconds.
        """
        record = self.refresh()
        if record.state.is_final:
            return record.state
        if record.cancel_requested_at is None:
            record = self._store.put(replace(record, cancel_requested_at=datetime.now(UTC)))
            self._record = record
        self._target.kill(record)
        try:
            return self.wait(timeout, poll_interval=poll_interval)
        except JobTimeoutError as error:
            if not record.runs_elsewhere:
                raise
            # The request is in the record; only the supervisor on the job's host acts on it.
            raise JobTimeoutError(
                self.id,
                error.state,
                error.timeout_s,
                f"its driver runs on host '{record.host}', whose launcher supervisor stops it "
                f"once it reads the cancel request now in the job store; if '{record.host}' is "
                f"gone for good, mark the job lost with 'feast-spark jobs abandon {self.id}'",
            ) from None

    # --- output ----------------------------------------------------------------------------------

    def logs(self) -> str:
        """The driver's log so far (empty when it cannot be read from here).

        Raises:
            TrackingError: The target holds the log but cannot be asked.
        """
        return self._target.read_log(self._record) or ""

    def progress(self) -> Progress | None:
        """Spark's progress (stages, tasks) from the driver UI, or None when it does not answer."""
        record = self._record
        if record.ui_url is None or record.state.is_final:
            return None
        app_id = record.app_id or application_id(record.ui_url)
        if app_id is None:
            return None
        if record.app_id is None:
            self._record = self._store.put(replace(record, app_id=app_id))
        warm = warm_protocol.CLIENT_MODULE in (record.command or ())
        return fetch_progress(record.ui_url, app_id, record.job_id if warm else None)

    # --- internals -------------------------------------------------------------------------------

    def _apply(self, record: JobRecord, seen: Observation) -> JobRecord:
        """The record updated with an observation; a final state brings the result and error."""
        state = seen.state or record.state
        if state is JobState.FAILED and record.cancel_requested_at is not None:
            # Killing a driver often ends it with a failure status: that was the cancel.
            state = JobState.CANCELLED
        updated = replace(
            record,
            state=state,
            exit_code=seen.exit_code if seen.exit_code is not None else record.exit_code,
            started_at=record.started_at or seen.started_at,
            pid=seen.pid or record.pid,
            app_id=record.app_id or seen.app_id,
            ui_url=seen.ui_url or record.ui_url,
            log_path=record.log_path or seen.log_path,
        )
        if not state.is_final:
            return updated
        updated = replace(updated, ended_at=seen.ended_at or record.ended_at or datetime.now(UTC))
        return self._finish(updated, seen)

    def _finish(self, record: JobRecord, seen: Observation) -> JobRecord:
        """Read the job's result record and settle the final state and error.

        The result record is the job's own word: a driver that exited 0 but recorded FAILED
        failed; when the target could not tell how the job ended, a SUCCEEDED record decides.
        """
        result = _read_result(record)
        status = (result or {}).get("status")
        state = record.state
        if state is JobState.SUCCEEDED and status == "FAILED":
            state = JobState.FAILED
        elif state is JobState.FAILED and not seen.outcome_known and status == "SUCCEEDED":
            state = JobState.SUCCEEDED
        error = None
        if state is JobState.FAILED:
            error = (result or {}).get("error") or seen.error or self._error_from_log(record)
        elif state is JobState.CANCELLED:
            error = seen.error or "cancelled"
            if record.cancel_requested_at is not None:
                error = f"cancelled on request at {record.cancel_requested_at.isoformat()}"
        return replace(record, state=state, result=result, error=error)

    def _error_from_log(self, record: JobRecord) -> str:
        try:
            log = self._target.read_log(record) or ""
        except TrackingError as error:
            return f"exit code {record.exit_code}; the driver log cannot be read: {error.reason}"
        found = logparse.error_from_log(log)
        if found:
            return found
        code = f"exit code {record.exit_code}" if record.exit_code is not None else "no exit code"
        last = logparse.tail(log, LOG_TAIL_LINES).strip()
        return (
            f"{code}; last lines of the driver log:\n{last}" if last else f"{code}; no driver log"
        )


def _read_result(record: JobRecord) -> dict[str, Any] | None:
    """The job's result record as a dict, or None when it wrote none (or there is no path)."""
    if not record.result_path:
        return None
    try:
        return read_result(record.result_path).to_dict()
    except NotFoundError:
        return None
    except JobFailedError as error:  # unreadable record: say so rather than hide it
        return {"status": "FAILED", "error": error.message}
