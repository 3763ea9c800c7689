"""The job store: one folder per job beside the registry, readable by any later process.

Layout under the store's root (a local path or any ``pyarrow.fs`` URI, like the registry)::

    <root>/<job id>/job.json       the JobRecord (written by the launcher and by status checks)
    <root>/<job id>/spec.json      the job spec the job reads (--spec)
    <root>/<job id>/result.json    the result record the job writes (feast_spark.job_results)
    <root>/<job id>/process.json   local and client mode: the supervisor's process (pid, start)
    <root>/<job id>/exit.json      local and client mode: spark-submit's exit status
    <root>/<job id>/driver.log     local and client mode: spark-submit's output

Each file has one writer at a time: ``job.json`` is written by the launcher when the job is
submitted and then by whoever learns a new state from the job's source of truth (a state that is
final is never changed again); ``process.json``/``exit.json``/``driver.log`` only by the
supervisor (:mod:`feast_spark.launcher.supervisor`), or by ``cancel`` once it has stopped it.
Files are read and written through :mod:`feast_spark.storage`, so a store and a registry at the
same address name the same place: local files are replaced atomically (and follow the umask);
object stores publish a file when it is closed.

For cluster deploy mode the store must be on storage the cluster shares (HDFS, S3, NFS): the
driver reads the spec and writes the result record there.
"""

from __future__ import annotations

import builtins
import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from feast_spark import storage
from feast_spark.errors import FeastSparkError, NotFoundError
from feast_spark.launcher.records import JobRecord, JobState

RECORD_FILE = "job.json"
SPEC_FILE = "spec.json"
RESULT_FILE = "result.json"
PROCESS_FILE = "process.json"
EXIT_FILE = "exit.json"
LOG_FILE = "driver.log"
SUBMIT_LOG_FILE = "submit.log"  # spark-submit's own output, where the driver runs elsewhere

_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


class JobStoreError(FeastSparkError, ValueError):
    """A job record in the store cannot be read, or a job id cannot name a folder.

    Attributes:
        location: The file or folder.
        reason: What is wrong.
    """

    def __init__(self, location: str, reason: str) -> None:
        self.location = location
        self.reason = reason
        super().__init__(f"job store '{location}': {reason}")


