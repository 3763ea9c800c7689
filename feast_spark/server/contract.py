"""Feast's JSON contract for ``POST /get-online-features``: parsing requests, rendering responses.

Request (Feast's feature server shape; composite keys as parallel arrays)::

    {"features": ["driver_stats:conv_rate", "driver_stats:trips"],
     "entities": {"driver_id": [1001, 1002]},
     "full_feature_names": false}

Response: one result per returned name, entity keys first::

    {"metadata": {"feature_names": ["driver_id", "conv_rate", "trips"]},
     "results": [
       {"values": [1001, 1002], "statuses": ["PRESENT", "PRESENT"],
        "event_timestamps": ["1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"]},
       {"values": [0.5, null], "statuses": ["PRESENT", "NOT_FOUND"],
        "event_timestamps": ["2026-12-01T10:00:00Z", "1970-01-01T00:00:00Z"]},
       ...]}

Values and statuses are what ``Client.get_online_features`` returns (PRESENT, NULL_VALUE,
NOT_FOUND, OUTSIDE_MAX_AGE; values withheld or missing are null). As in Feast: a feature's event
timestamp is its row's event time (the epoch where NOT_FOUND, and for entity keys); non-finite
floats are the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``; ``full_feature_names`` names
features ``table__feature``. BYTES values (and keys) travel as base64 strings, UNIX_TIMESTAMP
values (and keys) as RFC 3339 strings.

Every problem with a request is a :class:`RequestError`: an HTTP status and a JSON body naming
the culprit, ``{"detail": message, "error": {"code", "kind", "name", "message"}}`` (``detail`` as
FastAPI-based clients such as Feast's expect).
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from feast_spark.errors import DefinitionError, NotFoundError
from feast_spark.online.base import from_micros
from feast_spark.online.service import OnlineResponse
from feast_spark.types import ValueType

EPOCH: Final = "1970-01-01T00:00:00Z"
#: Keys of a request; Feast clients may also send the two ignored ones.
REQUEST_KEYS: Final = ("features", "entities", "full_feature_names")
_IGNORED_KEYS: Final = ("include_feature_view_version_metadata",)
_FLOATS: Final = frozenset({ValueType.FLOAT, ValueType.DOUBLE})
_FLOAT_LISTS: Final = frozenset({ValueType.FLOAT_LIST, ValueType.DOUBLE_LIST})


class RequestError(Exception):
    """A request the server answers with a 4xx (or 5xx) JSON error.

    Attributes:
        status: The HTTP status.
        code: A stable machine-readable code (``malformed_json``, ``unknown_feature``, ...).
        kind: What the culprit is (``request``, ``feature table``, ``entity``, ...).
        name: The culprit's name or key.
        message: One line: what is wrong and how to fix it.
    """

    def __init__(self, status: int, code: str, kind: str, name: str, message: str) -> None:
        self.status = status
        self.code = code
        self.kind = kind
        self.name = name
        self.message = message
        super().__init__(message)

    def body(self) -> bytes:
        """The JSON body of the error response."""
        return error_body(self.code, self.kind, self.name, self.message)


def error_body(code: str, kind: str, name: str, message: str) -> bytes:
    """``{"detail": message, "error": {...}}`` as JSON bytes."""
    return orjson.dumps(
        {
            "detail": message,
            "error": {"code": code, "kind": kind, "name": name, "message": message},
        }
    )


def from_lookup_error(error: NotFoundError | DefinitionError) -> RequestError:
    """A RequestError for a definition problem found while resolving a request."""
    if isinstance(error, NotFoundError):
        code = "unknown_" + error.kind.replace(" ", "_")
        return RequestError(404, code, error.kind, error.name, str(error))
    return RequestError(
        422, "invalid_" + error.kind.replace(" ", "_"), error.kind, error.name, str(error)
    )


class OnlineRequest:
    """A parsed ``/get-online-features`` request.

    Attributes:
        features: The feature references, as given.
        entities: Entity name -> key values, as given (lists of equal length).
        full_feature_names: Whether feature names are ``table__feature``.
        num_rows: Entity rows asked for.
    """

    __slots__ = ("entities", "features", "full_feature_names", "num_rows")

    def __init__(
        self,
        features: tuple[str, ...],
        entities: dict[str, list[Any]],
        full_feature_names: bool,
        num_rows: int,
    ) -> None:
        self.features = features
        self.entities = entities
        self.full_feature_names = full_feature_names
        self.num_rows = num_rows


def parse_request(body: bytes, *, max_entities: int) -> OnlineRequest:
    """Check the JSON body of a request.

    Raises:
        RequestError: Malformed JSON (400), a missing or ill-typed field (422), arrays of
            different lengths (422), or more entity rows than ``max_entities`` (413).
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise RequestError(
            400, "malformed_json", "request", "body", f"the body is not valid JSON: {error}"
        ) from None
    if not isinstance(data, dict):
        raise _invalid("body", f"must be a JSON object, got {_json_type(data)}")
    for key in data:
        if key not in REQUEST_KEYS and key not in _IGNORED_KEYS:
            if key == "feature_service" and data[key] is None:
                continue
            hint = (
                "feature services are not supported; list the features"
                if key == "feature_service"
                else f"known keys: {', '.join(REQUEST_KEYS)}"
            )
            raise _invalid(key, f"unknown key '{key}'; {hint}")
    features = data.get("features")
    if (
        not isinstance(features, list)
        or not features
        or not all(isinstance(f, str) for f in features)
    ):
        raise _invalid("features", "must be a non-empty list of 'table:feature' strings")
    entities = data.get("entities")
    if not isinstance(entities, dict) or not entities:
        raise _invalid(
            "entities", 'must be an object of entity name -> list of keys, e.g. {"driver_id": [1]}'
        )
    lengths: dict[str, int] = {}
    for name, values in entities.items():
        if not isinstance(values, list):
            raise RequestError(
                422,
                "invalid_entity",
                "entity",
                name,
                f"entity '{name}': must be a list of keys, got {_json_type(values)}",
            )
        lengths[name] = len(values)
    sizes = set(lengths.values())
    if len(sizes) > 1:
        shown = ", ".join(f"{n}: {count}" for n, count in lengths.items())
        raise RequestError(
            422,
            "entity_lengths_differ",
            "entities",
            ",".join(lengths),
            f"entity key arrays have different lengths ({shown}); give one key "
            "per row in every array",
        )
    rows = sizes.pop()
    if rows == 0:
        raise _invalid("entities", "the entity key arrays are empty; give at least one row")
    if rows > max_entities:
        raise RequestError(
            413,
            "too_many_entities",
            "entities",
            ",".join(lengths),
            f"{rows} entity rows in one request; at most {max_entities} "
            "(feature_server.max_entities): split the request",
        )
    full = data.get("full_feature_names", False)
    if not isinstance(full, bool):
        raise _invalid("full_feature_names", "must be true or false")
    return OnlineRequest(tuple(features), entities, full, rows)


