"""Which local jobs a warm driver runs, and the command that hands one to it.

A warm driver (``feast-spark driver start``: :mod:`feast_spark.warm_drivers`) is a long-lived
local Spark driver of one project. While it answers, the launcher sends it each local batch job
(``warm_protocol.WARM_JOB_TYPES``) whose Spark settings and environment it can honour, instead
of starting a spark-submit: the supervisor then runs :mod:`feast_spark.launcher.warm_client`,
which hands the job to the driver and relays its output, so tracking, logs, cancel and exit
records are those of any local job. A job runs in a session of its own
(``SparkSession.newSession``) with the job's session settings (``spark.sql.*``,
``spark.databricks.delta.*``) applied.

A job runs in its own spark-submit, as without a warm driver, when

- no driver is recorded for the store, or the recorded one does not answer a ping;
- a setting that only a new JVM can take differs (jars, memory, the feast_spark zip, which
  changes with the code, a secret, ...): :func:`plan_session`;
- an environment variable a job reads differs (:data:`ENV_PREFIXES`: credentials, the pause
  hook of the fault suite, ...): the driver's Python workers keep the environment of its start.

The JVM options the launcher sizes for a short run (C1 only, the class archive) are left out of
the comparison: they tune a fresh JVM, and the warm one is not fresh.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from feast_spark import storage, warm_protocol
from feast_spark.errors import NotFoundError
from feast_spark.launcher.job_store import JobStore
from feast_spark.launcher.processes import JOB_ID_ENV
from feast_spark.launcher.sizing import DRIVER_JAVA_OPTIONS
from feast_spark.launcher.submit import (
    JobLaunch,
    SparkSettings,
    SparkTarget,
    effective_conf,
    is_secret_setting,
)

DRIVER_JOB_TYPE = "warm_driver"
# Settings a session can take at run time (Spark SQL's and Delta's); the daemon checks each one
# with ``RuntimeConfig.isModifiable`` before it accepts a job (static SQL settings are refused).
SESSION_PREFIXES = ("spark.sql.", "spark.databricks.delta.")
ENV_PREFIXES = (
    "FEAST_SPARK_", "AWS_", "AZURE_", "GOOGLE_", "HADOOP_", "JAVA_", "PYSPARK_", "SPARK_",
    "PYTHON", "TZ",
)  # fmt: skip
_POINTER_FOLDER = "_warm_driver"  # beside the job folders, like _datasets: not a job id
_POINTER_FILE = "current.json"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WarmDriver:
    """The warm driver recorded for a job store.

    Attributes:
        job_id: Its job (``jobs list`` shows it RUNNING; ``jobs cancel`` stops it).
        socket: The Unix socket it listens on.
        conf: The Spark settings it was started with, secret values as hashes.
        env: The environment variables it was started with (:data:`ENV_PREFIXES`), as hashes.
    """

    job_id: str
    socket: str
    conf: Mapping[str, str]
    env: Mapping[str, str]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form kept in the job store."""
        return {
            "job_id": self.job_id,
            "socket": self.socket,
            "conf": dict(self.conf),
            "env": dict(self.env),
        }


@dataclass(frozen=True)
class SessionPlan:
    """How a job's settings compare with a warm driver's.

    Attributes:
        session_conf: Settings to apply to the job's session (they differ, a session takes them).
        differences: Keys that differ and only a new JVM could take: the job cannot run there.
    """

    session_conf: Mapping[str, str]
    differences: tuple[str, ...]


def fingerprint_conf(conf: Mapping[str, str]) -> dict[str, str]:
    """``conf`` with secret values replaced by their hashes (what the job store may keep)."""
    return {
        key: _hash(value) if is_secret_setting(key, value) else value for key, value in conf.items()
    }


def fingerprint_env(env: Mapping[str, str]) -> dict[str, str]:
    """Hashes of the variables of ``env`` that jobs read (:data:`ENV_PREFIXES`)."""
    return {
        key: _hash(value)
        for key, value in sorted(env.items())
        if key.startswith(ENV_PREFIXES) and key != JOB_ID_ENV
    }


def plan_session(driver_conf: Mapping[str, str], job_conf: Mapping[str, str]) -> SessionPlan:
    """Compare a job's fingerprinted settings with the driver's.

    >>> plan_session({"spark.jars": "a.jar", "spark.sql.shuffle.partitions": "2"},
    ...              {"spark.jars": "a.jar", "spark.sql.shuffle.partitions": "4"})
    SessionPlan(session_conf={'spark.sql.shuffle.partitions': '4'}, differences=())
    >>> plan_session({"spark.driver.memory": "1g"}, {"spark.driver.memory": "4g"}).differences
    ('spark.driver.memory',)
    """
    session: dict[str, str] = {}
    differences: list[str] = []
    for key in sorted({*driver_conf, *job_conf}):
        value = job_conf.get(key)
        if value == driver_conf.get(key):
            continue
        settable = (
            key.startswith(SESSION_PREFIXES)
            and value is not None  # a session cannot unset what the driver was started with
            and not is_secret_setting(key, value)  # only its hash is known here
        )
        if settable and value is not None:
            session[key] = value
        else:
            differences.append(key)
    return SessionPlan(session, tuple(differences))


