"""Retrying Delta commits that conflict with concurrent ones, with randomized backoff.

Delta commits optimistically: a commit that conflicts with one made meanwhile by another job is
not committed at all, so running the action again starts from the table's new state. Every
commit of the offline store (window writes, rejected rows, schema changes, compaction) goes
through :func:`_retrying`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from feast_spark.errors import JobFailedError

_log = logging.getLogger(__name__)
_T = TypeVar("_T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a conflicting Delta commit is retried.

    Attributes:
        attempts: Tries in all, the first included.
        first_delay_s: Upper bound of the first random wait; doubles at every retry.
        max_delay_s: Cap of the wait's upper bound.

    """

    attempts: int = 8
    first_delay_s: float = 0.5
    max_delay_s: float = 20.0

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1-based): full jitter."""
        bound = min(self.max_delay_s, self.first_delay_s * 2 ** (retry - 1))
        return random.uniform(0, bound)  # jitter, not cryptography


DEFAULT_RETRY = RetryPolicy()


def _conflict_types() -> tuple[type[BaseException], ...]:
    import delta.exceptions as conflicts

    return (
        conflicts.DeltaConcurrentModificationException,
        conflicts.ConcurrentWriteException,
        conflicts.MetadataChangedException,
        conflicts.ProtocolChangedException,
        conflicts.ConcurrentAppendException,
        conflicts.ConcurrentDeleteReadException,
        conflicts.ConcurrentDeleteDeleteException,
        conflicts.ConcurrentTransactionException,
    )


def _retrying(action: Callable[[], _T], *, what: str, job_id: str, retry: RetryPolicy) -> _T:
    """Run ``action``; on a Delta commit conflict, wait (full jitter) and run it again.

    Safe because a conflicting commit is not committed at all: the retry starts from the table's
    new state. Anything else is raised at once.
    """
    conflicts = _conflict_types()
    for number in range(1, retry.attempts + 1):
        try:
            return action()
        except conflicts as error:
            if number == retry.attempts:
                raise JobFailedError(
                    job_id,
                    "FAILED",
                    f"{what}: concurrent commits conflicted with each of {retry.attempts} "
                    f"attempts ({type(error).__name__}), so it was not committed; rerun the job "
                    "(window writes are idempotent)",
                ) from error
            pause = retry.delay(number)
            _log.warning(
                "%s: %s on attempt %d; retrying in %.1fs",
                what,
                type(error).__name__,
                number,
                pause,
            )
            time.sleep(pause)
    raise AssertionError("unreachable")  # pragma: no cover
