"""``feature_store.yaml``: typed, validated settings.

Every key is checked when the file loads; an unknown key or a bad value raises a
:class:`~feast_spark.errors.ConfigError` that names the key, the value and the file. Environment
variables ``FEAST_SPARK__<KEY>__<SUBKEY>`` override keys (``FEAST_SPARK__ONLINE_STORE__PORT=9043``;
values are read as YAML scalars). Credentials never live in the file: the Cassandra user name and
password come from the environment variables named by ``username_env`` / ``password_env``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from feast_spark.config_reader import ConfigReader, identifier, resolve_location
from feast_spark.definitions.names import check_name
from feast_spark.definitions.yaml_files import DuplicateKeyError, load_yaml, yaml_problem
from feast_spark.errors import ArgumentError, ConfigError, DefinitionError

# Re-exported: the online store's settings are part of this module's public names.
from feast_spark.online_store_config import CONSISTENCY_LEVELS as CONSISTENCY_LEVELS
from feast_spark.online_store_config import CassandraOnlineStoreConfig as CassandraOnlineStoreConfig
from feast_spark.online_store_config import OnlineStoreConfig as OnlineStoreConfig
from feast_spark.online_store_config import SqliteOnlineStoreConfig as SqliteOnlineStoreConfig
from feast_spark.online_store_config import TlsConfig as TlsConfig
from feast_spark.online_store_config import parse_online_store

CONFIG_FILE_NAME = "feature_store.yaml"
CONFIG_PATH_ENV = "FEAST_SPARK_CONFIG"
OVERRIDE_PREFIX = "FEAST_SPARK__"
# Feast's default is 600 s; a minute keeps a serving process close to what was applied.
DEFAULT_REGISTRY_CACHE_TTL_SECONDS = 60.0
#: How far past a job's start an event time may lie (clock skew, producers slightly ahead).
DEFAULT_FUTURE_EVENT_TIME_ALLOWANCE = timedelta(hours=1)
MAX_FUTURE_EVENT_TIME_ALLOWANCE = timedelta(days=366)

LAUNCHER_TYPES = ("local", "standalone", "yarn", "kubernetes")
DEPLOY_MODES = ("client", "cluster")


@dataclass(frozen=True)
class FeatureServerConfig:
    """``feast-spark serve``: the HTTP feature server (flags of the command override these).

    Attributes:
        host: Address to listen on (``0.0.0.0`` for every interface).
        port: TCP port (Feast's default, 6566).
        workers: Worker processes sharing the port, each with its own online-store session.
        max_entities: Entity rows one request may ask for at most (more: HTTP 413).
        request_timeout_s: Longest wait for the online store per request (then HTTP 504).
        shutdown_timeout_s: On SIGTERM, how long requests in flight may still run.
    """

    host: str = "127.0.0.1"
    port: int = 6566
    workers: int = 1
    max_entities: int = 1000
    request_timeout_s: float = 5.0
    shutdown_timeout_s: float = 30.0


@dataclass(frozen=True)
class SparkConfig:
    """How jobs run on Spark.

    Attributes:
        master: Spark master URL (``local[*]``, ``spark://host:7077``, ``yarn``, ``k8s://…``).
        conf: Extra Spark configuration passed to every job.
    """

    master: str = "local[*]"
    conf: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_local(self) -> bool:
        """Whether the master runs everything in this machine's JVM."""
        return self.master == "local" or self.master.startswith("local[")


@dataclass(frozen=True)
class LauncherConfig:
    """How the launcher submits jobs.

    Attributes:
        type: ``local``, ``standalone``, ``yarn`` or ``kubernetes``.
        deploy_mode: ``client`` or ``cluster``.
        job_store: Where job records live (default: ``jobs/`` beside the registry).
        staging_location: Where in-memory inputs are staged for jobs (default: ``staging/``
            beside the registry); must be readable by the cluster.
        spark_submit_args: Extra spark-submit arguments for every job.
    """

    type: str = "local"
    deploy_mode: str = "client"
    job_store: str = ""
    staging_location: str = ""
    spark_submit_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class OfflineStoreConfig:
    """Where the Delta tables live.

    Attributes:
        path: Root folder or URI; each table is ``<path>/<project>/<table>``.
    """

    path: str


@dataclass(frozen=True)
class RepoConfig:
    """The whole of a ``feature_store.yaml``.

    Attributes:
        project: Default project (a namespace in the registry).
        registry: Path or URI of the registry file.
        offline_store: Delta tables.
        online_store: SQLite or Cassandra.
        spark: Spark master and configuration.
        launcher: Job submission settings.
        source: The file the settings were read from ("<defaults>" when built in code).
        registry_cache_ttl_seconds: How long a client may reuse the definitions it read for
            online reads before reading the registry again (``registry.cache_ttl_seconds``;
            0 reads it on every request). Changes applied through the same client are seen
            at once.
        feature_server: Settings of ``feast-spark serve``.
        future_event_time_allowance: Event times later than a job's start plus this are
            rejected at ingest and never materialized (``future_event_time_allowance``, 1h by
            default): online, the event time is the write timestamp, so a future one would
            hide every correct value of its key until then.
    """

    project: str
    registry: str
    offline_store: OfflineStoreConfig
    online_store: OnlineStoreConfig
    spark: SparkConfig = field(default_factory=SparkConfig)
    launcher: LauncherConfig = field(default_factory=LauncherConfig)
    source: str = "<defaults>"
    registry_cache_ttl_seconds: float = DEFAULT_REGISTRY_CACHE_TTL_SECONDS
    feature_server: FeatureServerConfig = field(default_factory=FeatureServerConfig)
    future_event_time_allowance: timedelta = DEFAULT_FUTURE_EVENT_TIME_ALLOWANCE

    def with_project(self, project: str | None, *, origin: str = "project") -> RepoConfig:
        """A copy of these settings for another project (None: unchanged).

        Args:
            project: The project, or None.
            origin: What ``project`` was given as, named by an error (``--project`` in the CLI).

        Raises:
            ArgumentError: ``project`` is not a valid name (blamed on ``origin``, not the file).
        """
        if project is None or project == self.project:
            return self
        try:
            check_name("project", project)
        except DefinitionError as error:
            raise ArgumentError(origin, project, error.reason) from None
        return replace(self, project=project)


# --- loading -------------------------------------------------------------------------------------


def find_config_path(explicit: str | None = None, cwd: str | None = None) -> Path:
    """Locate ``feature_store.yaml``: ``explicit``, else ``$FEAST_SPARK_CONFIG``, else the cwd.

    Raises:
        ConfigError: No file is there.
    """
    candidate = explicit or os.environ.get(CONFIG_PATH_ENV)
    origin = "--config" if explicit else CONFIG_PATH_ENV
    if candidate:
        path = Path(candidate)
        if path.is_dir():
            path = path / CONFIG_FILE_NAME
        if not path.is_file():
            raise ConfigError("config", str(candidate), origin, "no such file")
        return path
    path = Path(cwd or os.getcwd()) / CONFIG_FILE_NAME
    if not path.is_file():
        raise ConfigError(
            "config",
            str(path),
            "feast-spark",
            f"no {CONFIG_FILE_NAME} in {path.parent}; pass --config, set {CONFIG_PATH_ENV}, "
            "or create a project with 'feast-spark quickstart'",
        )
    return path


def load_config(path: str | os.PathLike[str] | None = None) -> RepoConfig:
    """Read, override from the environment, and validate a ``feature_store.yaml``.

    Args:
        path: The file or its folder; None searches as :func:`find_config_path` does.

    Raises:
        ConfigError: The file is missing, not YAML, or has an unknown key or a bad value.
    """
    config_path = find_config_path(str(path) if path is not None else None)
    source = str(config_path)
    try:
        text = config_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError("<file>", None, source, f"cannot be read: {error}") from None
    try:
        data = load_yaml(text) or {}
    except DuplicateKeyError as error:
        raise ConfigError(
            error.key,
            error.value,
            f"{source}:{error.line}",
            f"set twice (first at line {error.first_line}); keep one",
        ) from None
    except yaml.YAMLError as error:
        raise ConfigError(
            "<file>", None, source, f"not valid YAML: {yaml_problem(error)}"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError("<file>", data, source, "must be a mapping of keys to values")
    origins = _apply_env_overrides(data, os.environ)
    return parse_config(data, source=source, base_dir=config_path.parent, origins=origins)


def _apply_env_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    """Apply ``FEAST_SPARK__...`` variables to ``data``.

    Returns:
        Where each overridden key, and each section an override created, came from: dotted key
        -> variable name (a created section: the variable and a note that the file lacks it).
    """
    origins: dict[str, str] = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith(OVERRIDE_PREFIX):
            continue
        keys = name[len(OVERRIDE_PREFIX) :].lower().split("__")
        target = data
        for depth, key in enumerate(keys[:-1]):
            dotted = ".".join(keys[: depth + 1])
            if key not in target:
                origins.setdefault(
                    dotted, f"{name} (section '{dotted}' is not in {CONFIG_FILE_NAME})"
                )
            child = target.setdefault(key, {})
            if key == "registry" and target is data and isinstance(child, str):
                child = target[key] = {"path": child}  # the short form, opened into its section
            if not isinstance(child, dict):
                raise ConfigError(".".join(keys), raw, name, f"'{key}' is not a section")
            target = child
        try:
            target[keys[-1]] = yaml.safe_load(raw)
        except yaml.YAMLError:
            target[keys[-1]] = raw
        origins[".".join(keys)] = name
    return origins


def parse_config(
    data: Mapping[str, Any],
    *,
    source: str = "<defaults>",
    base_dir: Path | None = None,
    origins: Mapping[str, str] | None = None,
) -> RepoConfig:
    """Validate a configuration mapping (as read from YAML) into a :class:`RepoConfig`.

    Relative paths are resolved against ``base_dir`` (the config file's folder). ``origins``
    names where overridden keys came from (dotted key -> environment variable), so that an
    error blames the variable rather than the file.
    """
    base = base_dir or Path.cwd()
    reader = ConfigReader(source, origins or {})
    top = reader.section(
        data,
        "",
        required={"project", "registry", "offline_store"},
        optional={
            "online_store",
            "spark",
            "launcher",
            "feature_server",
            "future_event_time_allowance",
        },
    )
    project = identifier(top["project"], "project", reader)
    registry, cache_ttl = _registry(reader, top["registry"], base)
    offline = reader.section(top["offline_store"], "offline_store", required={"path"})
    offline_store = OfflineStoreConfig(
        path=resolve_location(reader.string(offline["path"], "offline_store.path"), base)
    )
    registry_dir = registry.rsplit("/", 1)[0] if "/" in registry else "."
    online_store = parse_online_store(reader, top.get("online_store"), base, registry_dir)
    spark = _spark(reader, top.get("spark"))
    launcher = _launcher(reader, top.get("launcher"), base, registry_dir)
    if isinstance(online_store, SqliteOnlineStoreConfig) and not spark.is_local:
        raise reader.fail(
            "online_store.type",
            "sqlite",
            f"the embedded SQLite online store works only with a local Spark master, not "
            f"'{spark.master}': executors on other machines cannot write to one file; "
            "configure online_store.type: cassandra",
        )
    return RepoConfig(
        project, registry, offline_store, online_store, spark, launcher, source, cache_ttl,
        _feature_server(reader, top.get("feature_server")),
        _future_allowance(reader, top.get("future_event_time_allowance")),
    )  # fmt: skip


def _feature_server(reader: ConfigReader, data: Any) -> FeatureServerConfig:
    defaults = FeatureServerConfig()
    section = reader.section(
        data or {},
        "feature_server",
        optional={
            "host", "port", "workers", "max_entities", "request_timeout_s", "shutdown_timeout_s",
        },
    )  # fmt: skip
    key = "feature_server."
    return FeatureServerConfig(
        host=reader.string(section.get("host", defaults.host), key + "host"),
        port=reader.integer(section.get("port", defaults.port), key + "port", 1, 65535),
        workers=reader.integer(section.get("workers", defaults.workers), key + "workers", 1, 64),
        max_entities=reader.integer(
            section.get("max_entities", defaults.max_entities), key + "max_entities", 1, 100_000
        ),
        request_timeout_s=reader.number(
            section.get("request_timeout_s", defaults.request_timeout_s), key + "request_timeout_s"
        ),
        shutdown_timeout_s=reader.number(
            section.get("shutdown_timeout_s", defaults.shutdown_timeout_s),
            key + "shutdown_timeout_s",
        ),
    )


def _registry(reader: ConfigReader, data: Any, base: Path) -> tuple[str, float]:
    """``registry: PATH``, or Feast's ``registry: {path: PATH, cache_ttl_seconds: N}``."""
    if not isinstance(data, Mapping):
        path = reader.file_location(data, "registry", base)
        return path, DEFAULT_REGISTRY_CACHE_TTL_SECONDS
    section = reader.section(data, "registry", required={"path"}, optional={"cache_ttl_seconds"})
    ttl = section.get("cache_ttl_seconds", DEFAULT_REGISTRY_CACHE_TTL_SECONDS)
    if (
        isinstance(ttl, bool)
        or not isinstance(ttl, int | float)
        or not math.isfinite(ttl)
        or ttl < 0
    ):
        raise reader.fail(
            "registry.cache_ttl_seconds", ttl, "must be a number of seconds >= 0, e.g. 60"
        )
    return reader.file_location(section["path"], "registry.path", base), float(ttl)


def _spark(reader: ConfigReader, data: Any) -> SparkConfig:
    if data is None:
        return SparkConfig()
    section = reader.section(data, "spark", optional={"master", "conf"})
    conf = section.get("conf") or {}
    if not isinstance(conf, Mapping):
        raise reader.fail("spark.conf", conf, "must be a mapping")
    return SparkConfig(
        master=reader.string(section.get("master", "local[*]"), "spark.master"),
        conf={str(k): _spark_value(v) for k, v in conf.items()},
    )


def _spark_value(value: Any) -> str:
    # YAML turns `true` into a bool; Spark wants the lower-case string.
    return str(value).lower() if isinstance(value, bool) else str(value)


def _launcher(reader: ConfigReader, data: Any, base: Path, registry_dir: str) -> LauncherConfig:
    section = reader.section(
        data or {},
        "launcher",
        optional={"type", "deploy_mode", "job_store", "staging_location", "spark_submit_args"},
    )
    args = section.get("spark_submit_args") or []
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise reader.fail("launcher.spark_submit_args", args, "must be a list of strings")
    job_store = section.get("job_store")
    staging = section.get("staging_location")
    return LauncherConfig(
        type=reader.choice(section.get("type", "local"), "launcher.type", LAUNCHER_TYPES),
        deploy_mode=reader.choice(
            section.get("deploy_mode", "client"), "launcher.deploy_mode", DEPLOY_MODES
        ),
        job_store=reader.folder_location(job_store, "launcher.job_store", base)
        if job_store
        else f"{registry_dir}/jobs",
        staging_location=reader.folder_location(staging, "launcher.staging_location", base)
        if staging
        else f"{registry_dir}/staging",
        spark_submit_args=tuple(args),
    )


def _future_allowance(reader: ConfigReader, value: Any) -> timedelta:
    """``future_event_time_allowance``: a duration (``1h``, ``30m``, ``3600s``, seconds)."""
    from feast_spark.definitions.durations import parse_duration

    key = "future_event_time_allowance"
    if value is None:
        return DEFAULT_FUTURE_EVENT_TIME_ALLOWANCE
    try:
        allowance = parse_duration(value)
    except ValueError as error:
        raise ConfigError(key, value, reader.source, str(error)) from None
    if not timedelta(0) <= allowance <= MAX_FUTURE_EVENT_TIME_ALLOWANCE:
        raise ConfigError(key, value, reader.source, "must be between 0s and 366d")
    return allowance
