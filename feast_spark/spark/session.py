"""One way to build a SparkSession with Delta Lake and ``conf/spark-defaults.conf``.

Where the settings come from, lowest precedence first:

1. ``conf/spark-defaults.conf``, the only place feast-spark's Spark defaults are written down
   (UTC, Delta extension and catalog, AQE, ...). ``./spark-submit.sh`` passes the same file as
   ``--properties-file``, so a notebook, a test and a cluster job run with the same settings.
   The file is looked up in ``$FEAST_SPARK_CONF_DIR``, then in the ``conf/`` folder of the
   source tree this module lives in, then in ``<prefix>/share/feast-spark/conf/`` where an
   installed package puts it (setup.cfg ``[options.data_files]``). We read the file rather than
   keep the same keys as a Python constant, so there is one copy to change.
2. The Delta jars: ``spark.jars`` with local files, from ``$FEAST_SPARK_JARS_DIR`` or ``.jars/``
   (pre-seeded, air-gapped) when they are there, else the pinned set of
   ``feast_spark/jars.lock`` downloaded once per machine into the jar cache. See
   :func:`feast_spark.spark_conf.delta_jars_conf`; and feast-spark's own jar
   (:func:`feast_spark.spark_conf.jars_conf`).
3. The caller's ``conf`` and ``master``.
4. Above all: whatever the running Spark already has. Inside ``spark-submit`` (or with a live
   SparkContext) the JVM was configured before Python started; settings it already has are
   left alone, and only missing ones are added.

Finding and parsing the defaults file and choosing the jars live in :mod:`feast_spark.spark_conf`
(pure Python), which ``./spark-submit.sh`` and the launcher use too. This module imports pyspark
only inside :func:`build_spark_session`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from feast_spark.delta_sizing import SNAPSHOT_PARTITIONS, snapshot_partitions
from feast_spark.spark_conf import (
    DELTA_PACKAGE,
    delta_jars_conf,
    find_defaults_file,
    jars_conf,
    merge_conf,
    read_properties,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def build_spark_session(
    app_name: str = "feast-spark",
    *,
    master: str | None = None,
    conf: Mapping[str, str] | None = None,
) -> SparkSession:
    """Get or create the SparkSession, with Delta Lake and feast-spark's Spark defaults.

    Example:
        >>> spark = build_spark_session("my-job", master="local[2]",
        ...                             conf={"spark.sql.shuffle.partitions": "2"})
        >>> spark.conf.get("spark.sql.session.timeZone")
        'UTC'

    Args:
        app_name: ``spark.app.name``, unless the running Spark (spark-submit) already set one.
        master: ``spark.master``, e.g. ``local[2]`` or ``spark://host:7077``; ``None`` leaves it
            to spark-submit (``--master``), whose default is ``local[*]``.
        conf: More Spark settings; they override ``conf/spark-defaults.conf``. ``spark.jars`` and
            ``spark.jars.packages`` are added to the Delta jars rather than replacing them.

    Returns:
        The active SparkSession. When a SparkContext is already running, or when called inside
        ``spark-submit``, this is the session of that Spark: keys it already has keep their
        values, and only keys it does not have are set.

    Raises:
        ConfigError: No ``spark-defaults.conf`` could be found (and Spark is not already
            configured by spark-submit), the file cannot be parsed, or the jar environment
            variables are invalid (see :func:`feast_spark.spark_conf.delta_jars_conf`).
        JarDownloadError: The jar cache had to be filled and a jar could not be downloaded.
    """
    from pyspark.sql import SparkSession

    running = _running_conf()
    layers: list[Mapping[str, str]] = [{"spark.app.name": app_name}]
    defaults_file = find_defaults_file(required=not running)
    if defaults_file is not None:
        layers.append(read_properties(defaults_file))
    if not running:
        # Jars only matter when this call starts the JVM; a running one cannot take them.
        layers.append(jars_conf())
    layers.append(dict(conf or {}))
    if master is not None:
        layers.append({"spark.master": master})

    builder = SparkSession.builder
    for key, value in merge_conf(layers).items():
        if key not in running:
            builder = builder.config(key, value)
    return builder.getOrCreate()


def stop_session(spark: SparkSession) -> None:
    """Stop ``spark`` at the end of a job, without PySpark's wait for its accumulator server.

    ``SparkContext.stop`` shuts that server down and waits for it, and its handler looks for the
    shutdown flag once a second: about half a second of every job, waiting. When a job stops its
    session every task has ended, and each task's accumulator updates arrived before its end, so
    there is nothing left to receive; the server's thread is a daemon and ends with the process.
    (``_accumulatorServer`` is PySpark's own attribute; without it, this is ``spark.stop()``.)
    """
    context = spark.sparkContext
    server = getattr(context, "_accumulatorServer", None)
    if server is not None:
        server.server_shutdown = True
        context._accumulatorServer = None  # type: ignore[assignment]
    spark.stop()


def size_delta_snapshots(spark: SparkSession, table_paths: Iterable[str]) -> int | None:
    """Size Delta's snapshot partitions to the tables' logs, unless the submission set them.

    The launcher passes the value to spark-submit; a job started another way (``spark-submit.sh``
    from a scheduler or a cluster's own submit) would snapshot even a one-commit table with Delta's
    default of 50 tasks. The logs are measured through Hadoop's file system, with the job's own
    credentials; one that cannot be measured leaves Delta's default.

    Returns:
        The partitions set, or None when nothing was set.
    """
    if spark.sparkContext.getConf().contains(SNAPSHOT_PARTITIONS):
        return None
    total = 0
    for path in table_paths:
        size = delta_log_bytes(spark, path)
        if size is None:
            return None
        total += size
    partitions = snapshot_partitions(total)
    spark.conf.set(SNAPSHOT_PARTITIONS, str(partitions))
    return partitions


def delta_log_bytes(spark: SparkSession, table_path: str) -> int | None:
    """Bytes under ``<table>/_delta_log`` (0: no table yet; None: it cannot be measured)."""
    from py4j.protocol import Py4JJavaError

    context = spark.sparkContext
    jvm = context._jvm
    if jvm is None:  # pragma: no cover - a classic session always has its JVM
        return None
    log = jvm.org.apache.hadoop.fs.Path(f"{table_path.rstrip('/')}/_delta_log")
    try:
        files = log.getFileSystem(context._jsc.hadoopConfiguration())
        if not files.exists(log):
            return 0
        return int(files.getContentSummary(log).getLength())
    except Py4JJavaError:  # no permission, an unreachable store: not worth failing the job
        return None


def _running_conf() -> dict[str, str]:
    """Settings of a Spark that is already configured, or ``{}`` when this call will start it.

    A live SparkContext has its conf. Inside spark-submit, Python is started by the JVM
    (``PYSPARK_GATEWAY_PORT`` is set) and ``SparkConf()`` holds what was submitted
    (``--properties-file``, ``--conf``, ``--jars``, ...), before any context exists.
    """
    from pyspark import SparkConf, SparkContext

    context = SparkContext._active_spark_context
    if context is not None:
        return dict(context.getConf().getAll())
    if "PYSPARK_GATEWAY_PORT" in os.environ:
        # Connect to spark-submit's JVM first: an unconnected SparkConf() is empty.
        SparkContext._ensure_initialized()
        return dict(SparkConf().getAll())
    return {}


__all__ = ["DELTA_PACKAGE", "build_spark_session", "delta_jars_conf"]
