"""Job result records: the JSON a job writes at ``JobSpec.result_path`` when it ends.

A job writes exactly one record, SUCCEEDED or FAILED; the launcher reads it to learn the outcome
and the counts. Pure Python; the record is read and written through :mod:`feast_spark.storage`
(atomically on a local file system, published when closed on an object store).

Example record::

    {"result_version": 1, "job_id": "ingest-driver-stats-20240201T000000-a1b2c3",
     "job_type": "ingest", "status": "SUCCEEDED", "started_at": "2024-02-01T00:00:00+00:00",
     "finished_at": "2024-02-01T00:01:30+00:00", "duration_s": 90.0,
     "window": {"start": "2024-01-01T00:00:00+00:00", "end": "2024-01-02T00:00:00+00:00"},
     "rows_read": 1000, "rows_written": 998, "rows_rejected": 2, "delta_version": 7,
     "error": null, "details": {"table_path": "...", "rejected_path": "...",
     "rejected_version": 3}}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from feast_spark.errors import JobFailedError
from feast_spark.specs import Window
from feast_spark.storage import read_text, write_text

RESULT_VERSION = 1
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
STATUSES = (SUCCEEDED, FAILED)


@dataclass(frozen=True)
class JobResult:
    """The outcome of one job run.

    Attributes:
        job_id: The spec's job id.
        job_type: ``ingest``, ``historical_retrieval`` or ``materialize``.
        status: ``SUCCEEDED`` or ``FAILED``.
        started_at: When the job started (aware).
        finished_at: When it ended (aware).
        window: The event-time window it worked on.
        rows_read: Rows the job read (for ingest: rows of the window, valid and rejected).
        rows_written: Rows it wrote.
        rows_rejected: Rows it rejected (ingest).
        rows_deleted: Rows it deleted (ingest: the replaced window's rows before it ran).
        delta_version: Delta version it committed to its main table.
        error: The error message when FAILED.
        details: Job-specific JSON values (paths, other versions).

    """

    job_id: str
    job_type: str
    status: str
    started_at: datetime
    finished_at: datetime
    window: Window = field(default_factory=Window)
    rows_read: int | None = None
    rows_written: int | None = None
    rows_rejected: int | None = None
    delta_version: int | None = None
    error: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    rows_deleted: int | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status {self.status!r}; use one of {', '.join(STATUSES)}")

    @property
    def duration_s(self) -> float:
        """Seconds from start to end."""
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def succeeded(self) -> bool:
        """Whether the job ended with SUCCEEDED."""
        return self.status == SUCCEEDED

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON document."""
        return {
            "result_version": RESULT_VERSION,
            "job_id": self.job_id,
            "job_type": self.job_type,
            "status": self.status,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "duration_s": round(self.duration_s, 3),
            "window": self.window.to_dict(),
            "rows_read": self.rows_read,
            "rows_written": self.rows_written,
            "rows_rejected": self.rows_rejected,
            "rows_deleted": self.rows_deleted,
            "delta_version": self.delta_version,
            "error": self.error,
            "details": dict(self.details),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobResult:
        """Inverse of :meth:`to_dict` (``duration_s`` is derived, not read).

        Raises:
            ValueError: A field is missing or malformed, or the version is unknown.
        """
        if data.get("result_version") != RESULT_VERSION:
            raise ValueError(
                f"result_version {data.get('result_version')!r}; this reader knows {RESULT_VERSION}"
            )
        try:
            return cls(
                job_id=str(data["job_id"]),
                job_type=str(data["job_type"]),
                status=str(data["status"]),
                started_at=datetime.fromisoformat(data["started_at"]),
                finished_at=datetime.fromisoformat(data["finished_at"]),
                window=Window.from_dict(data.get("window")),
                rows_read=_optional_int(data.get("rows_read")),
                rows_written=_optional_int(data.get("rows_written")),
                rows_rejected=_optional_int(data.get("rows_rejected")),
                rows_deleted=_optional_int(data.get("rows_deleted")),
                delta_version=_optional_int(data.get("delta_version")),
                error=data.get("error"),
                details=dict(data.get("details") or {}),
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"field {error} is missing or malformed") from None


def write_result(path: str, result: JobResult) -> None:
    """Write ``result`` as JSON at ``path`` (a local path or a URI), replacing what is there."""
    write_text(path, json.dumps(result.to_dict(), indent=1, sort_keys=True) + "\n")


def read_result(path: str) -> JobResult:
    """Read the record a job wrote at ``path``.

    Raises:
        NotFoundError: There is no record (the job has not ended, or died before writing it).
        JobFailedError: The record exists but cannot be read (state ``UNKNOWN``).
    """
    text = read_text(path, kind="job result")
    try:
        return JobResult.from_dict(json.loads(text))
    except ValueError as error:  # json.JSONDecodeError is a ValueError
        raise JobFailedError(
            Path(path).stem, "UNKNOWN", f"its result record {path} is unreadable: {error}"
        ) from None


def _optional_int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{value!r} is not a whole number")
    return value
