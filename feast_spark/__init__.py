"""feast-spark: a feature store on Apache Spark, Delta Lake and Apache Cassandra.

Importing this package imports neither pyspark nor the Cassandra driver: the launcher and the CLI
run where Spark is not installed, and heavy imports happen inside the functions that need them.
The public names load on first use (PEP 562), as Feast users write them::

    from feast_spark import Client, Entity, Feature, FeatureTable, FileSource, ValueType
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from feast_spark.client import Client
    from feast_spark.definitions import (
        BatchSource,
        DeltaSource,
        Entity,
        Feature,
        FeatureTable,
        FileSource,
        KafkaSource,
    )
    from feast_spark.types import ValueType

# public name -> the module that defines it
_PUBLIC = {
    "Client": "feast_spark.client",
    "Entity": "feast_spark.definitions",
    "Feature": "feast_spark.definitions",
    "FeatureTable": "feast_spark.definitions",
    "BatchSource": "feast_spark.definitions",
    "FileSource": "feast_spark.definitions",
    "DeltaSource": "feast_spark.definitions",
    "KafkaSource": "feast_spark.definitions",
    "ValueType": "feast_spark.types",
}

__all__ = [
    "BatchSource",
    "Client",
    "DeltaSource",
    "Entity",
    "Feature",
    "FeatureTable",
    "FileSource",
    "KafkaSource",
    "ValueType",
    "__version__",
]


def __getattr__(name: str) -> Any:
    """Import a public name's module on first access (keeps ``import feast_spark`` light)."""
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'feast_spark' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
