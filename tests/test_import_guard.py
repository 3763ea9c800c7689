"""`import feast_spark` stays light: no pyspark, no Cassandra driver (see ARCHITECTURE.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("pyspark", "py4j", "cassandra")

# Imports the given modules in a fresh interpreter and prints the heavy modules that got loaded.
PROBE = f"""
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {set(HEAVY)!r})
print(json.dumps(heavy))
"""


def heavy_modules_after_importing(*modules: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *modules],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded: list[str] = json.loads(result.stdout.splitlines()[-1])
    return loaded


def test_import_feast_spark_loads_neither_pyspark_nor_cassandra() -> None:
    # when the package and its pure base modules are imported in a fresh interpreter
    loaded = heavy_modules_after_importing("feast_spark", "feast_spark.errors", "feast_spark.types")

    # then no pyspark, py4j or cassandra module was loaded
    assert loaded == []


def pure_modules() -> list[str]:
    """Every feast_spark module outside feast_spark.spark (the only package that may use pyspark)."""
    package = ROOT / "feast_spark"
    names = []
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[1:2] == ("spark",):
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


@pytest.mark.parametrize("module", pure_modules())
def test_modules_outside_spark_import_without_pyspark_or_cassandra(module: str) -> None:
    assert heavy_modules_after_importing(module) == []


def test_session_module_imports_pyspark_only_when_building() -> None:
    # feast_spark.spark.session is imported by spark-submit.sh to choose the jars: keep it light
    assert heavy_modules_after_importing("feast_spark.spark.session") == []


def test_public_names_import_from_the_package_and_stay_light() -> None:
    # when the names a Feast user writes are imported from the package itself
    probe = (
        "from feast_spark import Client, Entity, Feature, FeatureTable, FileSource, "
        "DeltaSource, ValueType\n"
        "import feast_spark.client, feast_spark.definitions, feast_spark.types\n"
        "assert Client is feast_spark.client.Client and ValueType is feast_spark.types.ValueType\n"
        "assert Entity is feast_spark.definitions.Entity\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe + PROBE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # then they are the real classes, and neither pyspark nor cassandra got loaded
    assert loaded.returncode == 0, loaded.stderr
    assert json.loads(loaded.stdout.splitlines()[-1]) == []


def test_an_unknown_name_is_an_attribute_error() -> None:
    import feast_spark

    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = feast_spark.Nope  # type: ignore[attr-defined]
    assert {"Client", "ValueType", "DeltaSource"} <= set(dir(feast_spark))
