"""The settings a server process runs with: ``feature_server`` of feature_store.yaml and the flags.

Worker processes are started by uvicorn from an import string, so the parent hands them their
settings through one environment variable (:data:`SETTINGS_ENV`, JSON).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from typing import Any, Final

from feast_spark.config import FeatureServerConfig

SETTINGS_ENV: Final = "FEAST_SPARK_SERVE_SETTINGS"
#: prometheus_client's multiprocess folder; here, not in metrics.py, because the parent process
#: sets it before any worker imports prometheus_client (which reads it on import).
MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True)
class ServeSettings:
    """Everything a worker needs to serve.

    Attributes:
        config_path: feature_store.yaml (None: found as usual, from the worker's directory).
        project: Project to serve instead of the configured one.
        server: Host, port, workers, limits and timeouts (the config's, with flags applied).
    """

    config_path: str | None
    project: str | None
    server: FeatureServerConfig

    def with_flags(self, **flags: Any) -> ServeSettings:
        """A copy with the flags that were given (None: keep the configured value)."""
        given = {key: value for key, value in flags.items() if value is not None}
        return replace(self, server=replace(self.server, **given))

    def to_env(self) -> str:
        """The JSON form put in :data:`SETTINGS_ENV`."""
        return json.dumps(
            {
                "config_path": self.config_path,
                "project": self.project,
                "server": asdict(self.server),
            }
        )

    @classmethod
    def from_env(cls) -> ServeSettings:
        """The settings the parent process put in :data:`SETTINGS_ENV`.

        Raises:
            RuntimeError: The variable is not set (the app was not started by ``serve``).
        """
        raw = os.environ.get(SETTINGS_ENV)
        if not raw:
            raise RuntimeError(
                f"{SETTINGS_ENV} is not set; start the server with 'feast-spark serve'"
            )
        data = json.loads(raw)
        return cls(data["config_path"], data["project"], FeatureServerConfig(**data["server"]))
