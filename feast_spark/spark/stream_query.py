"""The long-running part of a stream ingestion job: start the query, watch it, stop it cleanly.

:func:`run_stream` creates the online table (and, with ``--to both``, the offline table), starts
a Structured Streaming query from the table's Kafka topic into
:class:`feast_spark.spark.stream.BatchWriter`, then watches it until

- the stop file of its options appears (``feast-spark stream stop``): the query is stopped
  between micro-batches, the checkpoint consistent, and the job SUCCEEDS;
- the process gets SIGTERM or SIGINT (``jobs cancel``): the same stop, as far as the dying JVM
  allows (every write is idempotent, so a batch cut short is replayed whole at the next start);
- the query fails: the job FAILS with the query's error.

While it runs, the job writes a progress record (JSON, at the options' ``progress_path``) every
few seconds: the totals of :class:`~feast_spark.spark.stream.StreamTotals` and, from the query's
last progress, the input and processed rates and the Kafka lag (offsets behind the latest).
The checkpoint (options' ``checkpoint_path``) holds the offsets: a new start resumes from it.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from pyspark.sql import SparkSession

from feast_spark.definitions import FeatureTable
from feast_spark.definitions.stream_sources import KafkaSource
from feast_spark.errors import JobSpecError, NotFoundError
from feast_spark.online.base import OnlineTableSchema
from feast_spark.online.stores import open_online_store
from feast_spark.online_store_config import serialize_online_store
from feast_spark.spark.offline_store import ensure_table
from feast_spark.spark.rejected_rows import rejected_table_path
from feast_spark.spark.stream import BatchWriter, StreamTotals, kafka_reader
from feast_spark.specs import JobSpec, StreamOptions
from feast_spark.storage import read_text, write_text

_log = logging.getLogger("feast_spark.spark.stream_query")

#: Seconds between two looks at the stop file and two progress records.
POLL_S = 1
PROGRESS_EVERY_S = 5.0


def run_stream(
    spark: SparkSession,
    spec: JobSpec,
    *,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    install_signals: bool = True,
) -> dict[str, Any]:
    """Run the spec's stream until it is asked to stop; return its final figures.

    Args:
        spark: The session.
        spec: A ``stream_ingestion`` spec: one table with a ``stream_source``, the online
            store, and :class:`~feast_spark.specs.StreamOptions`.
        on_progress: Also called with each progress record (the job passes its JobProgress).
        install_signals: Stop on SIGTERM/SIGINT (only possible in the main thread).

    Returns:
        The last progress record (``stopped_by`` says why it ended).

    Raises:
        JobSpecError: The spec does not describe one stream.
        pyspark.errors.StreamingQueryException: The query failed.
    """
    options, table, source = _check(spec)
    store = serialize_online_store(options.online_store)
    schema = OnlineTableSchema.of(spec.project, table, spec.entities)
    with open_online_store(store) as online:
        online.ensure_table(schema)
    offline_path = spec.offline_table_path(table.name)
    entities = [e for e in spec.entities if e.name in table.entities]
    if options.to == "both":
        ensure_table(spark, offline_path, table, entities)
    writer = BatchWriter(
        table=table,
        entities=entities,
        source=source,
        schema=schema,
        store=store,
        rejected_path=rejected_table_path(offline_path),
        future_allowance=spec.future_allowance,
        offline_path=offline_path if options.to == "both" else None,
        checkpoint_path=options.checkpoint_path,
    )
    stream = (
        kafka_reader(spark, source)
        .writeStream.foreachBatch(writer)
        .option("checkpointLocation", options.checkpoint_path)
        .queryName(f"feast_spark_{spec.project}_{table.name}")
    )
    if options.trigger_interval_s is not None:
        stream = stream.trigger(processingTime=f"{options.trigger_interval_s} seconds")
    stop = _StopRequest(install_signals)
    query = stream.start()
    # The query id persists across restarts from the checkpoint: Delta's txnAppId.
    writer.start(f"feast-spark-stream-{query.id}")
    _log.info("stream %s (query %s, run %s) started", table.name, query.id, query.runId)
    record: dict[str, Any] = {}
    last_record = 0.0
    try:
        while query.isActive:
            reason = stop.reason or _stop_file(options.stop_path)
            if reason:
                stop.reason = reason
                _log.info("stopping the stream of %s: %s", table.name, reason)
                writer.close()  # the batch in progress ends first: no write is cut short
                _wait_for_trigger_end(query)  # and Spark commits it: not replayed at the next start
                query.stop()
                break
            query.awaitTermination(POLL_S)
            if time.monotonic() - last_record >= PROGRESS_EVERY_S:
                record = _record(query, writer.totals, spec, options, on_progress)
                last_record = time.monotonic()
        exception = query.exception()
        if exception is not None and not stop.reason:
            raise exception
    finally:
        stop.restore()
    record = _record(query, writer.totals, spec, options, on_progress, stopped_by=stop.reason)
    return record


def _wait_for_trigger_end(query: Any, timeout_s: float = 60.0) -> None:
    """Wait until the query is between triggers (its last batch committed in the checkpoint)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if not query.isActive or not query.status.get("isTriggerActive"):
                return
        except Exception:  # the JVM is going away (a cancel): nothing to wait for
            return
        time.sleep(0.1)


