"""Historical retrieval job: a point-in-time correct training dataset.

    ./spark-submit.sh --master 'local[2]' historical_retrieval --spec /path/or/uri/of/spec.json

The spec (job_type "historical_retrieval") carries the requested tables with their entities,
the feature references, the entity source and the output location and format. The work is
feast_spark.spark.training_data; this file wires it up and writes the dataset, then the result
record (feast_spark.spark.job_entry).
"""

from __future__ import annotations

import dataclasses
import sys
from datetime import datetime
from typing import TYPE_CHECKING

from feast_spark.errors import FeastSparkError, JobSpecError
from feast_spark.feature_refs import features_by_table, parse_feature_refs
from feast_spark.job_results import JobResult
from feast_spark.spark.job_entry import JobProgress, run_job, succeeded
from feast_spark.specs import HistoricalRetrievalOptions, JobSpec

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def run(
    spark: SparkSession, spec: JobSpec, started_at: datetime, progress: JobProgress
) -> JobResult:
    """Build the dataset, write it, and return the SUCCEEDED record."""
    from pyspark import StorageLevel
    from pyspark.errors import AnalysisException
    from pyspark.sql import Observation
    from pyspark.sql import functions as F  # noqa: N812

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

    key_sets = [tables[name].entities for name in features]
    entity_rows = prepare_entity_rows(
        spark, options.entity_source, entities, key_sets, options.join_tuning
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
        {name: spec.offline_table_path(name) for name in features},
        options.join_tuning,
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
            raise FeastSparkError(
                f"output '{options.output_path}' already exists; choose another output path "
                "or delete it (datasets are never overwritten)"
            ) from None
        raise
    finally:
        entity_rows.rows.unpersist()
    rows = int(counted.get["rows"])
    progress.rows_written = rows
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
        },
    )


def main(argv: list[str] | None = None, *, spark: SparkSession | None = None) -> int:
    """Run the job; ``spark`` is for tests (a given session is used and left running)."""
    return run_job("historical_retrieval", run, argv, spark=spark)


if __name__ == "__main__":
    sys.exit(main())
