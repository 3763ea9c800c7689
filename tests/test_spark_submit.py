"""./spark-submit.sh: runs a job end to end; clear usage errors before any JVM starts."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from feast_spark.launcher.environment import package_zip

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "spark-submit.sh"


def submit(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYSPARK_GATEWAY_PORT"}
    return subprocess.run(
        [str(SCRIPT), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def summary_line(stdout: str) -> dict[str, Any]:
    """The job's JSON line (spark-submit also sends Python's stderr to stdout)."""
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            parsed: dict[str, Any] = json.loads(line)
            return parsed
    raise AssertionError(f"no JSON summary in stdout:\n{stdout}")


# A whole spark-submit.sh run (its own JVM, about a minute): CI runs it with the slow tests.
@pytest.mark.slow
def test_smoke_job_writes_a_delta_table_with_two_versions(
    spark: SparkSession, tmp_path: Path
) -> None:
    # given a fresh path, and a shuffle setting that differs from the one the job asks for
    table = tmp_path / "smoke"

    # when the smoke job is submitted from another directory
    result = submit(
        "--master",
        "local[2]",
        "--conf",
        "spark.ui.enabled=false",
        "--conf",
        "spark.sql.shuffle.partitions=3",
        "smoke",
        str(table),
        cwd=tmp_path,
    )

    # then it succeeds and reports both versions, in UTC, with the submitted settings kept
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = summary_line(result.stdout)
    assert summary["ok"] is True
    assert summary["versions"] == [
        {"version": 0, "rows": 2, "ok": True},
        {"version": 1, "rows": 3, "ok": True},
    ]
    assert summary["master"] == "local[2]"
    assert summary["time_zone"] == "UTC"
    assert summary["shuffle_partitions"] == "3"

    # and the table holds those rows when read back here
    def read(version: int) -> list[tuple[int, str]]:
        df = spark.read.format("delta").option("versionAsOf", version).load(str(table))
        return sorted((r["id"], r["name"]) for r in df.collect())

    assert read(0) == [(1, "a"), (2, "b")]
    assert read(1) == [(1, "a"), (2, "b"), (3, "c")]

    # and feast_spark was shipped as the zip the launcher builds from the same sources
    shipped = package_zip(ROOT / "build" / "spark-submit")
    assert str(shipped) in summary["py_files"]
    with zipfile.ZipFile(shipped) as archive:
        names = set(archive.namelist())
    assert "feast_spark/spark/session.py" in names
    assert not any("__pycache__" in name for name in names)


def test_no_arguments_prints_usage_and_exits_2(tmp_path: Path) -> None:
    result = submit(cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert "Usage: ./spark-submit.sh [spark-submit options...] JOB [job args...]" in result.stderr


def test_help_prints_usage_and_exits_0(tmp_path: Path) -> None:
    result = submit("--help", cwd=tmp_path, timeout=60)
    assert result.returncode == 0
    assert "Usage:" in result.stdout


def test_unknown_job_is_one_line_listing_the_jobs(tmp_path: Path) -> None:
    # when a job name that is not under jobs/ is given (after some options)
    result = submit("--master", "local[2]", "no_such_job", "arg", cwd=tmp_path, timeout=60)

    # then one line names it and lists the jobs there are
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "unknown job 'no_such_job'" in lines[0]
    available = lines[0].split("available jobs: ", 1)[1].split(", ")
    assert "smoke" in available
    assert available == sorted(
        p.stem for p in (ROOT / "jobs").glob("*.py") if not p.stem.startswith("_")
    )


def test_missing_job_file_exits_2(tmp_path: Path) -> None:
    result = submit(str(tmp_path / "nothing.py"), cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert "no job file" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_option_without_value_exits_2(tmp_path: Path) -> None:
    result = submit("--master", cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert "option --master needs a value" in result.stderr


def run_with_jar_env(tmp_path: Path, **jar_env: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FEAST_SPARK_JARS", "PYSPARK_GATEWAY"))
    }
    env.update(jar_env, PYSPARK_DRIVER_PYTHON=sys.executable)
    return subprocess.run(
        [str(SCRIPT), "--master", "local[1]", "smoke", str(tmp_path / "t")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_a_bad_jars_mode_exits_2_before_any_jvm(tmp_path: Path) -> None:
    result = run_with_jar_env(tmp_path, FEAST_SPARK_JARS_MODE="ivy")
    assert result.returncode == 2
    assert result.stderr.startswith("spark-submit.sh: environment: key 'FEAST_SPARK_JARS_MODE'")
    assert len(result.stderr.splitlines()) == 1


def test_jars_that_cannot_be_downloaded_exit_1_with_the_fix(tmp_path: Path) -> None:
    # given an empty jar cache and a Maven repository nobody answers on
    result = run_with_jar_env(
        tmp_path,
        FEAST_SPARK_JARS_MODE="cache",
        FEAST_SPARK_CACHE_DIR=str(tmp_path / "cache"),
        FEAST_SPARK_MAVEN_REPO="http://127.0.0.1:9/maven2",
    )

    # then the script stops before starting a JVM, naming the jar, its URL and the fix
    assert result.returncode == 1
    last = result.stderr.splitlines()[-1]
    assert re.match(r"spark-submit\.sh: cannot fetch [\w.-]+:[\w.-]+:[\w.-]+ from ", last), last
    assert "http://127.0.0.1:9/maven2/" in last and "FEAST_SPARK_JARS_DIR" in last
    assert "Traceback" not in result.stderr
