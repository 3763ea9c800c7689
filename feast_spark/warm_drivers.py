"""Start, stop and look at a project's warm driver (the facade behind ``feast-spark driver``).

A warm driver is a job of its own (type ``warm_driver``: ``jobs list`` shows it RUNNING, ``jobs
cancel`` stops it) whose Spark driver stays up and runs the project's small local jobs, so that
each skips the JVM start, the SparkContext and Delta's first use. It is recorded in the job store
(:mod:`feast_spark.launcher.warm`), so every later ``feast-spark`` command of the project finds
it; one runs per job store (starts are serialized by a lock file of this machine, and a start
stops drivers that no longer answer or are no longer recorded). Which jobs it runs, and when a
job runs in its own spark-submit instead: :mod:`feast_spark.launcher.warm`; what runs inside it:
:mod:`feast_spark.spark.warm_driver`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from feast_spark import warm_protocol
from feast_spark.errors import ArgumentError, JobFailedError, NotFoundError
from feast_spark.launcher import environment
from feast_spark.launcher.errors import JobTimeoutError
from feast_spark.launcher.records import JobState
from feast_spark.launcher.submit import JobLaunch, SparkSettings, SparkTarget
from feast_spark.launcher.warm import (
    DRIVER_JOB_TYPE,
    WarmDriver,
    clear_driver,
    comparable_conf,
    fingerprint_env,
    fit,
    read_driver,
    write_driver,
)
from feast_spark.specs import new_job_id

if TYPE_CHECKING:
    from feast_spark.launcher import Job, Launcher

READY_POLL_S = 0.2


@dataclass(frozen=True)
class DriverStatus:
    """A recorded warm driver, as it answers now.

    Attributes:
        job_id: Its job.
        socket: Where it listens.
        answering: Whether it answered a ping (False: stopped, killed, or still starting).
        pid: Its Python process.
        started_at: When it started serving (ISO 8601).
        jobs_run: Jobs it has run to their end.
        running: Ids of the jobs it runs now.
        runs_cold: Why a job launched from here now would run in its own spark-submit (None:
            it would run in the driver), e.g. the code changed since the driver started.
    """

    job_id: str
    socket: str
    answering: bool
    pid: int | None = None
    started_at: str | None = None
    jobs_run: int | None = None
    running: tuple[str, ...] = ()
    runs_cold: str | None = None


def driver_status(launcher: Launcher) -> DriverStatus | None:
    """The store's recorded warm driver and whether it answers, or None when none is recorded."""
    driver = read_driver(launcher.store)
    if driver is None:
        return None
    try:
        answer = warm_protocol.ask(driver.socket, {"op": "ping"})
    except OSError:
        return DriverStatus(driver.job_id, driver.socket, answering=False)
    target, settings, launch = _driver_launch(launcher, driver.job_id)
    _, runs_cold = fit(driver, target, launch, settings, launcher.job_environment(target, settings))
    return DriverStatus(
        driver.job_id,
        driver.socket,
        answering=bool(answer.get("ok")),
        pid=answer.get("pid"),
        started_at=answer.get("started_at"),
        jobs_run=answer.get("jobs_run"),
        running=tuple(answer.get("running") or ()),
        runs_cold=runs_cold,
    )


