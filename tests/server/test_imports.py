"""The server's libraries load only when serving; the server never loads pyspark."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import REPO_ROOT

SERVER_LIBRARIES = ("starlette", "uvicorn", "orjson", "prometheus_client", "uvloop", "httptools")

PROBE = """
import importlib, json, sys
for name in sys.argv[2:]:
    importlib.import_module(name)
roots = set(sys.argv[1].split(","))
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in roots)))
"""


def loaded_after(roots: tuple[str, ...], *modules: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(roots), *modules],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    found: list[str] = json.loads(result.stdout.splitlines()[-1])
    return found


def test_neither_the_package_nor_the_cli_loads_the_server_libraries() -> None:
    assert loaded_after(SERVER_LIBRARIES, "feast_spark", "feast_spark.cli") == []


def test_the_server_loads_neither_pyspark_nor_cassandra_until_a_store_opens() -> None:
    assert loaded_after(("pyspark", "py4j", "cassandra"), "feast_spark.server.app",
                        "feast_spark.server.workers") == []  # fmt: skip
