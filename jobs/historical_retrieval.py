"""Historical retrieval job: a point-in-time correct training dataset.

    ./spark-submit.sh --master 'local[2]' historical_retrieval --spec /path/or/uri/of/spec.json

The spec (job_type "historical_retrieval") carries the requested tables with their entities,
the feature references, the entity source and the output location and format. The work is
feast_spark.spark.training_data; this file wires it up and writes the dataset, its dataset record
when the spec asks for one (feast_spark.datasets: the versions read, pinned at the start by
feast_spark.spark.dataset_pins), then the result record (feast_spark.spark.job_entry).
"""

from __future__ import annotations

import dataclasses
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import feast_spark
from feast_spark.datasets import DatasetRecord, write_record
from feast_spark.errors import FeastSparkError, JobSpecError
from feast_spark.feature_refs import features_by_table, parse_feature_refs
from feast_spark.job_results import JobResult
from feast_spark.spark.job_entry import JobProgress, run_job, succeeded
from feast_spark.specs import HistoricalRetrievalOptions, JobSpec

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from feast_spark.spark.dataset_pins import DatasetPins


def run(
    spark: SparkSession, spec: JobSpec, started_at: datetime, progress: JobProgress
) -> JobResult:
    """Build the dataset, write it, and return the SUCCEEDED record."""
    from feast_spark.spark.dataset_pins import time_travel_past_retention

    options = spec.options
    if (
        isinstance(options, HistoricalRetrievalOptions)
        and options.dataset
        and options.dataset.rebuild_of
    ):
        # A rebuild reads old versions, each checked to still have every file.
        with time_travel_past_retention(spark):
            return _run(spark, spec, started_at, progress)
    return _run(spark, spec, started_at, progress)


def _run(
    spark: SparkSession, spec: JobSpec, started_at: datetime, progress: JobProgress
) -> JobResult:
    from pyspark import StorageLevel
    from pyspark.errors import AnalysisException
    from pyspark.sql import Observation
    from pyspark.sql import functions as F  # noqa: N812

    from feast_spark.spark.dataset_pins import pin_dataset
    from feast_spark.spark.training_data import build_training_dataset, prepare_entity_rows

    options = spec.options
    if not isinstance(options, HistoricalRetrievalOptions):
        raise JobSpecError("options", "a historical retrieval job needs its options")
    tables = {t.name: t for t in spec.feature_tables}
    features = features_by_table(parse_feature_refs(options.feature_refs, tables))
    needed = {name for table in features for name in tables[table].entities}
    entities = [e for e in spec.entities if e.name in needed]
    if len(entities) != len(needed):
        missing = sorted(needed - {e.name for e in entities})
        raise JobSpecError("entities", f"no definition of {', '.join(missing)}")

    if _exists(spark, options.output_path):
        # Checked for every format: Delta's errorifexists only refuses an existing Delta table
        # and would write its log and files into any other folder (e.g. a parquet dataset).
        raise _output_exists(options.output_path)
    paths = {name: spec.offline_table_path(name) for name in features}
    # Pinned once, before anything is read: the dataset record names exactly what was read.
    pins = pin_dataset(spark, spec.job_id, options, paths)
    key_sets = [tables[name].entities for name in features]
    entity_rows = prepare_entity_rows(
        spark,
        pins.entity_source if pins else options.entity_source,
        entities,
        key_sets,
        options.join_tuning,
    )
    # The join reads the entity rows once per key set (time ranges) and once for the union:
    # read and convert the source once.
    entity_rows = dataclasses.replace(
        entity_rows, rows=entity_rows.rows.persist(StorageLevel.MEMORY_AND_DISK)
    )
    dataset = build_training_dataset(
        spark,
        entity_rows,
        [tables[name] for name in features],
        features,
        paths,
        options.join_tuning,
        table_versions=pins.table_versions if pins else None,
    )
    counted = Observation("rows")
    try:
        (
            dataset.observe(counted, F.count(F.lit(1)).alias("rows"))
            .write.format(options.output_format)
            .mode("errorifexists")
            .save(options.output_path)
        )
    except AnalysisException as error:
        if "PATH_ALREADY_EXISTS" in str(error) or "already exists" in str(error):
            raise _output_exists(options.output_path) from None
        raise
    finally:
        entity_rows.rows.unpersist()
    rows = int(counted.get["rows"])
    progress.rows_written = rows
    if pins is not None:
        _write_dataset_record(spec, options, pins, paths, rows, dataset.columns)
    return succeeded(
        spec,
        started_at,
        rows_read=rows,
        rows_written=rows,
        details={
            "output_path": options.output_path,
            "output_format": options.output_format,
            "columns": dataset.columns,
            "entity_time_range": [
                entity_rows.earliest.isoformat(),
                entity_rows.latest.isoformat(),
            ],
            **({"dataset_id": spec.job_id, "table_versions": pins.table_versions} if pins else {}),
        },
    )


def _output_exists(path: str) -> FeastSparkError:
    return FeastSparkError(
        f"output '{path}' already exists; choose another output path "
        "or delete it (datasets are never overwritten)"
    )


def _exists(spark: SparkSession, path: str) -> bool:
    """Whether ``path`` (a path or URI of any Hadoop file system) exists, file or folder."""
    jvm = spark.sparkContext._jvm
    if jvm is None:  # pragma: no cover - a classic session always has its JVM
        return False
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    return bool(
        hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).exists(hadoop_path)
    )


def _write_dataset_record(
    spec: JobSpec,
    options: HistoricalRetrievalOptions,
    pins: DatasetPins,
    paths: dict[str, str],
    rows: int,
    columns: list[str],
) -> None:
    wanted = options.dataset
    if wanted is None:  # pragma: no cover - pins exist only with dataset options
        return
    record = DatasetRecord(
        dataset_id=spec.job_id,
        project=spec.project,
        created_at=datetime.now(UTC),
        feature_refs=options.feature_refs,
        entity_source=pins.entity_record,
        tables={
            name: {"path": paths[name], "version": version}
            for name, version in pins.table_versions.items()
        },
        entities=tuple(e.to_dict() for e in spec.entities),
        feature_tables=tuple(t.to_dict() for t in spec.feature_tables),
        registry_revision=wanted.registry_revision,
        feast_spark_version=feast_spark.__version__,
        rows=rows,
        columns=tuple(columns),
        output_path=options.output_path,
        output_format=options.output_format,
        join_tuning=options.join_tuning.to_dict(),
        rebuild_of=wanted.rebuild_of,
    )
    write_record(wanted.record_path, record)


def main(argv: list[str] | None = None, *, spark: SparkSession | None = None) -> int:
    """Run the job; ``spark`` is for tests (a given session is used and left running)."""
    return run_job("historical_retrieval", run, argv, spark=spark)


if __name__ == "__main__":
    sys.exit(main())
