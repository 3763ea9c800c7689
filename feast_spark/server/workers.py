"""Running the server: uvicorn with N worker processes sharing one port.

- Each worker builds its own app (:func:`feast_spark.server.app.create_app`), so each holds one
  online-store session with its own prepared statements; the kernel spreads connections over them.
- Metrics of every worker are added up on any worker's ``/metrics``: the parent points
  ``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder (removed at exit) unless it is set already.
- SIGTERM (or Ctrl-C) stops accepting connections, lets requests in flight finish for up to
  ``shutdown_timeout_s``, closes the stores and returns normally, so the command exits 0.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
from types import FrameType

from feast_spark.errors import AddressInUseError
from feast_spark.server.settings import MULTIPROC_ENV, SETTINGS_ENV, ServeSettings

APP: str = "feast_spark.server.app:create_app"
#: Seconds an idle keep-alive connection stays open (Feast's server: 30; longer than uvicorn's 5 s
#: default so a client's pooled connections are not closed under it between bursts).
KEEP_ALIVE_S: int = 30


def check_port(host: str, port: int) -> None:
    """Fail early, in one line, when the address cannot be bound.

    Raises:
        AddressInUseError: The port is in use or the host is not an address of this machine.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise AddressInUseError(host, port, error.strerror or str(error)) from None


def serve(settings: ServeSettings, *, log_level: str = "info") -> None:
    """Serve until SIGTERM or Ctrl-C; returns once every worker has drained.

    Raises:
        AddressInUseError: The address cannot be bound.
    """
    import uvicorn

    server = settings.server
    check_port(server.host, server.port)
    os.environ[SETTINGS_ENV] = settings.to_env()
    own_metrics_dir = not os.environ.get(MULTIPROC_ENV)
    if own_metrics_dir:
        os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="feast-spark-metrics-")

    # uvicorn re-raises the signal it stopped on after draining, with the handler it found:
    # this one, so the process ends normally (exit 0) instead of dying of SIGTERM.
    def drained(_signum: int, _frame: FrameType | None) -> None:
        pass

    previous = signal.signal(signal.SIGTERM, drained)
    try:
        uvicorn.run(
            APP,
            factory=True,
            host=server.host,
            port=server.port,
            workers=server.workers,
            timeout_graceful_shutdown=int(server.shutdown_timeout_s) or 1,
            timeout_keep_alive=KEEP_ALIVE_S,
            access_log=False,
            log_level=log_level,
            server_header=False,
            lifespan="on",
        )
    finally:
        signal.signal(signal.SIGTERM, previous)
        if own_metrics_dir:
            shutil.rmtree(os.environ.pop(MULTIPROC_ENV), ignore_errors=True)
