"""Connecting the Cassandra store: the driver's cluster, its execution profiles, TLS.

One execution profile per kind of request, so each runs at its own consistency: reads at
``read_consistency``, writes at ``write_consistency`` and the reads of stored rows before writes
(:mod:`feast_spark.online.cassandra_writes`) at the write consistency (ONE for ANY, which cannot
read), so quorum writes see each other.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Final

from feast_spark.config import CassandraOnlineStoreConfig, TlsConfig
from feast_spark.errors import ConfigError, OnlineStoreError
from feast_spark.online.cassandra_cql import ERRORS, STORE, driver_errors

if TYPE_CHECKING:
    from cassandra.cluster import Cluster, Session

#: Execution profile of reads.
READ_PROFILE: Final = "feast_spark_read"
#: Execution profile of writes (and of repair: deletes, truncation).
WRITE_PROFILE: Final = "feast_spark_write"
#: Reads of stored versions before writes: at the write consistency (ANY cannot read: ONE), so
#: with quorum writes they see every acknowledged write.
VERSION_PROFILE: Final = "feast_spark_versions"


def ssl_context(tls: TlsConfig) -> ssl.SSLContext:
    """The client SSL context for ``tls``.

    Verifies the server against ``ca_cert`` (else the system's CAs), checks its name unless
    disabled, and presents a client certificate if one is given.

    Raises:
        ConfigError: A certificate or key file cannot be loaded.
    """
    try:
        context = ssl.create_default_context(cafile=tls.ca_cert)
    except (OSError, ssl.SSLError) as error:
        raise ConfigError(
            "online_store.tls.ca_cert", tls.ca_cert, "online_store.tls",
            ERRORS["tls_file"].format(what="the CA certificate", path=tls.ca_cert, error=error),
        ) from None  # fmt: skip
    context.check_hostname = tls.check_hostname
    if tls.client_cert:
        try:
            context.load_cert_chain(tls.client_cert, tls.client_key)
        except (OSError, ssl.SSLError) as error:
            raise ConfigError(
                "online_store.tls.client_cert", tls.client_cert, "online_store.tls",
                ERRORS["tls_file"].format(
                    what="the client certificate and key", path=tls.client_cert, error=error
                ),
            ) from None  # fmt: skip
    return context


def describe_connect_error(error: BaseException) -> str:
    """A failed connection as one line: each host tried with its error, else the error."""
    errors = getattr(error, "errors", None)
    if isinstance(errors, dict) and errors:
        return "; ".join(f"{host}: {type(e).__name__}: {e}" for host, e in errors.items())
    return f"{type(error).__name__}: {error}"


def connect(config: CassandraOnlineStoreConfig, target: str) -> tuple[Cluster, Session]:
    """Connect to the cluster of ``config`` with the store's execution profiles.

    Args:
        config: The online store's settings.
        target: The contact points as ``host:port,...``, for error messages.

    Returns:
        The driver's cluster (shut it down to close) and its session.

    Raises:
        OnlineStoreError: No host answers (names the hosts tried and the driver's error).
        ConfigError: A TLS file cannot be loaded.
    """
    from cassandra import ConsistencyLevel
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
    from cassandra.query import tuple_factory

    def profile(consistency: str) -> ExecutionProfile:
        return ExecutionProfile(
            load_balancing_policy=TokenAwarePolicy(
                DCAwareRoundRobinPolicy(local_dc=config.local_dc or "")
            ),
            consistency_level=ConsistencyLevel.name_to_value[consistency],
            request_timeout=config.request_timeout_s,
            row_factory=tuple_factory,
        )

    credentials = config.credentials
    cluster = Cluster(
        list(config.hosts),
        port=config.port,
        execution_profiles={
            EXEC_PROFILE_DEFAULT: profile(config.write_consistency),
            READ_PROFILE: profile(config.read_consistency),
            WRITE_PROFILE: profile(config.write_consistency),
            VERSION_PROFILE: profile(
                "ONE" if config.write_consistency == "ANY" else config.write_consistency
            ),
        },
        auth_provider=PlainTextAuthProvider(*credentials) if credentials else None,
        ssl_context=ssl_context(config.tls) if config.tls else None,
        connect_timeout=config.request_timeout_s,
    )
    try:
        session = cluster.connect()
    except driver_errors() as error:
        cluster.shutdown()
        raise OnlineStoreError(
            STORE,
            target,
            ERRORS["unreachable"].format(errors=describe_connect_error(error)),
        ) from error
    return cluster, session
