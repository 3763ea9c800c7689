"""Entities, features, feature tables and their sources: pure Python, validated on creation."""

from feast_spark.definitions.entity import Entity
from feast_spark.definitions.feature_table import Feature, FeatureTable
from feast_spark.definitions.sources import BatchSource, DeltaSource, FileSource
from feast_spark.definitions.stream_sources import KafkaSource

__all__ = [
    "BatchSource",
    "DeltaSource",
    "Entity",
    "Feature",
    "FeatureTable",
    "FileSource",
    "KafkaSource",
]
