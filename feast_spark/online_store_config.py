"""The ``online_store`` section of ``feature_store.yaml``: SQLite or Cassandra, typed and validated.

Pure Python; :mod:`feast_spark.config` reads the file and re-exports these names.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from feast_spark import storage
from feast_spark.config_reader import ConfigReader, identifier, resolve_location
from feast_spark.errors import ConfigError

CONSISTENCY_LEVELS = (
    "ANY", "ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_QUORUM", "EACH_QUORUM", "LOCAL_ONE",
)  # fmt: skip


@dataclass(frozen=True)
class TlsConfig:
    """TLS to Cassandra.

    Attributes:
        ca_cert: PEM file of the certificate authority to trust.
        client_cert: PEM client certificate, for mutual TLS.
        client_key: PEM client key, for mutual TLS.
        check_hostname: Whether the server's name must match its certificate.
    """

    ca_cert: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    check_hostname: bool = True


@dataclass(frozen=True)
class SqliteOnlineStoreConfig:
    """The embedded online store: one SQLite file, for local mode.

    Attributes:
        path: The database file.
    """

    path: str
    type: str = "sqlite"


@dataclass(frozen=True)
class CassandraOnlineStoreConfig:
    """Apache Cassandra as the online store.

    Attributes:
        hosts: Contact points.
        port: CQL native port.
        keyspace: Keyspace holding one table per project feature table.
        replication: Keyspace replication, e.g. ``{class: SimpleStrategy, replication_factor: 1}``
            or ``{class: NetworkTopologyStrategy, dc1: 3}``.
        read_consistency: Consistency level of online reads.
        write_consistency: Consistency level of materialization writes.
        local_dc: Data center for DC-aware, token-aware load balancing (None: driver default).
        username_env: Environment variable holding the user name (authentication is off if unset).
        password_env: Environment variable holding the password.
        tls: TLS settings, or None for plain connections.
        request_timeout_s: Per-request timeout.
        write_concurrency: In-flight writes per Spark task.
    """

    hosts: tuple[str, ...] = ("127.0.0.1",)
    port: int = 9042
    keyspace: str = "feast"
    replication: Mapping[str, Any] = field(
        default_factory=lambda: {"class": "SimpleStrategy", "replication_factor": 1}
    )
    read_consistency: str = "LOCAL_ONE"
    write_consistency: str = "LOCAL_QUORUM"
    local_dc: str | None = None
    username_env: str = "FEAST_SPARK_CASSANDRA_USERNAME"
    password_env: str = "FEAST_SPARK_CASSANDRA_PASSWORD"
    tls: TlsConfig | None = None
    request_timeout_s: float = 10.0
    write_concurrency: int = 64
    type: str = "cassandra"

    @property
    def credentials(self) -> tuple[str, str] | None:
        """(user, password) from the environment, or None when authentication is off."""
        user = os.environ.get(self.username_env)
        if not user:
            return None
        return user, os.environ.get(self.password_env, "")


OnlineStoreConfig = SqliteOnlineStoreConfig | CassandraOnlineStoreConfig


def parse_online_store(
    reader: ConfigReader, data: Any, base: Path, registry_dir: str
) -> OnlineStoreConfig:
    """The ``online_store`` section (omitted: SQLite beside the registry)."""
    if data is None:
        default = f"{registry_dir}/online_store.db"
        # SQLite opens plain paths: a file: registry's folder is given as one.
        return SqliteOnlineStoreConfig(path=storage.local_path(default) or default)
    kind = reader.section(data, "online_store", required={"type"}, allow_extra=True)["type"]
    if kind == "sqlite":
        section = reader.section(data, "online_store", required={"type"}, optional={"path"})
        path = reader.string(section.get("path", "online_store.db"), "online_store.path")
        resolved = resolve_location(path, base)
        resolved = storage.local_path(resolved) or resolved  # SQLite opens plain paths
        if Path(resolved).is_dir():
            raise reader.fail(
                "online_store.path", path, f"is a folder; name a file in it, e.g. {path}/online.db"
            )
        return SqliteOnlineStoreConfig(path=resolved)
    if kind != "cassandra":
        raise reader.fail("online_store.type", kind, "use 'sqlite' or 'cassandra'")
    defaults = CassandraOnlineStoreConfig()
    section = reader.section(
        data,
        "online_store",
        required={"type"},
        optional={
            "hosts", "port", "keyspace", "replication", "read_consistency", "write_consistency",
            "local_dc", "username_env", "password_env", "tls", "request_timeout_s",
            "write_concurrency",
        },
    )  # fmt: skip
    hosts = section.get("hosts", list(defaults.hosts))
    if isinstance(hosts, str):
        hosts = [h.strip() for h in hosts.split(",")]
    if not isinstance(hosts, list) or not hosts or not all(isinstance(h, str) for h in hosts):
        raise reader.fail("online_store.hosts", hosts, "must be a list of hosts")
    keyspace = identifier(
        section.get("keyspace", defaults.keyspace), "online_store.keyspace", reader
    )
    return CassandraOnlineStoreConfig(
        hosts=tuple(hosts),
        port=reader.integer(section.get("port", defaults.port), "online_store.port", 1, 65535),
        keyspace=keyspace,
        replication=parse_replication(reader, section.get("replication", defaults.replication)),
        read_consistency=reader.choice(
            section.get("read_consistency", defaults.read_consistency),
            "online_store.read_consistency",
            CONSISTENCY_LEVELS,
        ),
        write_consistency=reader.choice(
            section.get("write_consistency", defaults.write_consistency),
            "online_store.write_consistency",
            CONSISTENCY_LEVELS,
        ),
        local_dc=reader.optional_string(section.get("local_dc"), "online_store.local_dc"),
        username_env=reader.string(
            section.get("username_env", defaults.username_env), "online_store.username_env"
        ),
        password_env=reader.string(
            section.get("password_env", defaults.password_env), "online_store.password_env"
        ),
        tls=parse_tls(reader, section.get("tls"), base),
        request_timeout_s=reader.number(
            section.get("request_timeout_s", defaults.request_timeout_s),
            "online_store.request_timeout_s",
        ),
        write_concurrency=reader.integer(
            section.get("write_concurrency", defaults.write_concurrency),
            "online_store.write_concurrency",
            1,
            4096,
        ),
    )


def parse_online_store_mapping(
    mapping: Mapping[str, Any], *, source: str = "job spec"
) -> OnlineStoreConfig:
    """An ``online_store`` mapping (a job spec's, or a file's section) as a typed config.

    Validated exactly as the section of ``feature_store.yaml`` is (unknown keys are errors);
    relative SQLite paths resolve against the working directory.

    Raises:
        ConfigError: Not a mapping, an unknown key or a bad value (blamed on ``source``).
    """
    if not isinstance(mapping, Mapping):
        raise ConfigError("online_store", mapping, source, "must be a mapping with a 'type'")
    return parse_online_store(ConfigReader(source, {}), dict(mapping), Path.cwd(), ".")


def serialize_online_store(config: OnlineStoreConfig) -> dict[str, Any]:
    """Inverse of :func:`parse_online_store_mapping`: the JSON/YAML form, for a job spec."""
    data = asdict(config)
    if isinstance(config, CassandraOnlineStoreConfig):
        data["hosts"] = list(config.hosts)
        data["replication"] = dict(config.replication)
        if config.tls is None:
            data.pop("tls")
    return data


def parse_replication(reader: ConfigReader, data: Any) -> dict[str, Any]:
    """``online_store.replication``: a keyspace replication map Cassandra accepts."""
    key = "online_store.replication"
    if not isinstance(data, Mapping) or "class" not in data:
        raise reader.fail(key, data, "must be a mapping with a 'class'")
    strategy = data["class"]
    factors = {k: v for k, v in data.items() if k != "class"}
    if strategy == "SimpleStrategy":
        if set(factors) != {"replication_factor"}:
            raise reader.fail(key, data, "SimpleStrategy takes exactly 'replication_factor'")
    elif strategy == "NetworkTopologyStrategy":
        if not factors:
            raise reader.fail(key, data, "NetworkTopologyStrategy needs a factor per data center")
    else:
        raise reader.fail(
            f"{key}.class", strategy,
            "use SimpleStrategy (one data center) or NetworkTopologyStrategy",
        )  # fmt: skip
    for dc, factor in factors.items():
        reader.integer(factor, f"{key}.{dc}", 1, 100)
    return {"class": strategy, **factors}


def parse_tls(reader: ConfigReader, data: Any, base: Path) -> TlsConfig | None:
    """``online_store.tls``: omitted or false for plain connections."""
    if data is None or data is False:
        return None
    if data is True:
        return TlsConfig()
    section = reader.section(
        data,
        "online_store.tls",
        optional={"enabled", "ca_cert", "client_cert", "client_key", "check_hostname"},
    )
    if not reader.boolean(section.get("enabled", True), "online_store.tls.enabled"):
        return None

    def path(name: str) -> str | None:
        value = reader.optional_string(section.get(name), f"online_store.tls.{name}")
        return resolve_location(value, base) if value else None

    return TlsConfig(
        ca_cert=path("ca_cert"),
        client_cert=path("client_cert"),
        client_key=path("client_key"),
        check_hostname=reader.boolean(
            section.get("check_hostname", True), "online_store.tls.check_hostname"
        ),
    )
