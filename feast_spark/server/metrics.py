"""Prometheus metrics of the feature server, one ``/metrics`` for every worker process.

With several workers, ``feast-spark serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh
folder before any worker starts: each process writes its samples there and ``/metrics``, in
whichever worker answers, adds them up (prometheus-client's multiprocess mode). This module must
therefore be imported only after that variable is set, which the server's app factory ensures.

Metrics:
    ``feast_spark_serve_requests_total{route, status}``: requests answered.
    ``feast_spark_serve_request_duration_seconds{route}``: latency histogram.
    ``feast_spark_serve_store_errors_total{store}``: online-store failures (answered 503/504).
    ``feast_spark_serve_entities_per_request``: entity rows per ``/get-online-features``.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from feast_spark.server.settings import MULTIPROC_ENV

REQUESTS = Counter(
    "feast_spark_serve_requests",
    "Requests answered, by route and HTTP status.",
    ["route", "status"],
)
LATENCY = Histogram(
    "feast_spark_serve_request_duration_seconds",
    "Time from request to response, by route.",
    ["route"],
    buckets=(
        0.0005,
        0.001,
        0.002,
        0.003,
        0.005,
        0.0075,
        0.01,
        0.015,
        0.025,
        0.05,
        0.1,
        0.25,
        0.5,
        1.0,
        2.5,
        5.0,
        10.0,
    ),
)
STORE_ERRORS = Counter(
    "feast_spark_serve_store_errors", "Online store failures (unreachable, timed out).", ["store"]
)
ENTITIES = Histogram(
    "feast_spark_serve_entities_per_request",
    "Entity rows per /get-online-features request.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000),
)


def exposition() -> tuple[bytes, str]:
    """The metrics text and its content type (every worker's samples in multiprocess mode)."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
