"""Smoke job: prove that Spark, Delta Lake and time travel work where this job runs.

    ./spark-submit.sh --master 'local[2]' smoke /tmp/feast-spark-smoke

Writes a two-row Delta table at PATH (replacing what is there), appends one row, reads both
versions back with time travel and prints one JSON line, e.g.

    {"job": "smoke", "path": "/tmp/feast-spark-smoke", "versions": [{"version": 0, "rows": 2},
     {"version": 1, "rows": 3}], "time_zone": "UTC", "shuffle_partitions": "2", ...}

Exit status 0 when both versions hold the expected rows, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from feast_spark.spark.session import build_spark_session

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

SCHEMA = "id INT, name STRING"
FIRST = [(1, "a"), (2, "b")]
APPENDED = [(3, "c")]


def run(spark: SparkSession, path: str) -> dict[str, Any]:
    from delta.tables import DeltaTable

    def latest_version() -> int:
        last = DeltaTable.forPath(spark, path).history(1).select("version").first()
        if last is None:
            raise RuntimeError(f"Delta table at {path} has no history")
        return int(last["version"])

    spark.createDataFrame(FIRST, SCHEMA).write.format("delta").mode("overwrite").save(path)
    first_version = latest_version()
    spark.createDataFrame(APPENDED, SCHEMA).write.format("delta").mode("append").save(path)
    second_version = latest_version()

    versions = []
    for version, expected in ((first_version, FIRST), (second_version, FIRST + APPENDED)):
        table = spark.read.format("delta").option("versionAsOf", version).load(path)
        rows = sorted((row["id"], row["name"]) for row in table.collect())
        versions.append({"version": version, "rows": len(rows), "ok": rows == sorted(expected)})

    return {
        "job": "smoke",
        "path": path,
        "versions": versions,
        "ok": all(v["ok"] for v in versions),
        "spark_version": spark.version,
        "master": spark.sparkContext.master,
        "time_zone": spark.conf.get("spark.sql.session.timeZone"),
        "shuffle_partitions": spark.conf.get("spark.sql.shuffle.partitions"),
        "py_files": spark.sparkContext.getConf().get("spark.submit.pyFiles", ""),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="smoke", description=__doc__.splitlines()[0])
    parser.add_argument("path", help="where to write the Delta table (replaced if it exists)")
    args = parser.parse_args(argv)

    # A two-row table needs neither 200 shuffle partitions nor Delta's 50 partitions to rebuild
    # a snapshot for time travel. Values given to spark-submit (--conf key=value) win over these.
    tiny = {"spark.sql.shuffle.partitions": "2", "spark.databricks.delta.snapshotPartitions": "2"}
    spark = build_spark_session("feast-spark-smoke", conf=tiny)
    try:
        summary = run(spark, args.path)
    finally:
        spark.stop()
    print(json.dumps(summary, sort_keys=True), flush=True)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
