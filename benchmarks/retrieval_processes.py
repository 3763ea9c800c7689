"""Whole-process point-in-time retrieval: ours as a user runs it, the floor and a peer, each alone.

Used by ``historical_retrieval.py --whole-process`` (and ``--peer-job PATH``) on parquet it
generated. Every method is one fresh process, timed from its start to its exit:

* ``ours``:  ``feast-spark get-historical-features`` in a project whose table ``t`` was ingested
  from the feature parquet beforehand (untimed): the CLI, the launcher, spark-submit and the job.
* ``ours warm``: the same command while the project's warm driver serves (``feast-spark driver
  start``, timed apart and printed, not counted): the CLI, the launcher and the job in the
  driver's JVM. ``ours`` then runs in its own spark-submit all the same (its environment has
  ``FEAST_SPARK_BENCH_COLD=1``, which the driver's has not).
* ``floor``: spark-submit of a script doing Spark's floor on the same parquet (repartition the
  feature rows by key, sort within partitions, write), with plain Spark (no Delta).
* ``peer``:  spark-submit of feast-spark 0.2.7's ``historical_feature_retrieval_job.py`` (github
  feast-dev/feast-spark, tag v0.2.7, kept outside this repository) on the same parquet, with the
  same max_age, with plain Spark (it reads parquet).

All get the same master, shuffle partitions and driver memory.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from pathlib import Path

from whole_process import Timed, cli_command, run_timed

# In a command's environment only: its job differs from the warm driver's, so it runs cold.
COLD_ENV = "FEAST_SPARK_BENCH_COLD"

FLOOR_SCRIPT = """\
import sys
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
features, out = sys.argv[1:3]
(
    spark.read.parquet(features)
    .repartition("key")
    .sortWithinPartitions("key", "event_timestamp")
    .write.mode("overwrite")
    .parquet(out)
)
spark.stop()
"""

DEFINITIONS = """\
kind: Entity
name: key
value_type: INT64
---
kind: FeatureTable
name: t
entities: [key]
features:
  - {{name: f_double, dtype: DOUBLE}}
  - {{name: f_long, dtype: INT64}}
  - {{name: f_str, dtype: STRING}}
max_age: {max_age_s}s
batch_source:
  type: file
  path: {features}
  file_format: parquet
  event_timestamp_column: event_timestamp
  created_timestamp_column: created_timestamp
"""


def spark_submit() -> str:
    """pyspark's own spark-submit (the launcher's default)."""
    from feast_spark.launcher.environment import spark_home

    return str(spark_home() / "bin" / "spark-submit")


def spark_options(master: str, shuffle_partitions: int, driver_memory: str) -> list[str]:
    """The options every plain spark-submit of this benchmark gets."""
    return [
        "--master", master,
        "--driver-memory", driver_memory,
        "--conf", f"spark.sql.shuffle.partitions={shuffle_partitions}",
        "--conf", "spark.sql.session.timeZone=UTC",
        "--conf", "spark.driver.defaultJavaOptions=-Duser.timezone=UTC",
        "--conf", "spark.ui.showConsoleProgress=false",
    ]  # fmt: skip


def make_project(
    directory: Path,
    tree: Path,
    features: str,
    max_age_s: int,
    master: str,
    shuffle_partitions: int,
    driver_memory: str,
) -> Path:
    """A project with table ``t`` over the feature parquet, applied and ingested (untimed)."""
    import yaml

    project = directory / "project"
    project.mkdir()
    config = {
        "project": "bench",
        "registry": "data/registry.json",
        "offline_store": {"path": "data/offline"},
        "online_store": {"type": "sqlite", "path": "data/online.db"},
        "spark": {
            "master": master,
            "conf": {
                "spark.sql.shuffle.partitions": str(shuffle_partitions),
                "spark.driver.memory": driver_memory,
                "spark.ui.showConsoleProgress": "false",
            },
        },
        "launcher": {"type": "local"},
    }
    (project / "feature_store.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (project / "definitions.yaml").write_text(
        DEFINITIONS.format(max_age_s=max_age_s, features=features)
    )
    for args in (["apply", "-f", "definitions.yaml"], ["ingest", "t"]):
        argv, env = cli_command(tree, *args)
        done = run_timed(f"setup {args[0]}", argv, cwd=project, env=env)
        print(f"  setup: feast-spark {' '.join(args)} {done.seconds:.1f}s", flush=True)
    return project


def time_ours(
    tree: Path, project: Path, entities: str, out: str, timeout: float, *, warm: bool = False
) -> Timed:
    """``feast-spark get-historical-features`` of every feature of ``t``, whole process.

    ``warm``: as the project's warm driver runs it; otherwise in a spark-submit of its own.
    """
    argv, env = cli_command(
        tree,
        "get-historical-features",
        "--features", "t:f_double,t:f_long,t:f_str",
        "--entities", entities,
        "--output-path", out,
    )  # fmt: skip
    if not warm:
        env[COLD_ENV] = "1"
    return run_timed("ours warm" if warm else "ours", argv, cwd=project, env=env, timeout=timeout)


def driver_command(tree: Path, project: Path, action: str) -> Timed:
    """``feast-spark driver start|stop`` in ``project``, whole process."""
    argv, env = cli_command(tree, "driver", action)
    return run_timed(f"driver {action}", argv, cwd=project, env=env)


def time_floor(
    directory: Path, features: str, out: str, options: list[str], timeout: float
) -> Timed:
    """Spark's floor on the feature rows, as its own spark-submit process."""
    script = directory / "floor_job.py"
    script.write_text(FLOOR_SCRIPT)
    argv = [spark_submit(), *options, str(script), features, out]
    return run_timed("floor", argv, cwd=directory, env=_plain_env(), timeout=timeout)


