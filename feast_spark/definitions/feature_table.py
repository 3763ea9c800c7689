"""Features and feature tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from feast_spark.definitions._fields import check_keys, string_map
from feast_spark.definitions.durations import format_duration, parse_duration
from feast_spark.definitions.names import check_name, check_not_reserved
from feast_spark.definitions.sources import BatchSource, source_from_dict
from feast_spark.definitions.stream_sources import (
    KafkaSource,
    StreamSource,
    stream_source_from_dict,
)
from feast_spark.errors import DefinitionError
from feast_spark.types import ValueType


@dataclass(frozen=True)
class Feature:
    """One feature column of a feature table.

    Attributes:
        name: Safe identifier, unique within its table.
        dtype: Value type of the feature.
        labels: Free-form string tags.

    """

    name: str
    dtype: ValueType
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name("feature", self.name)
        check_not_reserved("feature", self.name)
        object.__setattr__(
            self, "dtype", ValueType.parse(self.dtype, owner_kind="feature", owner=self.name)
        )
        object.__setattr__(self, "labels", string_map("feature", self.name, "labels", self.labels))

    def to_dict(self) -> dict[str, Any]:
        """The feature as a JSON/YAML document."""
        return {"name": self.name, "dtype": self.dtype.value, "labels": dict(self.labels)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Feature:
        """Inverse of :meth:`to_dict`; unknown keys are errors."""
        if not isinstance(data, Mapping):
            raise DefinitionError("feature", "?", f"a feature must be a mapping, got {data!r}")
        name = str(data.get("name", "?"))
        check_keys("feature", name, data, {"name", "dtype"}, {"labels"})
        return cls(name=data["name"], dtype=data["dtype"], labels=data.get("labels") or {})


@dataclass(frozen=True)
class FeatureTable:
    """A set of features keyed by one or more entities, loaded from a batch source.

    Attributes:
        name: Safe identifier; names the Delta table and the Cassandra table.
        entities: Names of the key entities (registered separately), in key order.
        features: The feature columns.
        batch_source: Where raw rows come from.
        max_age: How old a value may be and still be served or joined; ``None`` for no limit.
        description: Free text.
        labels: Free-form string tags.
        stream_source: Optional Kafka topic that feeds the table continuously
            (``feast-spark stream start``).

    """

    name: str
    entities: Sequence[str]
    features: Sequence[Feature]
    batch_source: BatchSource
    max_age: timedelta | None = None
    description: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    stream_source: StreamSource | None = None

    def __post_init__(self) -> None:
        kind = "feature table"
        check_name(kind, self.name)
        if isinstance(self.entities, str) or not self.entities:
            raise DefinitionError(kind, self.name, "entities must be a non-empty list of names")
        entities = tuple(check_name("entity", e) for e in self.entities)
        if len(set(entities)) != len(entities):
            raise DefinitionError(kind, self.name, f"entities {list(entities)} repeat a name")
        features = tuple(self.features)
        if not features or not all(isinstance(f, Feature) for f in features):
            raise DefinitionError(kind, self.name, "features must be a non-empty list of Feature")
        seen: set[str] = set()
        for feature in features:
            if feature.name in seen:
                raise DefinitionError(
                    kind, self.name, f"feature '{feature.name}' is declared twice"
                )
            if feature.name in entities:
                raise DefinitionError(
                    kind,
                    self.name,
                    f"feature '{feature.name}' has the name of an entity of this table; "
                    "rename the feature",
                )
            seen.add(feature.name)
        if not isinstance(self.batch_source, BatchSource):
            raise DefinitionError(
                kind, self.name, "batch_source must be a FileSource or DeltaSource"
            )
        if self.max_age is not None:
            try:
                max_age = parse_duration(self.max_age)
            except ValueError as error:
                raise DefinitionError(kind, self.name, f"max_age: {error}") from None
            if max_age <= timedelta(0):
                raise DefinitionError(
                    kind, self.name, f"max_age must be positive, got {format_duration(max_age)}"
                )
            object.__setattr__(self, "max_age", max_age)
        if self.stream_source is not None and not isinstance(self.stream_source, KafkaSource):
            raise DefinitionError(kind, self.name, "stream_source must be a KafkaSource")
        object.__setattr__(self, "entities", entities)
        object.__setattr__(self, "features", features)
        object.__setattr__(self, "labels", string_map(kind, self.name, "labels", self.labels))

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Names of the features, in declaration order."""
        return tuple(f.name for f in self.features)

    def feature(self, name: str) -> Feature:
        """The feature called ``name``.

        Raises:
            NotFoundError: The table has no such feature.

        """
        from feast_spark.errors import NotFoundError

        for feature in self.features:
            if feature.name == name:
                return feature
        raise NotFoundError(
            "feature", f"{self.name}:{name}", hint=f"features are {', '.join(self.feature_names)}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The table as a JSON/YAML document (``max_age`` as a duration string).

        ``stream_source`` appears only when the table has one, so the documents of tables
        without one are unchanged.
        """
        document = {
            "name": self.name,
            "entities": list(self.entities),
            "features": [f.to_dict() for f in self.features],
            "batch_source": self.batch_source.to_dict(),
            "max_age": format_duration(self.max_age) if self.max_age is not None else None,
            "description": self.description,
            "labels": dict(self.labels),
        }
        if self.stream_source is not None:
            document["stream_source"] = self.stream_source.to_dict()
        return document

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureTable:
        """Inverse of :meth:`to_dict`; unknown keys are errors."""
        name = str(data.get("name", "?"))
        check_keys(
            "feature table",
            name,
            data,
            {"name", "entities", "features", "batch_source"},
            {"max_age", "description", "labels", "stream_source"},
        )
        features = data["features"]
        if not isinstance(features, list):
            raise DefinitionError("feature table", name, "features must be a list")
        return cls(
            name=data["name"],
            entities=data["entities"],
            features=[Feature.from_dict(f) for f in features],
            batch_source=source_from_dict(data["batch_source"]),
            max_age=data.get("max_age"),
            description=data.get("description") or "",
            labels=data.get("labels") or {},
            stream_source=(
                stream_source_from_dict(data["stream_source"])
                if data.get("stream_source") is not None
                else None
            ),
        )