def _check(spec: JobSpec) -> tuple[StreamOptions, FeatureTable, KafkaSource]:
    if len(spec.feature_tables) != 1:
        raise JobSpecError(
            "feature_tables", f"a stream job reads one table, got {len(spec.feature_tables)}"
        )
    table = spec.feature_tables[0]
    source = table.stream_source
    if source is None:
        raise JobSpecError("feature_tables", f"table '{table.name}' has no stream_source")
    if not isinstance(spec.options, StreamOptions):
        raise JobSpecError("options", "a stream job takes stream options")
    return spec.options, table, source


def _stop_file(path: str) -> str | None:
    try:
        text = read_text(path, kind="stop request")
    except NotFoundError:
        return None
    return f"stop requested ({text.strip() or path})"


class _StopRequest:
    """SIGTERM/SIGINT set a reason instead of killing the driver at once."""

    def __init__(self, install: bool) -> None:
        self.reason: str | None = None
        self._previous: dict[int, Any] = {}
        if install:
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._previous[signum] = signal.signal(signum, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.reason = f"signal {signal.Signals(signum).name}"

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _record(
    query: Any,
    totals: StreamTotals,
    spec: JobSpec,
    options: StreamOptions,
    on_progress: Callable[[dict[str, Any]], None] | None,
    *,
    stopped_by: str | None = None,
) -> dict[str, Any]:
    """The progress record now; written to ``progress_path`` and passed to ``on_progress``."""
    record: dict[str, Any] = {
        "job_id": spec.job_id,
        "table": spec.feature_tables[0].name,
        "to": options.to,
        "updated_at": datetime.now(UTC).isoformat(),
        **totals.to_dict(),
        **query_rates(_last_progress(query)),
    }
    if stopped_by is not None:
        record["stopped_by"] = stopped_by
    if options.progress_path:
        try:
            write_text(options.progress_path, json.dumps(record, sort_keys=True) + "\n")
        except OSError as error:  # progress is informative: never fail the stream for it
            _log.warning("cannot write progress to %s: %s", options.progress_path, error)
    if on_progress is not None:
        on_progress(record)
    return record


def _last_progress(query: Any) -> dict[str, Any] | None:
    try:
        progress = query.lastProgress
    except Exception:  # the JVM is going away (a cancel): no rates
        return None
    return dict(progress) if progress else None


def query_rates(progress: dict[str, Any] | None) -> dict[str, Any]:
    """Rates and Kafka lag from a ``StreamingQueryProgress`` document (None: all unknown).

    Example::

        {"inputRowsPerSecond": 1000.0, "processedRowsPerSecond": 2500.0,
         "durationMs": {"triggerExecution": 412},
         "sources": [{"metrics": {"maxOffsetsBehindLatest": "17"}}]}
        -> {"input_rows_per_s": 1000.0, "processed_rows_per_s": 2500.0,
            "last_trigger_s": 0.412, "kafka_lag": 17}
    """
    if not progress:
        return {"input_rows_per_s": None, "processed_rows_per_s": None,
                "last_trigger_s": None, "kafka_lag": None}  # fmt: skip
    lag: int | None = None
    for source in progress.get("sources") or []:
        behind = (source.get("metrics") or {}).get("maxOffsetsBehindLatest")
        if behind is not None:
            lag = (lag or 0) + int(float(behind))
    trigger_ms = (progress.get("durationMs") or {}).get("triggerExecution")
    return {
        "input_rows_per_s": _rate(progress.get("inputRowsPerSecond")),
        "processed_rows_per_s": _rate(progress.get("processedRowsPerSecond")),
        "last_trigger_s": None if trigger_ms is None else round(trigger_ms / 1000, 3),
        "kafka_lag": lag,
    }


def _rate(value: Any) -> float | None:
    try:
        return None if value is None else round(float(value), 1)
    except (TypeError, ValueError):
        return None
