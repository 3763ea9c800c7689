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

- no driver is recorded for the store, it was started on another machine, or it does not answer;
- the job is launched from another working folder than the driver's (a relative path in its
  spec would be read from another place);
- a setting that only a new JVM can take differs (jars, memory, the feast_spark zip, which
  changes with the code, a secret, ...): :func:`plan_session`;
- an environment variable a job reads differs: those of :data:`ENV_PREFIXES` (the pause hook
  of the fault suite, cloud credentials, ...) as the launcher saw them when the driver started,
  and those the job's spec names (``*_env`` fields: the online store's credentials), which the
  driver compares with its own: its Python workers keep the environment of its start.

Should the driver not take the job after all (stopped meanwhile), the client runs the job's own
spark-submit command, so a job is never lost to the choice.

The JVM options the launcher sizes for a short run (C1 only, the class archive) are left out of
the comparison: they tune a fresh JVM, and the warm one is not fresh.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
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
        host: The machine it runs on (its socket is there).
        cwd: Its working folder (relative paths of a job's spec resolve there).
        conf: The Spark settings it was started with, secret values as hashes.
        env: The environment variables it was started with (:data:`ENV_PREFIXES`), as hashes.
    """

    job_id: str
    socket: str
    host: str
    cwd: str
    conf: Mapping[str, str]
    env: Mapping[str, str]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form kept in the job store."""
        return {
            "job_id": self.job_id,
            "socket": self.socket,
            "host": self.host,
            "cwd": self.cwd,
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
            host=str(doc["host"]),
            cwd=str(doc["cwd"]),
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
    *,
    spec_text: str | None,
    fallback: Sequence[str],
) -> list[str] | None:
    """The command that runs a job in the store's warm driver, or None to run it as usual.

    Args:
        store: The job store (where the driver is recorded).
        target: Where jobs run; only a local master has warm drivers.
        launch: The job's part of the command (its file, arguments and settings).
        settings: What every job is given.
        job_type: Its type; only ``WARM_JOB_TYPES`` go to a warm driver.
        env: The environment spark-submit would get.
        spec_text: The job's spec (JSON), for the environment variables it names.
        fallback: The job's own spark-submit command, run if the driver does not take it.
    """
    if target.kind != "local" or job_type not in warm_protocol.WARM_JOB_TYPES:
        return None
    driver = read_driver(store)
    if driver is None:
        return None
    session_conf, reason = fit(driver, target, launch, settings, env)
    names = env_names(spec_text)
    if reason is None:
        try:
            answer = warm_protocol.ask(
                driver.socket,
                {"op": "check", "session_conf": session_conf,
                 "env": {name: env.get(name) for name in names}},
            )  # fmt: skip
            reason = None if answer.get("ok") else f"it refused it ({answer.get('reason')})"
        except OSError as error:
            reason = f"it does not answer ({error})"
    if reason is not None:
        log.info("job %s runs in its own spark-submit, not in warm driver %s: %s",
                 launch.job_id, driver.job_id, reason)  # fmt: skip
        return None
    return client_command(
        driver, launch, job_type, session_conf, env_names=names, fallback=fallback
    )


def env_names(spec_text: str | None) -> tuple[str, ...]:
    """Environment variables a job's spec names (values of its ``*_env`` fields).

    >>> env_names('{"options": {"online_store": {"password_env": "CASS_PW", "port": 9042}}}')
    ('CASS_PW',)
    """
    if not spec_text:
        return ()
    names: set[str] = set()
    stack: list[Any] = [json.loads(spec_text)]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if str(key).endswith("_env") and isinstance(value, str) and value:
                    names.add(value)
                else:
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    return tuple(sorted(names))


def client_command(
    driver: WarmDriver,
    launch: JobLaunch,
    job_type: str,
    session_conf: Mapping[str, str],
    *,
    env_names: Sequence[str] = (),
    fallback: Sequence[str] = (),
) -> list[str]:
    """The supervisor's command for a job run by ``driver`` (:mod:`.warm_client`).

    >>> client_command(WarmDriver("d1", "/tmp/s.sock", "h", "/p", {}, {}),
    ...                JobLaunch("j1", "/jobs/ingest.py", ("--spec", "/s.json")), "ingest",
    ...                {})[2:]  # doctest: +NORMALIZE_WHITESPACE
    ['feast_spark.launcher.warm_client', '--socket', '/tmp/s.sock', '--driver-job', 'd1',
     '--job-id', 'j1', '--job-type', 'ingest', '--job-file', '/jobs/ingest.py',
     '--session-conf', '{}', '--env-names', '', '--fallback', '[]', '--', '--spec', '/s.json']
    """
    return [
        sys.executable, "-m", warm_protocol.CLIENT_MODULE,
        "--socket", driver.socket, "--driver-job", driver.job_id,
        "--job-id", launch.job_id, "--job-type", job_type, "--job-file", launch.job_file,
        "--session-conf", json.dumps(dict(session_conf), sort_keys=True),
        "--env-names", ",".join(env_names),
        "--fallback", json.dumps(list(fallback)),
        "--", *launch.app_args,
    ]  # fmt: skip


def fit(
    driver: WarmDriver,
    target: SparkTarget,
    launch: JobLaunch,
    settings: SparkSettings,
    env: Mapping[str, str],
) -> tuple[dict[str, str], str | None]:
    """The job's session settings, and why it cannot run in ``driver`` (None: it can).

    What the launcher can tell alone; the driver still checks the session settings and the
    variables the spec names.
    """
    if driver.host != socket.gethostname():
        return {}, f"it runs on {driver.host}"
    if driver.cwd != os.getcwd():
        return {}, f"it runs in {driver.cwd} (relative paths would be read from there)"
    plan = plan_session(driver.conf, comparable_conf(target, launch, settings))
    if plan.differences:
        return {}, f"settings {', '.join(plan.differences)} differ"
    changed = sorted(
        {key for key, _ in set(driver.env.items()) ^ set(fingerprint_env(env).items())}
    )
    if changed:
        return {}, f"environment {', '.join(changed)} differs"
    return dict(plan.session_conf), None


def _pointer(store: JobStore) -> str:
    return f"{store.uri}/{_POINTER_FOLDER}/{_POINTER_FILE}"


def _hash(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode("utf-8")).hexdigest()
