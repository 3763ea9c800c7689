"""``feast-spark serve``: the online store over HTTP, with Feast's JSON contract.

- :mod:`~feast_spark.server.contract`  request parsing and response rendering (Feast's shapes)
- :mod:`~feast_spark.server.app`       the ASGI app: routes as plain functions
- :mod:`~feast_spark.server.state`     a worker's definitions (registry TTL) and online store
- :mod:`~feast_spark.server.metrics`   Prometheus metrics, summed over worker processes
- :mod:`~feast_spark.server.workers`   uvicorn with N workers and graceful SIGTERM

This package imports :mod:`feast_spark.online`, never pyspark. Nothing here is imported by
``import feast_spark``.
"""
