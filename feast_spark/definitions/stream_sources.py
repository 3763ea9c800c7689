"""Stream sources: a Kafka topic that feeds a feature table continuously (Feast 0.11's KafkaSource).

A feature table may name a ``stream_source`` beside its ``batch_source``; ``feast-spark stream
start TABLE`` then runs a long-lived Spark job that reads it (:mod:`feast_spark.spark.stream`).
Every message is one row: a JSON object whose fields are the table's columns (renamed by
``field_mapping``), with the event time in ``event_timestamp_column``.

Example (YAML)::

    stream_source:
      type: kafka
      bootstrap_servers: 127.0.0.1:9092
      topic: driver_stats
      format: json
      event_timestamp_column: ts
      starting_offsets: earliest
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from feast_spark.definitions._fields import check_keys, optional_string, string_map
from feast_spark.definitions.sources import TIMESTAMP_FORMATS
from feast_spark.errors import DefinitionError

_KIND = "stream source"

#: Message formats a stream source may name, and those understood today.
STREAM_FORMATS = ("json", "avro")
SUPPORTED_STREAM_FORMATS = ("json",)
STARTING_OFFSETS = ("earliest", "latest")

# Kafka's own rule for topic names.
_TOPIC = re.compile(r"[a-zA-Z0-9._-]{1,249}")
_SERVER = re.compile(r"[A-Za-z0-9._\[\]:-]+:[0-9]{1,5}")

_REQUIRED = {"type", "bootstrap_servers", "topic", "event_timestamp_column"}
_OPTIONAL = {
    "format",
    "created_timestamp_column",
    "field_mapping",
    "timestamp_format",
    "starting_offsets",
    "options",
}


@dataclass(frozen=True, kw_only=True)
class KafkaSource:
    """A Kafka topic of JSON messages, one feature row per message.

    Attributes:
        bootstrap_servers: ``host:port[,host:port...]`` of the Kafka cluster.
        topic: The topic read.
        event_timestamp_column: Message field holding each row's event time.
        created_timestamp_column: Optional message field holding when the row was written; it
            breaks ties between rows with the same event time (default: the message's Kafka
            timestamp).
        format: ``json`` (``avro`` is recognised and refused until it is supported).
        field_mapping: ``{feast name: message field}`` renames.
        timestamp_format: How the timestamp fields are spelled: ``native``/``iso8601``
            strings, or ``epoch_seconds``/``epoch_millis``/``epoch_micros`` numbers.
        starting_offsets: Where a stream with no checkpoint yet starts: ``earliest`` (the
            topic's first retained message) or ``latest`` (messages produced from now on).
        options: Extra Kafka consumer options for Spark's reader (``kafka.security.protocol``,
            ``maxOffsetsPerTrigger``, ...).
    """

    type_name = "kafka"

    bootstrap_servers: str
    topic: str
    event_timestamp_column: str
    created_timestamp_column: str | None = None
    format: str = "json"
    field_mapping: Mapping[str, str] = field(default_factory=dict)
    timestamp_format: str = "native"
    starting_offsets: str = "latest"
    options: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        label = self.topic if isinstance(self.topic, str) and self.topic else "?"
        if not isinstance(self.topic, str) or not _TOPIC.fullmatch(self.topic):
            raise DefinitionError(
                _KIND, label,
                f"topic {self.topic!r} is not a Kafka topic name (1 to 249 of a-z A-Z 0-9 . _ -)",
            )  # fmt: skip
        servers = self.bootstrap_servers
        if not isinstance(servers, str) or not all(
            _SERVER.fullmatch(part.strip()) for part in servers.split(",")
        ):
            raise DefinitionError(
                _KIND, label,
                f"bootstrap_servers {servers!r} is not a list of host:port; e.g. 127.0.0.1:9092",
            )  # fmt: skip
        object.__setattr__(
            self, "bootstrap_servers", ",".join(p.strip() for p in servers.split(","))
        )
        if not isinstance(self.event_timestamp_column, str) or not self.event_timestamp_column:
            raise DefinitionError(
                _KIND, label,
                "event_timestamp_column is required: name the message field holding the event time",
            )  # fmt: skip
        optional_string(_KIND, label, "created_timestamp_column", self.created_timestamp_column)
        if self.format not in STREAM_FORMATS:
            raise DefinitionError(
                _KIND, label, f"format {self.format!r} is unknown; use {', '.join(STREAM_FORMATS)}"
            )
        if self.format not in SUPPORTED_STREAM_FORMATS:
            raise DefinitionError(
                _KIND, label,
                f"format {self.format!r} is not supported yet; produce JSON (format: json)",
            )  # fmt: skip
        if self.timestamp_format not in TIMESTAMP_FORMATS:
            raise DefinitionError(
                _KIND, label,
                f"timestamp_format {self.timestamp_format!r} is unknown; use one of "
                f"{', '.join(TIMESTAMP_FORMATS)}",
            )  # fmt: skip
        if self.starting_offsets not in STARTING_OFFSETS:
            raise DefinitionError(
                _KIND, label,
                f"starting_offsets {self.starting_offsets!r} is unknown; use earliest or latest",
            )  # fmt: skip
        object.__setattr__(
            self, "field_mapping", string_map(_KIND, label, "field_mapping", self.field_mapping)
        )
        options = string_map(_KIND, label, "options", self.options)
        owned = sorted(k for k in options if k in _OWNED_OPTIONS)
        if owned:
            raise DefinitionError(
                _KIND, label,
                f"options {', '.join(owned)} are set from the source's own fields; remove them",
            )  # fmt: skip
        object.__setattr__(self, "options", options)

    def source_column(self, feast_name: str) -> str:
        """The message field that feeds the Feast column ``feast_name``."""
        return self.field_mapping.get(feast_name, feast_name)

    def to_dict(self) -> dict[str, Any]:
        """The source as a JSON/YAML document."""
        return {
            "type": self.type_name,
            "bootstrap_servers": self.bootstrap_servers,
            "topic": self.topic,
            "format": self.format,
            "event_timestamp_column": self.event_timestamp_column,
            "created_timestamp_column": self.created_timestamp_column,
            "field_mapping": dict(self.field_mapping),
            "timestamp_format": self.timestamp_format,
            "starting_offsets": self.starting_offsets,
            "options": dict(self.options),
        }


# Spark Kafka reader options the source's fields decide.
_OWNED_OPTIONS = {"kafka.bootstrap.servers", "subscribe", "subscribePattern", "assign",
                  "startingOffsets"}  # fmt: skip

StreamSource = KafkaSource


def stream_source_from_dict(data: Mapping[str, Any]) -> StreamSource:
    """Build a :class:`KafkaSource` from its document; unknown keys are errors."""
    if not isinstance(data, Mapping):
        raise DefinitionError(_KIND, "?", f"a stream source must be a mapping, got {data!r}")
    label = str(data.get("topic", "?"))
    if data.get("type") != "kafka":
        raise DefinitionError(_KIND, label, f"type {data.get('type')!r} is unknown; use 'kafka'")
    check_keys(_KIND, label, data, _REQUIRED, _OPTIONAL)
    return KafkaSource(
        bootstrap_servers=data["bootstrap_servers"],
        topic=data["topic"],
        event_timestamp_column=data["event_timestamp_column"],
        created_timestamp_column=data.get("created_timestamp_column"),
        format=data.get("format") or "json",
        field_mapping=data.get("field_mapping") or {},
        timestamp_format=data.get("timestamp_format") or "native",
        starting_offsets=data.get("starting_offsets") or "latest",
        options=data.get("options") or {},
    )
