"""Twenty jobs started at once through the CLI, on a machine with nothing cached, all succeed.

As a new user (or a new Airflow worker) meets it: ``HOME`` and Java's ``user.home`` point at an
empty folder (no Ivy or Maven cache, no feast-spark jar cache), and ten ``ingest`` and ten
``get-historical-features`` commands start together. Each resolves the Delta jars before its
spark-submit; one downloads them, the others wait for it (feast_spark/jars.py). With Ivy's
``--packages`` this failed: concurrent resolutions into one Ivy cache corrupt each other.

Slow (twenty driver JVMs on this machine): marked ``slow``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from feast_spark.config import load_config
from feast_spark.jars import COMPLETE_MARKER, JarLock, jar_folder
from feast_spark.launcher import JobState, Launcher

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
INGESTS = 10
RETRIEVALS = 10
START = datetime(2024, 3, 1, tzinfo=UTC)
# A small footprint per driver JVM: twenty of them share this machine.
SMALL_JVM = "-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=48m -Xss512k"


def write_project(folder: Path) -> Path:
    """A project of INGESTS tables plus ``base``, each with a tiny parquet source."""
    sources = folder / "sources"
    sources.mkdir(parents=True)
    names = ["base", *(f"t{i}" for i in range(INGESTS))]
    documents: list[dict[str, object]] = [
        {"kind": "Entity", "name": "driver_id", "value_type": "INT64"}
    ]
    for name in names:
        pq.write_table(
            pa.table(
                {
                    "driver_id": pa.array([1, 2, 3, 1, 2], pa.int64()),
                    "conv_rate": [0.1, 0.2, 0.3, 0.4, 0.5],
                    "event_timestamp": pa.array(
                        [START + timedelta(hours=h) for h in (0, 0, 0, 2, 2)],
                        pa.timestamp("us", "UTC"),
                    ),
                }
            ),
            sources / f"{name}.parquet",
        )
        documents.append(
            {
                "kind": "FeatureTable",
                "name": name,
                "entities": ["driver_id"],
                "features": [{"name": "conv_rate", "dtype": "DOUBLE"}],
                "max_age": "1d",
                "batch_source": {
                    "type": "file",
                    "path": str(sources / f"{name}.parquet"),
                    "file_format": "parquet",
                    "event_timestamp_column": "event_timestamp",
                },
            }
        )
    (folder / "definitions.yaml").write_text(yaml.safe_dump_all(documents))
    pq.write_table(
        pa.table(
            {
                "driver_id": pa.array([1, 2, 3], pa.int64()),
                "event_timestamp": pa.array(
                    [START + timedelta(hours=3)] * 3, pa.timestamp("us", "UTC")
                ),
            }
        ),
        folder / "entities.parquet",
    )
    config = {
        "project": "demo",
        "registry": str(folder / "registry.json"),
        "offline_store": {"path": str(folder / "offline")},
        "spark": {
            "master": "local[1]",
            "conf": {
                "spark.driver.memory": "512m",
                "spark.driver.extraJavaOptions": SMALL_JVM,
                "spark.ui.enabled": "false",
                "spark.sql.shuffle.partitions": "1",
                "spark.default.parallelism": "1",
                "spark.databricks.delta.snapshotPartitions": "1",
            },
        },
        "launcher": {"type": "local", "job_store": str(folder / "jobs")},
    }
    path = folder / "feature_store.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def bare_machine_env(home: Path) -> dict[str, str]:
    """This environment with an empty home for Python and Java, and no pre-seeded jars."""
    home.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("FEAST_SPARK_", "PYSPARK_GATEWAY", "XDG_"))
        or key == "FEAST_SPARK_MAVEN_REPO"  # a mirror the machine must use stays
    }
    env.update(
        HOME=str(home),
        JAVA_TOOL_OPTIONS=f"-Duser.home={home}",  # Java takes ~ from passwd, not from $HOME
        PYTHONPATH=str(ROOT),
        # Use the jar cache even where a .jars/ folder was fetched into this checkout.
        FEAST_SPARK_JARS_MODE="cache",
        PYSPARK_PYTHON=sys.executable,
    )
    return env


def cli(config: Path, *args: str) -> list[str]:
    """The ``feast-spark`` command of this checkout (what the console script runs)."""
    run = "import sys; from feast_spark.cli import main; sys.argv[0] = 'feast-spark'; main()"
    return [sys.executable, "-c", run, *args, "--config", str(config)]


def test_twenty_jobs_started_at_once_on_a_bare_machine_all_succeed(tmp_path: Path) -> None:
    # given a project whose `base` table was ingested (on another "machine": its own home)
    config = write_project(tmp_path / "project")
    setup_env = bare_machine_env(tmp_path / "setup-home")
    for args in (
        ("apply", "-f", str(tmp_path / "project" / "definitions.yaml")),
        ("ingest", "base"),
    ):
        done = subprocess.run(
            cli(config, *args),
            env=setup_env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]

    # and a machine with nothing cached
    home = tmp_path / "home"
    env = bare_machine_env(home)

    # when ten ingestions and ten retrievals are started at the same moment
    commands = [cli(config, "ingest", f"t{i}", "--no-wait") for i in range(INGESTS)] + [
        cli(config, "get-historical-features", "--features", "base:conv_rate",
            "--entities", str(tmp_path / "project" / "entities.parquet"),
            "--output-path", str(tmp_path / "out" / f"r{i}"), "--no-wait")
        for i in range(RETRIEVALS)
    ]  # fmt: skip
    started = [
        subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for c in commands
    ]
    answers = [(p.wait(600), *p.communicate()) for p in started]

    # then every command submitted its job, and exactly one of them downloaded the jars
    assert [code for code, _, _ in answers] == [0] * len(commands), [e for _, _, e in answers]
    assert sum("downloading" in err for _, _, err in answers) == 1
    job_ids = [out.strip().splitlines()[-1] for _, out, _ in answers]
    assert len(set(job_ids)) == len(commands)

    # and every job SUCCEEDED
    launcher = Launcher.from_config(load_config(config))
    states = {job_id: launcher.get(job_id).wait(1800, poll_interval=2.0) for job_id in job_ids}
    failed = {
        j: launcher.get(j).logs()[-3000:] for j, s in states.items() if s is not JobState.SUCCEEDED
    }
    assert not failed, failed
    for i in range(RETRIEVALS):
        assert list((tmp_path / "out" / f"r{i}").glob("*.parquet")), f"no dataset r{i}"

    # and the jars came from one verified cache in that home; Ivy and Maven were never used
    lock = JarLock.read()
    folder = jar_folder(lock, home / ".cache" / "feast-spark")
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [COMPLETE_MARKER, *(jar.file_name for jar in lock.jars)]
    )
    assert not [p.name for p in home.iterdir() if p.name.startswith((".ivy2", ".m2"))]