def start_driver(
    launcher: Launcher, *, timeout_s: float = 300.0, idle_timeout_s: float | None = None
) -> tuple[DriverStatus, bool]:
    """Start the project's warm driver and wait until it serves.

    Args:
        launcher: The project's launcher.
        timeout_s: How long to wait for it to serve.
        idle_timeout_s: It stops after this many seconds without a job (None: never). A job
            sent as it stops runs in its own spark-submit.

    Returns:
        Its status, and whether this call started it (False: one was already serving).

    Raises:
        ArgumentError: The launcher does not run jobs on a local master.
        JobFailedError: The driver's job ended before it served (its log says why).
        JobTimeoutError: It did not serve within ``timeout_s`` (it is cancelled).
    """
    if launcher.target.kind != "local":
        raise ArgumentError(
            "launcher.type",
            launcher.target.kind,
            "a warm driver runs the jobs of a local master (launcher.type: local); on a "
            "cluster each job keeps a driver of its own",
        )
    with _start_lock(launcher):
        status = driver_status(launcher)
        if status is not None and status.answering:
            return status, False
        if status is not None:  # killed: its socket file stayed behind
            Path(status.socket).unlink(missing_ok=True)
        _stop_unused(launcher, timeout_s)
        job_id = new_job_id(DRIVER_JOB_TYPE)
        target, settings, launch = _driver_launch(launcher, job_id)
        driver = WarmDriver(
            job_id,
            str(warm_protocol.socket_path(job_id)),
            host=socket.gethostname(),
            cwd=os.getcwd(),
            conf=comparable_conf(target, launch, settings),
            env=fingerprint_env(launcher.job_environment(target, settings)),
        )
        idle = ("--idle-timeout", str(idle_timeout_s)) if idle_timeout_s else ()
        job = launcher.submit_file(
            launch.job_file,
            job_type=DRIVER_JOB_TYPE,
            job_id=job_id,
            app_args=(*launch.app_args, *idle),
        )
        write_driver(launcher.store, driver)
        return _wait_until_serving(launcher, job, timeout_s), True


def stop_driver(launcher: Launcher, *, timeout_s: float = 60.0) -> list[str]:
    """Stop the store's warm drivers (their running jobs are cancelled); return their job ids.

    The recorded one, and any other warm driver job of this machine still running (its record
    lost or damaged).

    Raises:
        JobTimeoutError: A driver's job did not stop within ``timeout_s``.
    """
    stopped = []
    status = driver_status(launcher)
    if status is not None:
        with contextlib.suppress(NotFoundError):  # its record was pruned: nothing left to stop
            job = launcher.get(status.job_id)
            if not job.record.state.is_final:
                job.cancel(timeout=timeout_s)
                stopped.append(status.job_id)
        clear_driver(launcher.store, status.job_id)
        # A driver killed with SIGKILL leaves its socket file behind (one that stopped removed it).
        Path(status.socket).unlink(missing_ok=True)
    return stopped + _stop_unused(launcher, timeout_s)


def _driver_launch(launcher: Launcher, job_id: str) -> tuple[SparkTarget, SparkSettings, JobLaunch]:
    target = replace(launcher.target, spark_submit=launcher.spark_submit_program())
    job_file = environment.job_file(DRIVER_JOB_TYPE)
    launch = JobLaunch(job_id, str(job_file), ("--socket", str(warm_protocol.socket_path(job_id))))
    return target, launcher.settings(), launch


def _stop_unused(launcher: Launcher, timeout_s: float) -> list[str]:
    """Stop warm driver jobs of this machine that are not the recorded, answering driver."""
    recorded = read_driver(launcher.store)
    keep = recorded.job_id if recorded is not None else None
    status = driver_status(launcher)
    if status is None or not status.answering:
        keep = None
    stopped = []
    for record in launcher.list(state=JobState.RUNNING, job_type=DRIVER_JOB_TYPE):
        if record.job_id != keep and record.host == socket.gethostname():
            launcher.get(record.job_id).cancel(timeout=timeout_s)
            warm_protocol.socket_path(record.job_id).unlink(missing_ok=True)
            stopped.append(record.job_id)
    return stopped


@contextlib.contextmanager
def _start_lock(launcher: Launcher) -> Iterator[None]:
    """One ``driver start`` of a job store at a time on this machine."""
    digest = hashlib.sha256(launcher.store.uri.encode("utf-8")).hexdigest()[:16]
    path = environment.cache_dir() / "warm-driver" / f"{digest}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed
        yield


def _wait_until_serving(launcher: Launcher, job: Job, timeout_s: float) -> DriverStatus:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = driver_status(launcher)
        if status is not None and status.answering and status.job_id == job.id:
            return status
        record = job.refresh()
        if record.state.is_final:
            clear_driver(launcher.store, job.id)
            tail = "\n".join(job.logs().strip().splitlines()[-15:])
            raise JobFailedError(
                job.id,
                record.state.value,
                f"the warm driver ended before it served: {record.error or 'see its log'}\n{tail}",
            )
        time.sleep(READY_POLL_S)
    job.cancel()
    clear_driver(launcher.store, job.id)
    raise JobTimeoutError(job.id, "RUNNING", timeout_s, "the warm driver did not start serving")
