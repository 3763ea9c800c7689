"""What the launcher knows about a job: its state and its record, as stored in the job store.

A :class:`JobRecord` is a frozen snapshot; every change makes a new one (``dataclasses.replace``)
that the job store writes as one JSON document. Fields that do not apply to a target stay None
(a local job has no submission id, a cluster-mode job has no process id).
"""

from __future__ import annotations

import enum
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from feast_spark.errors import JobSpecError
from feast_spark.specs import Window

RECORD_VERSION = 1


class JobState(enum.StrEnum):
    """Where a job is in its life. SUCCEEDED, FAILED, CANCELLED and ABANDONED are final.

    ABANDONED: someone declared the job lost (``feast-spark jobs abandon``) because the machine
    that ran its driver is gone; how it ended is not known.
    """

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    ABANDONED = "ABANDONED"

    @property
    def is_final(self) -> bool:
        """Whether the job has ended (the state never changes again)."""
        return self in (
            JobState.SUCCEEDED,
            JobState.FAILED,
            JobState.CANCELLED,
            JobState.ABANDONED,
        )


@dataclass(frozen=True)
class JobRecord:
    """One job, as the job store keeps it.

    Attributes:
        job_id: Unique id (also the spec's ``job_id`` and the folder name in the store).
        job_type: ``ingest``, ``historical_retrieval``, ``materialize``, or another name for jobs
            that are not feature-store jobs (e.g. ``smoke``).
        project: The project the tables belong to, when there is one.
        tables: The feature tables the job reads or writes.
        window: The event-time window.
        state: The last state learnt from the job's source of truth.
        target: ``local``, ``standalone``, ``yarn`` or ``kubernetes``.
        deploy_mode: ``client`` or ``cluster``.
        master: The Spark master URL.
        submitted_at: When the launcher accepted the job.
        started_at: When Spark started it (the process started, or the driver was submitted).
        ended_at: When it reached a final state.
        command: The spark-submit command or REST request, masked.
        spec_uri: Where the job spec is (the job reads it with ``--spec``).
        result_path: Where the job writes its result record.
        log_path: The driver's log (local and client mode: a file on ``host``).
        host: The machine that launched the job (process ids mean something only there).
        pid: The launcher's supervisor process on ``host`` (local and client mode).
        submission_id: The cluster's handle: standalone driver id, YARN application id, or
            ``namespace:pod`` on Kubernetes.
        rest_url: The standalone master's REST submission server (standalone cluster mode).
        app_id: The Spark application id (``local-…``, ``app-…``, ``application_…``).
        ui_url: The driver's web UI (progress comes from its REST API).
        exit_code: The spark-submit exit status (local and client mode).
        cancel_requested_at: When someone asked to cancel the job.
        result: The job's result record (counts, Delta version, ...) once it has ended.
        error: Why the job did not succeed: the job's own error message, or what is known.
        updated_at: When this record was last written.
    """

    job_id: str
    job_type: str
    state: JobState
    target: str
    deploy_mode: str
    master: str
    submitted_at: datetime
    project: str | None = None
    tables: tuple[str, ...] = ()
    window: Window = field(default_factory=Window)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    command: tuple[str, ...] = ()
    spec_uri: str | None = None
    result_path: str | None = None
    log_path: str | None = None
    host: str = field(default_factory=socket.gethostname)
    pid: int | None = None
    submission_id: str | None = None
    rest_url: str | None = None
    app_id: str | None = None
    ui_url: str | None = None
    exit_code: int | None = None
    cancel_requested_at: datetime | None = None
    result: Mapping[str, Any] | None = None
    error: str | None = None
    updated_at: datetime | None = None

    @property
    def runs_elsewhere(self) -> bool:
        """Whether the job's driver is a process of another machine (its pids mean nothing here).

        Only local and client-mode jobs have a driver process; cluster-mode jobs are asked
        through the cluster from anywhere.
        """
        has_process = self.target == "local" or self.deploy_mode == "client"
        return has_process and bool(self.host) and self.host != socket.gethostname()

    @property
    def duration_s(self) -> float | None:
        """Seconds from start (or submission) to end (or now)."""
        start = self.started_at or self.submitted_at
        end = self.ended_at or datetime.now(UTC)
        return max(0.0, (end - start).total_seconds())

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON document."""
        return {
            "record_version": RECORD_VERSION,
            "job_id": self.job_id,
            "job_type": self.job_type,
            "project": self.project,
            "tables": list(self.tables),
            "window": self.window.to_dict(),
            "state": self.state.value,
            "target": self.target,
            "deploy_mode": self.deploy_mode,
            "master": self.master,
            "submitted_at": _iso(self.submitted_at),
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at),
            "duration_s": round(self.duration_s, 3) if self.duration_s is not None else None,
            "command": list(self.command),
            "spec_uri": self.spec_uri,
            "result_path": self.result_path,
            "log_path": self.log_path,
            "host": self.host,
            "pid": self.pid,
            "submission_id": self.submission_id,
            "rest_url": self.rest_url,
            "app_id": self.app_id,
            "ui_url": self.ui_url,
            "exit_code": self.exit_code,
            "cancel_requested_at": _iso(self.cancel_requested_at),
            "result": dict(self.result) if self.result is not None else None,
            "error": self.error,
            "updated_at": _iso(self.updated_at),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobRecord:
        """Inverse of :meth:`to_dict` (``duration_s`` is derived, not read).

        Raises:
            ValueError: The document is not a job record this version can read.
        """
        if data.get("record_version") != RECORD_VERSION:
            raise ValueError(
                f"record_version {data.get('record_version')!r}; this reader knows {RECORD_VERSION}"
            )
        try:
            return cls(
                job_id=str(data["job_id"]),
                job_type=str(data["job_type"]),
                project=data.get("project"),
                tables=tuple(data.get("tables") or ()),
                window=Window.from_dict(data.get("window")),
                state=JobState(data["state"]),
                target=str(data["target"]),
                deploy_mode=str(data["deploy_mode"]),
                master=str(data["master"]),
                submitted_at=_instant(data["submitted_at"]),
                started_at=_optional_instant(data.get("started_at")),
                ended_at=_optional_instant(data.get("ended_at")),
                command=tuple(data.get("command") or ()),
                spec_uri=data.get("spec_uri"),
                result_path=data.get("result_path"),
                log_path=data.get("log_path"),
                host=str(data.get("host") or ""),
                pid=data.get("pid"),
                submission_id=data.get("submission_id"),
                rest_url=data.get("rest_url"),
                app_id=data.get("app_id"),
                ui_url=data.get("ui_url"),
                exit_code=data.get("exit_code"),
                cancel_requested_at=_optional_instant(data.get("cancel_requested_at")),
                result=data.get("result"),
                error=data.get("error"),
                updated_at=_optional_instant(data.get("updated_at")),
            )
        except (KeyError, TypeError, JobSpecError) as error:
            raise ValueError(f"field {error} is missing or malformed") from None


def overlaps(a: Window, b: Window) -> bool:
    """Whether two half-open windows ``[start, end)`` share an instant (None: unbounded)."""
    a_before_b_ends = a.start is None or b.end is None or a.start < b.end
    b_before_a_ends = b.start is None or a.end is None or b.start < a.end
    return a_before_b_ends and b_before_a_ends


def describe_window(window: Window) -> str:
    """``[start, end)`` in ISO-8601, ``-inf``/``+inf`` for open bounds."""
    start = window.start.isoformat() if window.start else "-inf"
    end = window.end.isoformat() if window.end else "+inf"
    return f"[{start}, {end})"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _instant(value: Any) -> datetime:
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _optional_instant(value: Any) -> datetime | None:
    return None if value is None else _instant(value)