class JobStore:
    """Job records at ``uri``.

    Args:
        uri: A local folder or a URI ``pyarrow.fs`` understands (``s3://``, ``hdfs://``, ...).

    Example:
        >>> store = JobStore("/tmp/feast/jobs")  # doctest: +SKIP
        >>> [r.job_id for r in store.list(state=JobState.RUNNING)]  # doctest: +SKIP
    """

    def __init__(self, uri: str) -> None:
        local = storage.local_path(uri.rstrip("/") or "/")
        self._local = Path(local) if local is not None else None
        # A remote URI stays as given: Spark reads the spec and writes the result there, and
        # Hadoop knows s3a://, not pyarrow's s3://.
        self.uri = local if local is not None else uri.rstrip("/")

    def __repr__(self) -> str:
        return f"JobStore({self.uri!r})"

    @property
    def is_local(self) -> bool:
        """Whether the store is a folder of this machine."""
        return self._local is not None

    # --- paths -----------------------------------------------------------------------------------

    def path(self, job_id: str, name: str) -> str:
        """The location of a job's file ``name`` (local path or URI)."""
        check_job_id(job_id)
        return f"{self.uri}/{job_id}/{name}"

    def local_path(self, job_id: str, name: str) -> Path | None:
        """The job's file as a local path, or None when the store is not local."""
        check_job_id(job_id)
        return None if self._local is None else self._local / job_id / name

    # --- records ---------------------------------------------------------------------------------

    def create(self, record: JobRecord) -> JobRecord:
        """Store a new job's record.

        Raises:
            JobStoreError: A job with this id exists already.
        """
        if self.exists(record.job_id):
            raise JobStoreError(self.path(record.job_id, ""), "a job with this id exists already")
        return self.put(record)

    def put(self, record: JobRecord) -> JobRecord:
        """Write a record (stamped with ``updated_at``) and return what was written."""
        stamped = replace(record, updated_at=datetime.now(UTC))
        self.write_text(record.job_id, RECORD_FILE, _dumps(stamped.to_dict()))
        return stamped

    def get(self, job_id: str) -> JobRecord:
        """The stored record of a job.

        Raises:
            NotFoundError: No job has this id.
            JobStoreError: The record is not readable.
        """
        text = self.read_text(job_id, RECORD_FILE)
        if text is None:
            raise NotFoundError(
                "job", job_id, hint=f"no record in {self.uri}; see 'feast-spark jobs list'"
            )
        return _parse_record(text, self.path(job_id, RECORD_FILE))

    def exists(self, job_id: str) -> bool:
        """Whether a record for ``job_id`` is stored."""
        return self.read_text(job_id, RECORD_FILE) is not None

    def list(
        self,
        *,
        state: JobState | str | None = None,
        table: str | None = None,
        job_type: str | None = None,
        project: str | None = None,
    ) -> builtins.list[JobRecord]:
        """Stored records, newest first, optionally filtered.

        A record that cannot be read is left out here (one broken folder must not hide every
        other job) and reported by :meth:`unreadable`.
        """
        wanted = JobState(state) if state is not None else None
        records = []
        for job_id in self._job_ids():
            text = self.read_text(job_id, RECORD_FILE)
            if text is None:
                continue
            try:
                record = _parse_record(text, self.path(job_id, RECORD_FILE))
            except JobStoreError:
                continue
            if wanted is not None and record.state != wanted:
                continue
            if table is not None and table not in record.tables:
                continue
            if job_type is not None and record.job_type != job_type:
                continue
            if project is not None and record.project != project:
                continue
            records.append(record)
        return sorted(records, key=lambda r: (r.submitted_at, r.job_id), reverse=True)

    def unreadable(self) -> builtins.list[JobStoreError]:
        """One error per job folder whose record exists but cannot be read (empty, cut short)."""
        problems = []
        for job_id in self._job_ids():
            text = self.read_text(job_id, RECORD_FILE)
            if text is None:
                continue
            try:
                _parse_record(text, self.path(job_id, RECORD_FILE))
            except JobStoreError as error:
                problems.append(error)
        return problems

    def delete(self, job_id: str) -> None:
        """Remove a job's folder: its record, spec, log and result."""
        storage.delete_dir(self.path(job_id, "").rstrip("/"))

    # --- files -----------------------------------------------------------------------------------

    def read_text(self, job_id: str, name: str) -> str | None:
        """A job's file as text, or None when it does not exist."""
        try:
            return storage.read_text(self.path(job_id, name), kind="job file")
        except NotFoundError:
            return None

    def write_text(self, job_id: str, name: str, text: str) -> None:
        """Write a job's file (atomically on a local file system)."""
        storage.write_text(self.path(job_id, name), text)

    def read_json(self, job_id: str, name: str) -> dict[str, Any] | None:
        """A job's JSON file, or None when it does not exist or is not a JSON object."""
        text = self.read_text(job_id, name)
        if text is None:
            return None
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return None
        return data if isinstance(data, dict) else None

    def write_json(self, job_id: str, name: str, data: dict[str, Any]) -> None:
        """Write a job's JSON file."""
        self.write_text(job_id, name, _dumps(data))

    def _job_ids(self) -> builtins.list[str]:
        return [name for name in storage.list_dirs(self.uri) if _JOB_ID.match(name)]


def check_job_id(job_id: str) -> str:
    """Return ``job_id`` if it can name a folder (letters, digits, ``.``, ``_``, ``-``).

    Raises:
        JobStoreError: It cannot.
    """
    if not _JOB_ID.match(job_id):
        raise JobStoreError(
            job_id,
            "a job id is 1-200 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return job_id


def _parse_record(text: str, where: str) -> JobRecord:
    try:
        return JobRecord.from_dict(json.loads(text))
    except ValueError as error:  # json.JSONDecodeError is a ValueError
        raise JobStoreError(where, f"not a readable job record: {error}") from None


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=1, sort_keys=True) + "\n"
