"""Running many Cassandra requests at once, retrying failures, and saying why they failed.

Why not the driver's ``execute_concurrent``: when every host is down, each request fails inside
``execute_async`` and its error callback starts the next request on the same stack, so a few
thousand requests overflow the recursion limit; the driver then records a second result for one
request and sorting its results raises ``TypeError: '<' not supported between instances of
'RecursionError' and 'NoHostAvailable'``, losing both the retry and the real cause.
:func:`run_concurrently` starts every request from the calling thread and only *records* results
in the callbacks, so its stack depth never grows with the number of requests.

Pure logic (:class:`RetryPolicy`, :func:`retry_failed`, :func:`describe_error`) is kept apart from
the driver calls so it can be tested without a node.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

_log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often failed requests are tried again, and how long to wait in between.

    Attributes:
        attempts: Attempts per request, the first one included.
        backoff_s: Wait before the second attempt; doubled before each further one.
    """

    attempts: int = 5
    backoff_s: float = 0.2

    def delays(self) -> list[float]:
        """The waits before attempts 2..attempts."""
        return [self.backoff_s * 2**i for i in range(self.attempts - 1)]


@dataclass(frozen=True)
class Outcome:
    """The result of one request.

    Attributes:
        rows: The rows of its first page (None when it failed).
        error: The exception it failed with (None when it succeeded).
        host: The coordinator that answered or was tried last (``address:port``; None: unknown).
    """

    rows: list[Any] | None
    error: BaseException | None = None
    host: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the request succeeded."""
        return self.error is None


@dataclass(frozen=True)
class Failure(Generic[T]):
    """A request that still failed when retrying stopped.

    Attributes:
        request: The request.
        error: Its last error.
        host: The coordinator of its last attempt, if known.
    """

    request: T
    error: BaseException
    host: str | None = None


def run_concurrently(
    session: Any,
    jobs: Sequence[tuple[Any, Any]],
    *,
    concurrency: int,
    execution_profile: Any,
) -> list[Outcome]:
    """Run ``(statement, parameters)`` jobs with at most ``concurrency`` in flight.

    Requests are started from the calling thread only; callbacks record results and free a slot,
    so a burst of immediate failures (every host down) never recurses.

    Returns:
        One outcome per job, in job order.
    """
    count = len(jobs)
    outcomes: list[Outcome | None] = [None] * count
    if count == 0:
        return []
    slots = threading.BoundedSemaphore(concurrency)
    finished = threading.Event()
    lock = threading.Lock()
    remaining = [count]

    def record(index: int, outcome: Outcome) -> None:
        # The driver may answer one request twice (a timeout, then the late answer, from its
        # I/O thread): the first answer stands, and only it frees a slot and counts.
        with lock:
            if outcomes[index] is not None:
                return
            outcomes[index] = outcome
            remaining[0] -= 1
            done = remaining[0] == 0
        slots.release()
        if done:
            finished.set()

    def on_rows(rows: Any, index: int, future: Any) -> None:
        record(index, Outcome(list(rows) if rows is not None else [], None, _host_of(future)))

    def on_error(error: BaseException, index: int, future: Any) -> None:
        record(index, Outcome(None, error, _host_of(future)))

    for index, (statement, parameters) in enumerate(jobs):
        slots.acquire()
        try:
            future = session.execute_async(
                statement, parameters, execution_profile=execution_profile
            )
        except Exception as error:  # the driver may raise before sending (e.g. shut down)
            record(index, Outcome(None, error, None))
            continue
        future.add_callbacks(
            callback=on_rows, callback_args=(index, future),
            errback=on_error, errback_args=(index, future),
        )  # fmt: skip
    finished.wait()
    return cast("list[Outcome]", outcomes)  # every slot is filled once ``finished`` is set


def _host_of(future: Any) -> str | None:
    host = getattr(future, "coordinator_host", None) or getattr(future, "_current_host", None)
    return None if host is None else str(getattr(host, "endpoint", host))


def retry_failed(
    run: Callable[[Sequence[T]], Sequence[Outcome]],
    requests: Sequence[T],
    *,
    policy: RetryPolicy,
    retryable: Callable[[BaseException], bool],
    sleep: Callable[[float], None] = time.sleep,
    describe: Callable[[int, int], str] = lambda failed, attempt: "",
    explain: Callable[[BaseException, str | None], str] | None = None,
) -> tuple[list[Failure[T]], int]:
    """Run ``requests``, then run the failed ones again while retrying can help.

    Stops when all succeeded, when a failure is not ``retryable`` (retrying cannot fix it: e.g. a
    dropped table), or after ``policy.attempts`` attempts.

    Args:
        run: Runs requests; one outcome per request, in order.
        requests: What to run.
        policy: Attempts and backoff.
        retryable: Whether an error may go away when tried again.
        sleep: Waits (injected by tests).
        describe: ``(failed, attempt) -> text`` naming what failed, for the retry log line.
        explain: ``(error, host) -> text`` for the log line (default :func:`describe_error`).

    Returns:
        The requests that still failed (empty: all succeeded) and the attempts made.
    """
    pending = list(requests)
    delays = policy.delays()
    attempt = 0
    while True:
        attempt += 1
        outcomes = run(pending)
        failures = [
            Failure(request, outcome.error, outcome.host)
            for request, outcome in zip(pending, outcomes, strict=True)
            if outcome.error is not None
        ]
        if not failures:
            return [], attempt
        if attempt >= policy.attempts or not all(retryable(f.error) for f in failures):
            return failures, attempt
        delay = delays[attempt - 1]
        _log.warning(
            "%d requests%s failed (attempt %d of %d, retrying in %.1fs): %s",
            len(failures), describe(len(failures), attempt), attempt, policy.attempts, delay,
            (explain or describe_error)(failures[0].error, failures[0].host),
        )  # fmt: skip
        sleep(delay)
        pending = [failure.request for failure in failures]


def describe_error(
    error: BaseException, host: str | None = None, hosts: Iterable[tuple[str, bool]] = ()
) -> str:
    """One line naming the host(s) and the cause of a driver error.

    ``NoHostAvailable`` lists each host's own error (or, when the driver tried none because all
    were marked down, ``hosts`` with their state); ``Unavailable`` gives the consistency level and
    the replicas required and alive; timeouts give the consistency and the responses received.
    Any other error also names the hosts of ``hosts`` that are down: a replica the coordinator
    misses is most often one of them.

    Args:
        error: The driver's exception.
        host: The coordinator of the failed request, if known.
        hosts: ``(address:port, is up)`` of every known host, for a NoHostAvailable naming none.
    """
    name = type(error).__name__
    per_host = getattr(error, "errors", None)
    if name == "NoHostAvailable" and not (isinstance(per_host, dict) and per_host):
        known = ", ".join(f"{h} ({'up' if up else 'down'})" for h, up in hosts) or "none known"
        return f"NoHostAvailable: every host is down or unreachable (hosts: {known})"
    if name == "NoHostAvailable" and isinstance(per_host, dict):
        causes = "; ".join(f"{_endpoint(h)}: {describe_error(e)}" for h, e in per_host.items())
        text = f"NoHostAvailable: no host could serve the request ({causes})"
    else:
        text = _describe_one(error, name, host, per_host)
    down = [h for h, up in hosts if not up]
    return text + (f"; hosts down: {', '.join(down)}" if down else "")


def _describe_one(error: BaseException, name: str, host: str | None, per_host: Any) -> str:
    via = f" (coordinator {host})" if host else ""
    consistency = _consistency(getattr(error, "consistency", None))
    if name == "Unavailable":
        return (
            f"Unavailable{via}: consistency {consistency} needs "
            f"{getattr(error, 'required_replicas', '?')} live replicas, "
            f"{getattr(error, 'alive_replicas', '?')} alive"
        )
    if name in ("WriteTimeout", "ReadTimeout", "WriteFailure", "ReadFailure"):
        kind = getattr(error, "write_type", None)
        what = f" ({_write_type(kind)} write)" if kind is not None else ""
        return (
            f"{name}{via}{what}: consistency {consistency} needs "
            f"{getattr(error, 'required_responses', '?')} replica responses, "
            f"{getattr(error, 'received_responses', '?')} received"
        )
    if name == "OperationTimedOut":
        last = getattr(error, "last_host", None) or host
        details = ""
        if isinstance(per_host, dict) and per_host:
            details = ": " + "; ".join(f"{_endpoint(h)}: {e}" for h, e in per_host.items())
        return (
            f"OperationTimedOut: no answer from {_endpoint(last) if last else 'the host'} "
            f"within the request timeout{details}"
        )
    return f"{name}{via}: {error}"


def _endpoint(host: Any) -> str:
    return str(getattr(host, "endpoint", host))


def _consistency(level: Any) -> str:
    if level is None:
        return "?"
    try:
        from cassandra import ConsistencyLevel

        return str(ConsistencyLevel.value_to_name.get(level, level))
    except ImportError:  # pragma: no cover - the driver is there whenever its errors are
        return str(level)


def _write_type(kind: Any) -> str:
    try:
        from cassandra.policies import WriteType

        return str(WriteType.value_to_name.get(kind, kind)).lower()
    except ImportError:  # pragma: no cover
        return str(kind)
