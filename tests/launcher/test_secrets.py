"""Secrets of ``spark.conf`` never reach a command line or a stored file (issue 18, defect 8).

A real spark-submit (local master) runs a tiny job that reads the settings back from its
SparkConf, so the test shows both that Spark received them and that no process's
``/proc/<pid>/cmdline`` and no file of the job store holds them.
"""

from __future__ import annotations

import hashlib
import secrets
import sys
import textwrap
import time
from pathlib import Path

import pytest

from feast_spark.launcher import JobState, JobStore, Launcher
from feast_spark.launcher.submit import SparkTarget

READ_BACK_JOB = """
import hashlib, json, pathlib, sys, time
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
conf = spark.sparkContext.getConf()
keys = sys.argv[2].split(",")
digests = {k: hashlib.sha256(conf.get(k, "").encode()).hexdigest() for k in keys}
pathlib.Path(sys.argv[1]).write_text(json.dumps(digests))
time.sleep(float(sys.argv[3]))
spark.stop()
"""


def cmdlines_holding(needles: list[str]) -> list[str]:
    """Command lines of this machine's processes that contain one of ``needles``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(needle in cmdline for needle in needles):
            found.append(f"{entry.name}: {cmdline[:300]}")
    return found


# Slow (a whole spark-submit job, about 20 s): CI runs it with the other slow tests.
@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc/<pid>/cmdline")
def test_secret_settings_reach_spark_but_no_command_line_or_stored_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given spark.conf with an s3a secret key, a password and a password in a URL
    key, password, url_password = (secrets.token_hex(12) for _ in range(3))
    conf = {
        "spark.hadoop.fs.s3a.secret.key": key,
        "spark.cassandra.auth.password": password,
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:mysql://app:{url_password}@db/m",
        "spark.ui.enabled": "false",
        "spark.sql.shuffle.partitions": "1",
    }
    needles = [key, password, url_password]
    monkeypatch.setenv("FEAST_SPARK_CACHE_DIR", str(tmp_path / "cache"))
    job_file = tmp_path / "read_back.py"
    job_file.write_text(textwrap.dedent(READ_BACK_JOB))
    store = JobStore(str(tmp_path / "jobs"))
    launcher = Launcher(SparkTarget("local", "local[1]", "client"), store, spark_conf=conf)
    marker = tmp_path / "seen.json"

    # when a job is launched and is running
    job = launcher.submit_file(
        job_file, job_id="secret-1", app_args=[str(marker), ",".join(sorted(conf)[:3]), "4"]
    )
    secrets_file = tmp_path / "cache" / "secrets" / "secret-1.properties"
    deadline = time.monotonic() + 240
    while not marker.exists() and time.monotonic() < deadline and not job.status().is_final:
        time.sleep(0.5)
    try:
        assert marker.exists(), job.logs()[-3000:]
        # then while it runs: no command line holds a secret, and the secrets file is private
        assert cmdlines_holding(needles) == []
        assert secrets_file.stat().st_mode & 0o777 == 0o600
        assert secrets_file.parent.stat().st_mode & 0o777 == 0o700
        assert cmdlines_holding([str(secrets_file)]) != []  # it is given by path
    finally:
        state = job.wait(180, poll_interval=0.5)

    # and Spark received every secret
    assert state is JobState.SUCCEEDED, job.record.error
    import json

    digests = json.loads(marker.read_text())
    sent = {k: hashlib.sha256(v.encode()).hexdigest() for k, v in conf.items() if k in digests}
    assert digests == sent
    # and once it ended the file is gone, and nothing stored (record, spec, log, process and
    # exit files) or in the launcher's cache holds a secret
    assert not secrets_file.exists()
    stored = [p for p in (tmp_path / "jobs").rglob("*") if p.is_file()]
    stored += [p for p in (tmp_path / "cache").rglob("*") if p.is_file() and p.suffix != ".zip"]
    assert any(p.name == "driver.log" for p in stored)
    leaks = [str(p) for p in stored if any(n in p.read_text(errors="replace") for n in needles)]
    assert leaks == []
    assert "--properties-file" in job.record.command
    assert sys.executable  # the job ran with this interpreter's pyspark
