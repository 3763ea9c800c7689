"""Entities: the keys that feature values are attached to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from feast_spark.definitions._fields import check_keys, string_map
from feast_spark.definitions.names import check_name, check_not_reserved
from feast_spark.errors import DefinitionError
from feast_spark.types import ValueType

_KIND = "entity"


@dataclass(frozen=True)
class Entity:
    """An entity such as ``driver_id``: a named key with a value type.

    Attributes:
        name: Safe identifier; also the key column's name in every store.
        value_type: Type of the key's values (list types are not allowed for keys).
        description: Free text.
        labels: Free-form string tags.

    """

    name: str
    value_type: ValueType
    description: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name(_KIND, self.name)
        check_not_reserved(_KIND, self.name)
        value_type = ValueType.parse(self.value_type, owner_kind=_KIND, owner=self.name)
        if value_type.is_list or value_type in (ValueType.FLOAT, ValueType.DOUBLE):
            raise DefinitionError(
                _KIND,
                self.name,
                f"value type {value_type.value} cannot be a key; use STRING, INT64, INT32, "
                "BYTES, BOOL or UNIX_TIMESTAMP",
            )
        object.__setattr__(self, "value_type", value_type)
        object.__setattr__(self, "labels", string_map(_KIND, self.name, "labels", self.labels))
        if not isinstance(self.description, str):
            raise DefinitionError(_KIND, self.name, "description must be a string")

    def to_dict(self) -> dict[str, Any]:
        """The definition as a JSON/YAML document."""
        return {
            "name": self.name,
            "value_type": self.value_type.value,
            "description": self.description,
            "labels": dict(self.labels),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Entity:
        """Inverse of :meth:`to_dict`; unknown keys are errors."""
        name = str(data.get("name", "?"))
        check_keys(_KIND, name, data, {"name", "value_type"}, {"description", "labels"})
        return cls(
            name=data["name"],
            value_type=data["value_type"],
            description=data.get("description") or "",
            labels=data.get("labels") or {},
        )
