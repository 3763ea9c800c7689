"""run_concurrently: one outcome per request, whatever the driver's callbacks do."""

from __future__ import annotations

import threading
from typing import Any

from feast_spark.online.cassandra_requests import run_concurrently


class TwiceAnsweringFuture:
    """A driver future that calls back twice (its error, then rows), as a future whose request
    timed out and whose answer then arrived may; the second call may come from another thread."""

    def __init__(self, parameters: Any) -> None:
        self.parameters = parameters

    def add_callbacks(
        self, callback: Any, callback_args: Any, errback: Any, errback_args: Any
    ) -> None:
        errback(TimeoutError(f"no answer for {self.parameters}"), *errback_args)
        late = threading.Thread(target=callback, args=([("row",)], *callback_args))
        late.start()
        late.join()


class TwiceAnsweringSession:
    def execute_async(self, statement: Any, parameters: Any, **_: Any) -> TwiceAnsweringFuture:
        return TwiceAnsweringFuture(parameters)


def test_a_request_answered_twice_keeps_its_first_outcome_and_every_request_has_one() -> None:
    # given a driver that answers each request twice (first an error, then rows)
    jobs = [("statement", (i,)) for i in range(50)]
    # when the requests run two at a time
    outcomes = run_concurrently(
        TwiceAnsweringSession(), jobs, concurrency=2, execution_profile=None
    )
    # then every request has exactly its first outcome (nothing missing, nothing overwritten)
    assert len(outcomes) == 50
    assert all(outcome is not None and outcome.error is not None for outcome in outcomes)
    assert [str(outcome.error) for outcome in outcomes] == [
        f"no answer for ({i},)" for i in range(50)
    ]
