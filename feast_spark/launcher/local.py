"""Jobs whose driver runs in a spark-submit process on this machine.

That is every job of a local master (``local[*]``) and every client-deploy-mode job on a cluster
(standalone, YARN, Kubernetes): the process is the source of truth. spark-submit runs under the
supervisor (:mod:`feast_spark.launcher.supervisor`), which records its pid and, at the end, its
exit status in the job store, so a process that did not start the job still learns how it ended:

- ``exit.json`` present: SUCCEEDED (exit 0), FAILED (other), or CANCELLED (stopped on request);
  present but unreadable: FAILED, saying so;
- no ``exit.json``, supervisor alive (same pid, start time and job id: see
  :mod:`feast_spark.launcher.processes`): RUNNING;
- no ``exit.json``, supervisor gone (or the machine rebooted since: another boot id): FAILED (it
  was killed with SIGKILL or the machine restarted), unless the job's result record says it
  succeeded.

Process ids mean something only on the machine that launched the job (``JobRecord.host``). From
another machine nothing is guessed from local pids: the job's state is what the store says
(``exit.json`` once the supervisor wrote it, else the last stored state), and a cancel is a
request written into the job's record, which the supervisor on the job's host reads and carries
out. A job whose host is gone for good is marked ABANDONED with ``Launcher.abandon``.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from feast_spark.launcher import environment, logparse, processes
from feast_spark.launcher.base import Observation
from feast_spark.launcher.class_archive import ClassArchive
from feast_spark.launcher.job_store import EXIT_FILE, LOG_FILE, PROCESS_FILE, JobStore
from feast_spark.launcher.records import JobRecord, JobState
from feast_spark.spark_conf import SOURCE_ROOT

# A job whose supervisor never reported within this time did not start.
START_TIMEOUT = timedelta(minutes=5)
# Popen objects of supervisors started by this process, kept so they can be reaped (no zombies).
_CHILDREN: dict[str, subprocess.Popen[bytes]] = {}


class ProcessTarget:
    """Start, track and stop spark-submit processes on this machine.

    Args:
        store: The job store.
        log_dir: Where logs go when the store is not a local folder (they are copied into the
            store when the job ends).
        grace_s: Seconds between SIGTERM and SIGKILL when a job is cancelled.
    """

    def __init__(
        self, store: JobStore, *, log_dir: Path | None = None, grace_s: float = 20.0
    ) -> None:
        self.store = store
        self.log_dir = log_dir or environment.cache_dir() / "logs"
        self.grace_s = grace_s

    def start(
        self,
        record: JobRecord,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        remove_after: Path | None = None,
        class_archive: ClassArchive | None = None,
    ) -> JobRecord:
        """Start the supervisor of a job's spark-submit; return the record with its pid.

        ``remove_after`` (the job's secrets file) is removed by the supervisor once spark-submit
        has ended; the archive ``class_archive`` writes (if any) is kept if the job succeeded.

        Raises:
            OSError: The supervisor (this Python) cannot be started.
        """
        local_log = self.store.local_path(record.job_id, LOG_FILE)
        log_path = local_log or self.log_dir / record.job_id / LOG_FILE
        log_path.parent.mkdir(parents=True, exist_ok=True)
        request = {
            "store": self.store.uri,
            "job_id": record.job_id,
            "argv": list(argv),
            "env": dict(env),
            "log_path": str(log_path),
            "upload_log": local_log is None,
            "grace_s": self.grace_s,
            "remove_after": str(remove_after) if remove_after else None,
            "class_archive": (
                {"written": class_archive.written, "final": class_archive.final}
                if class_archive is not None and class_archive.written
                else None
            ),
        }
        # The job id in the environment of the supervisor and everything it starts: how a pid is
        # told apart from a later, unrelated process that got the same number.
        env = {**env, processes.JOB_ID_ENV: record.job_id}
        request["env"] = dict(env)
        supervisor_env = dict(env)
        supervisor_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(SOURCE_ROOT), env.get("PYTHONPATH", "")) if p
        )
        with open(log_path, "ab") as log:
            child = subprocess.Popen(
                [sys.executable, "-m", "feast_spark.launcher.supervisor"],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=supervisor_env,
                start_new_session=True,
                close_fds=True,
            )
        if child.stdin is None:  # stdin=PIPE always gives one
            raise OSError("the supervisor was started without a pipe to its stdin")
        child.stdin.write(json.dumps(request).encode("utf-8"))
        child.stdin.close()
        _CHILDREN[record.job_id] = child
        return replace(
            record,
            state=JobState.RUNNING,
            pid=child.pid,
            host=socket.gethostname(),
            log_path=str(log_path),
            started_at=datetime.now(UTC),
        )

    def observe(self, record: JobRecord) -> Observation:
        """The job's state from its exit record or its process (see the module docstring)."""
        child = _CHILDREN.get(record.job_id)
        if child is not None and child.poll() is not None:
            del _CHILDREN[record.job_id]  # reaped
        ended = self._ended(record)
        if ended is not None:
            return ended
        process = self.store.read_json(record.job_id, PROCESS_FILE) or {}
        host = process.get("host") or record.host
        if host != socket.gethostname():
            return Observation()  # only the launching machine can see the process
        pid = process.get("pid") or record.pid
        if pid is None:
            if datetime.now(UTC) - record.submitted_at > START_TIMEOUT:
                return Observation(
                    state=JobState.FAILED,
                    error=f"the job did not start within {START_TIMEOUT}",
                    outcome_known=False,
                )
            return Observation(state=JobState.PENDING)
        if _rebooted(process):
            return Observation(
                state=JobState.FAILED,
                error=(
                    f"the machine {host} restarted while the job ran (boot id "
                    f"{process.get('boot_id')} then, {processes.boot_id()} now)"
                ),
                outcome_known=False,
            )
        if processes.is_alive(int(pid), process.get("pid_start"), record.job_id):
            ui_url, app_id = record.ui_url, record.app_id
            if ui_url is None or app_id is None:
                ui_url, app_id = self._driver_facts(record)
            return Observation(state=JobState.RUNNING, pid=int(pid), ui_url=ui_url, app_id=app_id)
        child_pid = process.get("child_pid")
        if child_pid and processes.group_members(int(child_pid), record.job_id):
            # The supervisor was killed but spark-submit runs on: nobody will record its exit.
            return Observation(state=JobState.RUNNING, pid=int(pid))
        ended = self._ended(record)  # it may have written exit.json just now
        if ended is not None:
            return ended
        return Observation(
            state=JobState.FAILED,
            error=(
                f"the launcher's supervisor (pid {pid} on {record.host}) ended without recording "
                "spark-submit's exit status (killed with SIGKILL, or the machine restarted)"
            ),
            outcome_known=False,
        )

    def pause(self, record: JobRecord, seconds: float) -> None:
        """Sleep up to ``seconds``; return as soon as the job's supervisor exits.

        The supervisor writes ``exit.json`` before it exits, so its end is the job's end: one
        this process started is waited for as a child, another one on this machine through a
        pidfd (Linux). Otherwise (another machine, no pidfd, the supervisor gone while
        spark-submit runs on) this is a plain sleep: a wait that polls instead adds up to a
        poll interval to every command that waits for a job.
        """
        # A supervisor that had already ended when the pause began was seen by the look just
        # before it (the job is over, or spark-submit runs on without it): sleep, do not spin.
        child = _CHILDREN.get(record.job_id)
        if child is not None and child.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(seconds)
            return
        local = record.host == socket.gethostname()
        if child is None and record.pid is not None and local and hasattr(os, "pidfd_open"):
            try:
                handle = os.pidfd_open(record.pid)
            except OSError:
                handle = None  # gone already, or not ours to watch
            if handle is not None:
                try:
                    if not select.select([handle], [], [], 0)[0]:
                        select.select([handle], [], [], seconds)
                        return
                finally:
                    os.close(handle)
        time.sleep(seconds)

    def kill(self, record: JobRecord) -> None:
        """Ask the supervisor to stop spark-submit's process group (it records CANCELLED).

        When the supervisor is gone but spark-submit is not, its group is stopped here and the
        exit record is written here. A job of another machine is not signalled from here: the
        cancel request is in its record (``Job.cancel`` wrote it), and its supervisor acts on it.
        """
        process = self.store.read_json(record.job_id, PROCESS_FILE) or {}
        if (process.get("host") or record.host) != socket.gethostname():
            return
        if _rebooted(process):
            return  # nothing of the job survived the restart; its pids are other processes now
        pid = process.get("pid") or record.pid
        if pid is not None and processes.is_alive(
            int(pid), process.get("pid_start"), record.job_id
        ):
            processes.signal_process(int(pid), processes.TERMINATE)
            return
        child_pid = process.get("child_pid")
        if child_pid and processes.group_members(int(child_pid), record.job_id):
            processes.signal_group(int(child_pid), processes.KILL)
        if self.store.read_json(record.job_id, EXIT_FILE) is None:
            self.store.write_json(
                record.job_id,
                EXIT_FILE,
                {
                    "exit_code": None,
                    "ended_at": datetime.now(UTC).isoformat(),
                    "cancelled": True,
                    "error": "stopped by cancel: the supervisor was gone",
                },
            )

    def read_log(self, record: JobRecord) -> str | None:
        """spark-submit's output: the local file on the launching machine, else the store's copy."""
        if record.log_path and record.host == socket.gethostname():
            try:
                return Path(record.log_path).read_text(encoding="utf-8", errors="replace")
            except FileNotFoundError:
                pass
        return self.store.read_text(record.job_id, LOG_FILE)

    def _ended(self, record: JobRecord) -> Observation | None:
        exit_doc = self.store.read_json(record.job_id, EXIT_FILE)
        if exit_doc is None:
            if self.store.read_text(record.job_id, EXIT_FILE) is None:
                return None
            return Observation(  # there, but cut short or overwritten: say so, do not guess
                state=JobState.FAILED,
                error=f"the exit record {self.store.path(record.job_id, EXIT_FILE)} is unreadable",
                outcome_known=False,
            )
        code = exit_doc.get("exit_code")
        if exit_doc.get("cancelled"):
            state = JobState.CANCELLED
        elif code == 0:
            state = JobState.SUCCEEDED
        else:
            state = JobState.FAILED
        ended_at = exit_doc.get("ended_at")
        error = exit_doc.get("error")
        if error is None and isinstance(code, int) and code < 0 and state is JobState.FAILED:
            error = (
                f"spark-submit was killed by signal {_signal_name(-code)}, not by a cancel; "
                "what the job committed before that stays (each Delta commit is all or "
                "nothing): rerun the job"
            )
        return Observation(
            state=state,
            exit_code=code,
            error=error,
            ended_at=datetime.fromisoformat(ended_at) if ended_at else None,
        )

    def _driver_facts(self, record: JobRecord) -> tuple[str | None, str | None]:
        """The driver UI (on this machine) and the application id, as far as the log says yet."""
        log = self.read_log(record) or ""
        port = logparse.ui_port(log)
        ui_url = f"http://127.0.0.1:{port}" if port else logparse.ui_url(log)
        return ui_url, logparse.application_id(log)


def _rebooted(process: dict[str, object]) -> bool:
    """Whether this machine restarted since ``process.json`` was written (its boot id changed)."""
    then, now = process.get("boot_id"), processes.boot_id()
    return then is not None and now is not None and then != now


def _signal_name(number: int) -> str:
    try:
        return f"{signal.Signals(number).name} ({number})"
    except ValueError:
        return str(number)