def read_driver(store: JobStore) -> WarmDriver | None:
    """The warm driver recorded for ``store`` (it may have ended since), or None."""
    try:
        doc = json.loads(storage.read_text(_pointer(store), kind="warm driver record"))
    except (NotFoundError, ValueError):
        return None  # none, or damaged: as if none were recorded
    try:
        return WarmDriver(
            job_id=str(doc["job_id"]),
            socket=str(doc["socket"]),
            conf={str(k): str(v) for k, v in dict(doc["conf"]).items()},
            env={str(k): str(v) for k, v in dict(doc["env"]).items()},
        )
    except (KeyError, TypeError, ValueError):
        return None


def write_driver(store: JobStore, driver: WarmDriver) -> None:
    """Record ``driver`` as the store's warm driver."""
    storage.write_text(_pointer(store), json.dumps(driver.to_dict(), indent=2, sort_keys=True))


def clear_driver(store: JobStore, job_id: str) -> None:
    """Forget the recorded driver if it is ``job_id`` (a newer one stays)."""
    driver = read_driver(store)
    if driver is not None and driver.job_id == job_id:
        storage.delete_dir(f"{store.uri}/{_POINTER_FOLDER}")


def comparable_conf(
    target: SparkTarget, launch: JobLaunch, settings: SparkSettings
) -> dict[str, str]:
    """A job's effective settings, less the JVM options sized for a fresh JVM, fingerprinted."""
    fresh_jvm_only = {k: v for k, v in launch.sized.items() if k != DRIVER_JAVA_OPTIONS}
    return fingerprint_conf(effective_conf(target, replace(launch, sized=fresh_jvm_only), settings))


def route(
    store: JobStore,
    target: SparkTarget,
    launch: JobLaunch,
    settings: SparkSettings,
    job_type: str,
    env: Mapping[str, str],
) -> list[str] | None:
    """The command that runs a job in the store's warm driver, or None to run it as usual.

    Args:
        store: The job store (where the driver is recorded).
        target: Where jobs run; only a local master has warm drivers.
        launch: The job's part of the command (its file, arguments and settings).
        settings: What every job is given.
        job_type: Its type; only ``WARM_JOB_TYPES`` go to a warm driver.
        env: The environment spark-submit would get.
    """
    if target.kind != "local" or job_type not in warm_protocol.WARM_JOB_TYPES:
        return None
    driver = read_driver(store)
    if driver is None:
        return None
    job_id = launch.job_id
    plan = plan_session(driver.conf, comparable_conf(target, launch, settings))
    if plan.differences:
        log.info("job %s runs in its own spark-submit: %s differ from warm driver %s",
                 job_id, ", ".join(plan.differences), driver.job_id)  # fmt: skip
        return None
    changed_env = sorted(set(driver.env.items()) ^ set(fingerprint_env(env).items()))
    if changed_env:
        names = ", ".join(sorted({key for key, _ in changed_env}))
        log.info("job %s runs in its own spark-submit: environment %s differs from warm "
                 "driver %s", job_id, names, driver.job_id)  # fmt: skip
        return None
    try:
        answer = warm_protocol.ask(
            driver.socket, {"op": "check", "session_conf": dict(plan.session_conf)}
        )
    except OSError as error:
        log.info("job %s runs in its own spark-submit: warm driver %s does not answer (%s)",
                 job_id, driver.job_id, error)  # fmt: skip
        return None
    if not answer.get("ok"):
        log.info("job %s runs in its own spark-submit: warm driver %s refused it (%s)",
                 job_id, driver.job_id, answer.get("reason"))  # fmt: skip
        return None
    return client_command(
        driver, job_id, job_type, launch.job_file, launch.app_args, plan.session_conf
    )


def client_command(
    driver: WarmDriver,
    job_id: str,
    job_type: str,
    job_file: str,
    app_args: Sequence[str],
    session_conf: Mapping[str, str],
) -> list[str]:
    """The supervisor's command for a job run by ``driver`` (:mod:`.warm_client`).

    >>> client_command(WarmDriver("d1", "/tmp/s.sock", {}, {}), "j1", "ingest", "/jobs/ingest.py",
    ...                ("--spec", "/s.json"), {})[2:]  # doctest: +NORMALIZE_WHITESPACE
    ['feast_spark.launcher.warm_client', '--socket', '/tmp/s.sock', '--driver-job', 'd1',
     '--job-id', 'j1', '--job-type', 'ingest', '--job-file', '/jobs/ingest.py',
     '--session-conf', '{}', '--', '--spec', '/s.json']
    """
    return [
        sys.executable, "-m", "feast_spark.launcher.warm_client",
        "--socket", driver.socket, "--driver-job", driver.job_id,
        "--job-id", job_id, "--job-type", job_type, "--job-file", job_file,
        "--session-conf", json.dumps(dict(session_conf), sort_keys=True),
        "--", *app_args,
    ]  # fmt: skip


def _pointer(store: JobStore) -> str:
    return f"{store.uri}/{_POINTER_FOLDER}/{_POINTER_FILE}"


def _hash(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode("utf-8")).hexdigest()