def time_peer(
    peer_job: Path,
    directory: Path,
    features: str,
    entities: str,
    out: str,
    max_age_s: int,
    options: list[str],
    timeout: float,
) -> Timed:
    """feast-spark 0.2.7's retrieval job on the same parquet and max_age, own process."""
    table = {
        "name": "t",
        "entities": [{"name": "key", "type": "int64"}],
        "features": [
            {"name": "f_double", "type": "double"},
            {"name": "f_long", "type": "int64"},
            {"name": "f_str", "type": "string"},
        ],
        "max_age": max_age_s,
    }
    source = {
        "file": {
            "format": {"json_class": "ParquetFormat"},
            "path": features,
            "event_timestamp_column": "event_timestamp",
            "created_timestamp_column": "created_timestamp",
        }
    }
    entity_source = {
        "file": {
            "format": {"json_class": "ParquetFormat"},
            "path": entities,
            "event_timestamp_column": "event_timestamp",
        }
    }
    destination = {"format": "parquet", "path": out}
    argv = [
        spark_submit(), *options, str(peer_job),
        "--feature-tables", _b64([table]),
        "--feature-tables-sources", _b64([source]),
        "--entity-source", _b64(entity_source),
        "--destination", _b64(destination),
    ]  # fmt: skip
    return run_timed("peer 0.2.7", argv, cwd=directory, env=_plain_env(), timeout=timeout)


def rows_of(path: str) -> int | None:
    """Rows of a parquet folder written by any of the methods (pyarrow: no Spark needed)."""
    import pyarrow.dataset as ds

    if not os.path.exists(path):
        return None
    return int(ds.dataset(path, format="parquet", exclude_invalid_files=True).count_rows())


def print_whole_process(
    label: str, runs: dict[str, list[Timed]], rows: dict[str, int | None]
) -> None:
    """Best whole-process time per method, x floor, x peer, every run with its load average."""
    best = {method: min(r.seconds for r in timed) for method, timed in runs.items() if timed}
    floor_s, peer_s = best.get("floor"), best.get("peer 0.2.7")
    print(f"\n{label}: whole processes, best of {max(len(t) for t in runs.values())}")
    print("method        best s  x floor  peer / it  rows        runs (load average)")
    for method, seconds in best.items():
        ratio = f"{seconds / floor_s:7.2f}" if floor_s else "      -"
        versus_peer = f"{peer_s / seconds:9.2f}" if peer_s else "        -"
        shown = ", ".join(f"{r.seconds:.1f}s ({r.load:.1f})" for r in runs[method])
        count = rows.get(method)
        print(
            f"{method:<12} {seconds:7.1f}  {ratio}  {versus_peer}  "
            f"{(f'{count:,}' if count is not None else '-'):<11} {shown}"
        )


def run_whole_process(
    label: str,
    directory: Path,
    features: str,
    entities: str,
    max_age_s: int,
    methods: list[str],
    args: argparse.Namespace,
) -> None:
    """Time each method as a whole process, ``args.repeat`` rounds interleaved."""
    tree = Path(args.tree or Path(__file__).resolve().parent.parent)
    options = spark_options(args.master, args.shuffle_partitions, args.driver_memory)
    timeout = float(args.timeout)
    peer_job = args.peer_job
    wanted = [m for m in methods if m in ("ours", "ours warm", "floor")]
    if peer_job:
        wanted.append("peer 0.2.7")
    project = None
    if "ours" in wanted or "ours warm" in wanted:
        started = time.perf_counter()
        project = make_project(
            directory, tree, features, max_age_s,
            args.master, args.shuffle_partitions, args.driver_memory,
        )  # fmt: skip
        print(f"  project ready in {time.perf_counter() - started:.1f}s", flush=True)
    warm = project is not None and "ours warm" in wanted
    if warm and project is not None:
        started_driver = driver_command(tree, project, "start")
        print(f"  setup: feast-spark driver start {started_driver.seconds:.1f}s", flush=True)
    runs: dict[str, list[Timed]] = {m: [] for m in wanted}
    outs: dict[str, str] = {}
    try:
        for round_number in range(args.repeat):
            for method in wanted:
                out = str(directory / f"wp-{method.replace(' ', '-')}-{round_number}")
                try:
                    if method.startswith("ours") and project is not None:
                        timed = time_ours(tree, project, entities, out, timeout,
                                          warm=method == "ours warm")  # fmt: skip
                    elif method == "floor":
                        timed = time_floor(directory, features, out, options, timeout)
                    else:
                        timed = time_peer(
                            Path(peer_job), directory, features, entities, out, max_age_s,
                            options, timeout,
                        )  # fmt: skip
                except Exception as error:  # a benchmark reports a failure and goes on
                    print(f"  {method:<11} failed: {error}", flush=True)
                    continue
                runs[method].append(timed)
                outs[method] = out
                print(
                    f"  {method:<11} {timed.seconds:8.1f}s whole process (load {timed.load:.1f})",
                    flush=True,
                )
    finally:
        if warm and project is not None:
            driver_command(tree, project, "stop")
    rows = {method: rows_of(out) for method, out in outs.items()}
    print_whole_process(label, runs, rows)


def _plain_env() -> dict[str, str]:
    env = dict(os.environ)
    python = env.get("PYSPARK_PYTHON") or sys.executable
    env.setdefault("PYSPARK_PYTHON", python)
    env.setdefault("PYSPARK_DRIVER_PYTHON", python)
    env.pop("PYTHONPATH", None)
    return env


def _b64(value: object) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode("ascii")
