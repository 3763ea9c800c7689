"""Start and stop a feature table's stream ingestion job (the facade behind ``feast-spark stream``).

One stream runs per table at a time: a second start is refused by the launcher, naming the
running job (:class:`~feast_spark.launcher.errors.JobConflictError`). Its checkpoint lives under
the project's staging location, one folder per table
(``<staging_location>/streams/<project>/<table>/checkpoint``), so a new start resumes where the
last one stopped. ``stop`` writes the job's stop request (a file in its job store folder) and
waits: the job stops its query between two micro-batches and SUCCEEDS. A job that does not stop
in time (or cannot see the file) is cancelled like ``jobs cancel`` (SIGTERM): every write of a
micro-batch is idempotent, so a batch cut short is replayed whole at the next start.
"""

from __future__ import annotations

import getpass
import json
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from feast_spark.errors import ArgumentError, NotFoundError
from feast_spark.launcher import Job, JobState
from feast_spark.launcher.errors import JobTimeoutError
from feast_spark.specs import StreamOptions, Window, new_job_id
from feast_spark.storage import read_text, write_text

if TYPE_CHECKING:
    from feast_spark.client import Client
    from feast_spark.launcher.job_store import JobStore

JOB_TYPE = "stream_ingestion"
STOP_FILE = "stop-request"
PROGRESS_FILE = "progress.json"


def checkpoint_path(client: Client, table: str) -> str:
    """The checkpoint folder of ``table``'s stream: the same for every start."""
    staging = client.config.launcher.staging_location.rstrip("/")
    return f"{staging}/streams/{client.project}/{table}/checkpoint"


def start_stream(
    client: Client, table: str, *, to: str = "online", trigger_interval_s: float | None = None
) -> Job:
    """Launch the stream ingestion job of ``table`` (it runs until stopped).

    Args:
        client: The project's client.
        table: A feature table with a ``stream_source``.
        to: ``online`` or ``both`` (also appended to the offline table).
        trigger_interval_s: Seconds between micro-batches (None: back to back).

    Raises:
        ArgumentError: The table has no stream source, or ``to`` is unknown.
        JobConflictError: A stream of the table is already running (named in the message).
    """
    if to not in ("online", "both"):
        raise ArgumentError("to", to, "must be online or both")
    definition = client.get_feature_table(table)
    if definition.stream_source is None:
        raise ArgumentError(
            "table", table, "has no stream_source; add a kafka stream_source and apply it first"
        )
    launcher = client.launcher
    job_id = new_job_id(JOB_TYPE, table)
    options = StreamOptions(
        client.config.online_store,
        checkpoint_path=checkpoint_path(client, table),
        stop_path=launcher.store.path(job_id, STOP_FILE),
        to=to,
        trigger_interval_s=trigger_interval_s,
        progress_path=launcher.store.path(job_id, PROGRESS_FILE),
    )
    spec = client._spec(JOB_TYPE, job_id, [definition], Window(), options=options)
    return launcher.submit(spec)


def running_streams(client: Client, table: str) -> list[Job]:
    """The stream jobs of ``table`` in this project that have not ended."""
    launcher = client.launcher
    records = launcher.list(job_type=JOB_TYPE, table=table, project=client.project)
    return [launcher.get(r.job_id) for r in records if not r.state.is_final]


@dataclass(frozen=True)
class StoppedStream:
    """A stream job that ``stop_stream`` ended.

    Attributes:
        job_id: The job.
        state: Its final state: SUCCEEDED when it stopped on request, CANCELLED when it had to
            be cancelled.
    """

    job_id: str
    state: JobState


def stop_stream(client: Client, table: str, *, timeout_s: float = 120.0) -> list[StoppedStream]:
    """Stop ``table``'s running stream: ask it, wait ``timeout_s``, else cancel it.

    Returns:
        The jobs stopped (none when no stream of the table was running).
    """
    stopped = []
    for job in running_streams(client, table):
        who = f"{_user()}@{socket.gethostname()} at {datetime.now(UTC).isoformat()}"
        write_text(
            client.launcher.store.path(job.id, STOP_FILE), f"feast-spark stream stop by {who}"
        )
        try:
            state = job.wait(timeout_s, poll_interval=1.0)
        except JobTimeoutError:
            state = job.cancel()
        stopped.append(StoppedStream(job.id, state))
    return stopped


def stream_progress(store: JobStore, job_id: str) -> dict[str, Any] | None:
    """The last progress record a stream job wrote (None when it has written none yet)."""
    try:
        data = json.loads(read_text(store.path(job_id, PROGRESS_FILE), kind="stream progress"))
    except (NotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def describe_progress(progress: dict[str, Any]) -> str:
    """One line for ``jobs list``: ``1200.0 rows/s in, 2500.0 processed, lag 17, batch 0.41 s``."""
    parts = []
    if progress.get("input_rows_per_s") is not None:
        parts.append(f"{progress['input_rows_per_s']} rows/s in")
    if progress.get("processed_rows_per_s") is not None:
        parts.append(f"{progress['processed_rows_per_s']} processed")
    if progress.get("kafka_lag") is not None:
        parts.append(f"lag {progress['kafka_lag']}")
    if progress.get("last_batch_s") is not None:
        parts.append(f"batch {progress['last_batch_s']} s")
    return ", ".join(parts)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown user"