def entity_columns(
    request: OnlineRequest, entity_types: Sequence[tuple[str, ValueType]]
) -> dict[str, list[Any]]:
    """The request's key arrays for the entities a plan needs, BYTES and timestamps decoded.

    Other values are passed as given: the read checks their types (an INT64 key given as
    ``"1001"`` is an error naming the entity, never a silent conversion).

    Raises:
        RequestError: A needed entity is missing, an entity is not a key of any requested
            table, or a BYTES/UNIX_TIMESTAMP key does not decode (422).
    """
    needed = dict(entity_types)
    for name in request.entities:
        if name not in needed:
            raise RequestError(
                422,
                "unknown_entity",
                "entity",
                name,
                f"entity '{name}' is not a key of any requested feature table; "
                f"the keys needed are {', '.join(needed)}",
            )
    columns: dict[str, list[Any]] = {}
    for name, value_type in entity_types:
        values = request.entities.get(name)
        if values is None:
            raise RequestError(
                422,
                "missing_entity",
                "entity",
                name,
                f"entity '{name}' is missing; the requested feature tables are "
                f"keyed by {', '.join(needed)}",
            )
        element = value_type.element
        if element is ValueType.BYTES:
            values = [_decode(_bytes, v, name, i, "a base64 string") for i, v in enumerate(values)]
        elif element is ValueType.UNIX_TIMESTAMP:
            values = [
                _decode(_instant, v, name, i, "an RFC 3339 instant") for i, v in enumerate(values)
            ]
        columns[name] = values
    return columns


