"""Build the exact spark-submit command (or standalone REST request) of a job, and mask secrets.

Pure functions of frozen inputs: no environment, no file system, no clock, so each command is
tested by exact equality. :mod:`feast_spark.launcher.environment` gathers the inputs (the parsed
``spark-defaults.conf``, the Delta jar choice, the feast_spark zip, the Python to use).

Spark settings, lowest precedence first (later layers win; ``spark.jars``, ``spark.jars.packages``
and ``spark.submit.pyFiles`` are joined instead):

1. ``conf/spark-defaults.conf`` (UTC, Delta, AQE, ...), passed as ``--conf`` so that a cluster's
   own ``$SPARK_CONF_DIR/spark-defaults.conf`` still applies beneath it;
2. the Delta jars and our own (:func:`feast_spark.spark_conf.jars_conf`), as ``--jars`` with local
   files (resolved once per machine before the first submission), or ``--packages`` on request;
3. the Python of the driver and executors (``spark.pyspark.python``,
   ``spark.pyspark.driver.python``);
4. the settings sized to the job (:mod:`feast_spark.launcher.sizing`: Delta snapshot partitions
   from its tables' log size, JVM options of a short local run);
5. ``spark.conf`` of ``feature_store.yaml``, then the job's own settings;
6. the settings the launcher needs to track the job (:func:`tracking_conf`): not overridable.

``launcher.spark_submit_args`` go after the ``--conf`` options and before the job file.

Secrets never go on the command line, where ``ps`` shows them to every user of the machine (and
spark-submit hands its arguments on to the ``java`` command line). A setting is a secret when its
key names one (:func:`is_secret_key`) or its value holds a ``user:password@`` URL; such settings
(:func:`secret_conf`) are written by the launcher to a properties file readable only by its owner
(:func:`properties_text`), given as ``--properties-file`` with ``--load-spark-defaults`` so that
``$SPARK_CONF_DIR/spark-defaults.conf`` still applies beneath it (Spark 4.0+). ``--conf`` wins over
that file, and no secret is given as ``--conf``.

Standalone cluster mode is the one target spark-submit refuses for Python ("Cluster deploy mode
is currently not supported for python applications on standalone clusters", Spark 4.2): there the
launcher posts a ``CreateSubmissionRequest`` to the master's REST server
(:func:`build_rest_submission`), which runs ``org.apache.spark.deploy.PythonRunner`` in a driver
on a worker, the way spark-submit runs a Python job in client mode.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from feast_spark.spark_conf import merge_conf

MASK = "******"
PYTHON_RUNNER = "org.apache.spark.deploy.PythonRunner"
TARGETS = ("local", "standalone", "yarn", "kubernetes")

# Spark conf keys whose values are secrets: passwords, tokens, keys, credentials.
_SECRET_KEY = re.compile(r"(?i)(secret|passw|token|credential|private|key|auth|signature|\bsas\b)")
# user:password@ in a URL.
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+:)(?P<secret>[^@\s/]+)@")
# spark-submit options whose value is always a secret.
_SECRET_OPTIONS = frozenset({"--password", "--token"})
# Kubernetes names: lower-case alphanumerics and '-', at most 63 characters.
_K8S_INVALID = re.compile(r"[^a-z0-9-]+")
_K8S_NAME_MAX = 63


@dataclass(frozen=True)
class SparkTarget:
    """Where jobs run, as the launcher settings say.

    Attributes:
        kind: ``local``, ``standalone``, ``yarn`` or ``kubernetes``.
        master: The master URL (``local[*]``, ``spark://host:7077``, ``yarn``, ``k8s://…``).
        deploy_mode: ``client`` or ``cluster``.
        spark_submit: The spark-submit program.
        extra_args: ``launcher.spark_submit_args``, added to every command.
    """

    kind: str
    master: str
    deploy_mode: str
    spark_submit: str = "spark-submit"
    extra_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in TARGETS:
            raise ValueError(f"target {self.kind!r}; use one of {', '.join(TARGETS)}")
        if self.deploy_mode not in ("client", "cluster"):
            raise ValueError(f"deploy mode {self.deploy_mode!r}; use 'client' or 'cluster'")
        if self.kind == "local" and self.deploy_mode == "cluster":
            raise ValueError("a local master runs the driver here: use deploy mode 'client'")

    @property
    def is_cluster_mode(self) -> bool:
        """Whether the driver runs on the cluster (tracked through the cluster, not a process)."""
        return self.deploy_mode == "cluster"


@dataclass(frozen=True)
class SparkSettings:
    """What every job is given, gathered once per launcher.

    Attributes:
        defaults: The parsed ``spark-defaults.conf``.
        jars: The Delta jar choice: ``{"spark.jars": …}`` or ``{"spark.jars.packages": …}``.
        conf: ``spark.conf`` from ``feature_store.yaml``.
        py_files: The feast_spark zip (and any other Python files jobs import).
        python: The Python of the driver and the executors.
    """

    defaults: Mapping[str, str] = field(default_factory=dict)
    jars: Mapping[str, str] = field(default_factory=dict)
    conf: Mapping[str, str] = field(default_factory=dict)
    py_files: tuple[str, ...] = ()
    python: str = "python3"


@dataclass(frozen=True)
class JobLaunch:
    """One job's part of the command.

    Attributes:
        job_id: The job's id (names the Spark application and, on Kubernetes, the driver pod).
        job_file: The job's Python file.
        app_args: Its arguments, e.g. ``("--spec", "s3://bucket/jobs/<id>/spec.json")``.
        conf: Spark settings for this job only.
        sized: Settings sized to the job's inputs (:mod:`feast_spark.launcher.sizing`); below
            ``spark.conf`` and ``conf``, which a user sets on purpose.
    """

    job_id: str
    job_file: str
    app_args: tuple[str, ...] = ()
    conf: Mapping[str, str] = field(default_factory=dict)
    sized: Mapping[str, str] = field(default_factory=dict)

    @property
    def app_name(self) -> str:
        """``spark.app.name``: ``feast-spark-<job id>``."""
        return f"feast-spark-{self.job_id}"


def tracking_conf(target: SparkTarget, job: JobLaunch) -> dict[str, str]:
    """Settings the launcher relies on to track a job; they win over every other layer.

    - YARN cluster mode: spark-submit returns once YARN accepted the application (its id is in
      the output) and the application carries the job id as a tag.
    - Kubernetes cluster mode: spark-submit returns once the driver pod exists, and the pod is
      named after the job (:func:`kubernetes_pod_name`), so status and kill need no lookup.
    - Standalone cluster mode: the driver is not restarted by the master behind our back.
    """
    if not target.is_cluster_mode:
        return {}
    if target.kind == "yarn":
        return {
            "spark.yarn.submit.waitAppCompletion": "false",
            "spark.yarn.tags": f"feast-spark,{job.job_id.lower()}",
        }
    if target.kind == "kubernetes":
        return {
            "spark.kubernetes.submission.waitAppCompletion": "false",
            "spark.kubernetes.driver.pod.name": kubernetes_pod_name(job.job_id),
        }
    return {"spark.driver.supervise": "false"}


def effective_conf(target: SparkTarget, job: JobLaunch, settings: SparkSettings) -> dict[str, str]:
    """Every Spark setting of the job, merged in the order this module's docstring gives."""
    return merge_conf(
        [
            settings.defaults,
            settings.jars,
            {
                "spark.pyspark.python": settings.python,
                "spark.pyspark.driver.python": settings.python,
            },
            job.sized,
            settings.conf,
            job.conf,
            {"spark.submit.pyFiles": ",".join(settings.py_files)} if settings.py_files else {},
            tracking_conf(target, job),
        ]
    )


def is_secret_setting(key: str, value: str) -> bool:
    """Whether a setting must not appear on a command line (secret key, or password in a URL)."""
    return is_secret_key(key) or bool(_URL_PASSWORD.search(value))


def secret_conf(target: SparkTarget, job: JobLaunch, settings: SparkSettings) -> dict[str, str]:
    """The job's secret settings: what goes into its ``--properties-file``, not its command."""
    conf = effective_conf(target, job, settings)
    return {key: value for key, value in conf.items() if is_secret_setting(key, value)}


def properties_text(conf: Mapping[str, str]) -> str:
    """A Java properties file (UTF-8, as Spark reads it) holding ``conf``, sorted by key."""
    lines = ["# feast-spark: settings of one job kept off its command line"]
    lines += [f"{_escape(key, key=True)}={_escape(conf[key], key=False)}" for key in sorted(conf)]
    return "\n".join(lines) + "\n"


def build_spark_submit_command(
    target: SparkTarget,
    job: JobLaunch,
    settings: SparkSettings,
    secrets_file: str | None = None,
) -> list[str]:
    """The spark-submit argv of a job.

    Secret settings (:func:`secret_conf`) are left out; ``secrets_file`` is where the caller
    wrote them (:func:`properties_text`), given as ``--properties-file``.

    Example:
        >>> build_spark_submit_command(
        ...     SparkTarget("local", "local[2]", "client", "/spark/bin/spark-submit"),
        ...     JobLaunch("smoke-1", "/repo/jobs/smoke.py", ("/tmp/out",)),
        ...     SparkSettings(python="/venv/bin/python"),
        ... )  # doctest: +NORMALIZE_WHITESPACE
        ['/spark/bin/spark-submit', '--master', 'local[2]', '--deploy-mode', 'client',
         '--name', 'feast-spark-smoke-1',
         '--conf', 'spark.pyspark.driver.python=/venv/bin/python',
         '--conf', 'spark.pyspark.python=/venv/bin/python', '/repo/jobs/smoke.py', '/tmp/out']

    Raises:
        ValueError: Standalone cluster mode, which spark-submit refuses for Python jobs (use
            :func:`build_rest_submission`), or secret settings and no ``secrets_file``.
    """
    if target.kind == "standalone" and target.is_cluster_mode:
        raise ValueError(
            "spark-submit runs no Python job in standalone cluster mode; "
            "submit through the master's REST server (build_rest_submission)"
        )
    conf = effective_conf(target, job, settings)
    secrets = sorted(key for key, value in conf.items() if is_secret_setting(key, value))
    if secrets and secrets_file is None:
        raise ValueError(
            f"settings {', '.join(secrets)} are secrets: write them to a file "
            "(properties_text) and pass it as secrets_file, never on the command line"
        )
    for key in secrets:
        del conf[key]
    jars = conf.pop("spark.jars", "")
    packages = conf.pop("spark.jars.packages", "")
    py_files = conf.pop("spark.submit.pyFiles", "")
    conf.pop("spark.app.name", None)
    conf.pop("spark.master", None)
    conf.pop("spark.submit.deployMode", None)

    argv = [target.spark_submit, "--master", target.master, "--deploy-mode", target.deploy_mode]
    argv += ["--name", job.app_name]
    if jars:
        argv += ["--jars", jars]
    if packages:
        argv += ["--packages", packages]
    if py_files:
        argv += ["--py-files", py_files]
    if secrets_file is not None:
        argv += ["--properties-file", secrets_file, "--load-spark-defaults"]
    for key in sorted(conf):
        argv += ["--conf", f"{key}={conf[key]}"]
    argv += target.extra_args
    argv += [job.job_file, *job.app_args]
    return argv


def build_rest_submission(
    target: SparkTarget, job: JobLaunch, settings: SparkSettings, spark_version: str
) -> dict[str, Any]:
    """The ``CreateSubmissionRequest`` of a job for a standalone master's REST server.

    The driver runs ``PythonRunner`` with ``[job file, py-files, *app args]``, the arguments
    spark-submit gives it in client mode. The job file, the py-files and the Python must be at
    the same paths on the workers (a shared file system or the same image), like the job store.

    Args:
        target: A standalone target in cluster mode.
        job: The job.
        settings: What every job is given.
        spark_version: The client's Spark version (the server checks it is set).

    Returns:
        The JSON body to POST to ``<rest url>/v1/submissions/create``.
    """
    conf = effective_conf(target, job, settings)
    conf.update(
        {
            "spark.master": target.master,
            "spark.app.name": job.app_name,
            "spark.submit.deployMode": "cluster",
        }
    )
    py_files = conf.get("spark.submit.pyFiles", "")
    return {
        "action": "CreateSubmissionRequest",
        "appResource": _file_uri(job.job_file),
        "mainClass": PYTHON_RUNNER,
        "appArgs": [job.job_file, py_files, *job.app_args],
        "clientSparkVersion": spark_version,
        "environmentVariables": {},
        "sparkProperties": dict(sorted(conf.items())),
    }


def kubernetes_pod_name(job_id: str) -> str:
    """The driver pod's name: the job id made a valid Kubernetes name, ending in ``-driver``."""
    base = _K8S_INVALID.sub("-", job_id.lower()).strip("-") or "job"
    suffix = "-driver"
    return base[: _K8S_NAME_MAX - len(suffix)].rstrip("-") + suffix


# --- masking -------------------------------------------------------------------------------------


def is_secret_key(key: str) -> bool:
    """Whether a Spark setting's value is a secret (password, token, key, credential)."""
    return bool(_SECRET_KEY.search(key))


def mask_command(argv: Sequence[str]) -> list[str]:
    """A copy of a command that is safe to log and store: secret values replaced by ``******``.

    Masked: ``--conf key=value`` (and ``--conf=key=value``) where the key names a secret
    (:func:`is_secret_key`), the value of ``--password``/``--token``, and the password in
    ``scheme://user:password@host`` anywhere.

    Example:
        >>> mask_command(["spark-submit", "--conf", "spark.hadoop.fs.s3a.secret.key=abc",
        ...               "--conf", "spark.app.name=x", "jdbc://u:pw@db/x"])
        ['spark-submit', '--conf', 'spark.hadoop.fs.s3a.secret.key=******', '--conf', \
'spark.app.name=x', 'jdbc://u:******@db/x']
    """
    return _scan(argv)[0]


def secret_values(argv: Sequence[str]) -> list[str]:
    """The secret values a command carries (what :func:`mask_command` hides)."""
    return _scan(argv)[1]


def mask_properties(properties: Mapping[str, str]) -> dict[str, str]:
    """Spark settings with secret values masked (for a REST request that is logged or stored)."""
    return {
        key: _mask_setting(f"{key}={value}")[0].partition("=")[2]
        for key, value in properties.items()
    }


def mask_text(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each known secret value (4 characters or more) and URL passwords masked."""
    for secret in sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return _mask_url(text)[0]


def _scan(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    masked: list[str] = []
    secrets: list[str] = []
    previous = ""
    for arg in argv:
        if previous == "--conf":
            text, found = _mask_setting(arg)
        elif previous in _SECRET_OPTIONS:
            text, found = MASK, [arg]
        elif arg.startswith("--conf="):
            text, found = _mask_setting(arg[len("--conf=") :])
            text = "--conf=" + text
        else:
            text, found = _mask_url(arg)
        masked.append(text)
        secrets.extend(found)
        previous = arg
    return masked, secrets


def _mask_setting(setting: str) -> tuple[str, list[str]]:
    key, separator, value = setting.partition("=")
    if separator and value and is_secret_key(key):
        return f"{key}={MASK}", [value]
    return _mask_url(setting)


def _mask_url(text: str) -> tuple[str, list[str]]:
    found = [match.group("secret") for match in _URL_PASSWORD.finditer(text)]
    return _URL_PASSWORD.sub(lambda m: f"{m.group('head')}{MASK}@", text), found


def _escape(text: str, *, key: bool) -> str:
    """``text`` escaped for a properties file (backslashes, line breaks; separators in keys)."""
    special = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\f": "\\f"}
    out = []
    for index, char in enumerate(text):
        if char in special:
            out.append(special[char])
        elif (key and char in "=: #!") or (index == 0 and char == " "):
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


def _file_uri(path: str) -> str:
    return path if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", path) else f"file:{path}"
