"""feast_spark/feast-spark-jvm.jar: the committed jar is what conf/jvm/build.sh makes of the source."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from feast_spark.spark_conf import OWN_JAR, SOURCE_ROOT


def javac_major() -> str | None:
    """The major version of the JDK's javac on PATH (None without a JDK)."""
    if shutil.which("javac") is None:
        return None
    printed = subprocess.run(["javac", "-version"], capture_output=True, text=True, check=True)
    return (printed.stdout + printed.stderr).split()[1].split(".")[0]


# Another javac compiles the same source to other bytes (the jar is built with JDK 17).
@pytest.mark.skipif(javac_major() != "17", reason="needs the JDK 17 compiler (javac)")
def test_the_committed_jar_is_built_from_the_committed_source(tmp_path: Path) -> None:
    # given the jar built again from conf/jvm/src (reproducible: sorted entries, fixed dates)
    rebuilt = tmp_path / "rebuilt.jar"
    subprocess.run(
        ["bash", str(SOURCE_ROOT / "conf" / "jvm" / "build.sh"), str(rebuilt)],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHON": sys.executable},
    )
    # then it is the jar the package ships, byte for byte (else: run conf/jvm/build.sh)
    assert rebuilt.read_bytes() == OWN_JAR.read_bytes()