def render(response: OnlineResponse, *, full_feature_names: bool) -> bytes:
    """The JSON body of a successful response.

    Raises:
        RequestError: Two requested tables share a feature name and ``full_feature_names`` is
            false (422).
    """
    rows = response.num_rows
    names: list[str] = []
    results: list[dict[str, Any]] = []
    entity_statuses = ["PRESENT"] * rows
    epochs = [EPOCH] * rows
    for name, _, values in response.entity_columns:
        names.append(name)
        results.append(
            {"values": list(values), "statuses": entity_statuses, "event_timestamps": epochs}
        )
    stamps: dict[int | None, str] = {None: EPOCH}
    timestamps = response.event_timestamps or ((None,) * rows,) * len(response.feature_columns)
    seen: dict[str, str] = {}
    for (ref, value_type, values), statuses, times in zip(
        response.feature_columns, response.statuses, timestamps, strict=True
    ):
        table, _, feature = ref.partition(":")
        if full_feature_names:
            names.append(f"{table}__{feature}")
        else:
            if feature in seen:
                raise RequestError(
                    422,
                    "feature_name_collision",
                    "feature",
                    feature,
                    f"feature '{feature}' is requested from tables '{seen[feature]}' "
                    f"and '{table}'; set full_feature_names: true",
                )
            seen[feature] = table
            names.append(feature)
        out = list(values)
        if value_type in _FLOATS and not _all_finite(out):
            out = [_finite(v) for v in out]
        elif value_type in _FLOAT_LISTS:
            out = [v if v is None else [_finite(x) for x in v] for v in out]
        results.append(
            {
                "values": out,
                "statuses": [status._value_ for status in statuses],
                "event_timestamps": [
                    stamps[t] if t in stamps else stamps.setdefault(t, _rfc3339(t)) for t in times
                ],
            }
        )
    return orjson.dumps(
        {"metadata": {"feature_names": names}, "results": results},
        default=_json_default,
        option=orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC,
    )


def _rfc3339(micros: int | None) -> str:
    """Microseconds since the epoch as Feast writes instants: ``Z``, fractions only if any."""
    if micros is None:
        return EPOCH
    moment = from_micros(micros)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = moment.microsecond
    if fraction == 0:
        return text + "Z"
    if fraction % 1000 == 0:
        return f"{text}.{fraction // 1000:03d}Z"
    return f"{text}.{fraction:06d}Z"


def _all_finite(values: list[Any]) -> bool:
    """Whether no value is NaN or infinite (one C-level sum in the usual case)."""
    try:
        total = sum(values)
    except TypeError:  # nulls among them
        total = sum([v for v in values if v is not None])
    return math.isfinite(total)


def _finite(value: Any) -> Any:
    if value is None or math.isfinite(value):
        return value
    if value != value:
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _bytes(value: Any) -> bytes:
    if not isinstance(value, str):
        raise TypeError("not a string")
    return base64.b64decode(value, validate=True)


def _instant(value: Any) -> datetime:
    if not isinstance(value, str):
        raise TypeError("not a string")
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _decode(convert: Any, value: Any, entity: str, row: int, what: str) -> Any:
    if value is None:
        return None  # the read names the null key
    try:
        return convert(value)
    except (TypeError, ValueError, binascii.Error):
        raise RequestError(
            422,
            "invalid_entity",
            "entity",
            entity,
            f"entity '{entity}': row {row}: {value!r} is not {what}",
        ) from None


def _invalid(key: str, reason: str) -> RequestError:
    return RequestError(
        422 if key != "body" else 400,
        "invalid_request",
        "request",
        key,
        f"request key '{key}': {reason}",
    )


def _json_type(value: Any) -> str:
    names: Mapping[type, str] = {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }
    return "null" if value is None else names.get(type(value), type(value).__name__)
