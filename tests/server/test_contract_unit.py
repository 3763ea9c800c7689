"""Pure pieces of the contract: request checks and response rendering."""

from __future__ import annotations

import math

import orjson
import pytest

from feast_spark.online.base import FeatureStatus
from feast_spark.online.service import OnlineResponse
from feast_spark.server.contract import RequestError, _rfc3339, parse_request, render
from feast_spark.types import ValueType


def test_a_feast_client_request_parses() -> None:
    request = parse_request(
        b'{"features": ["t:f"], "entities": {"k": [1, 2]}, "full_feature_names": true, '
        b'"feature_service": null, "include_feature_view_version_metadata": false}',
        max_entities=2,
    )
    assert (request.features, request.num_rows, request.full_feature_names) == (("t:f",), 2, True)


def test_too_many_entities_is_413_naming_the_limit() -> None:
    with pytest.raises(RequestError) as raised:
        parse_request(b'{"features": ["t:f"], "entities": {"k": [1, 2, 3]}}', max_entities=2)
    assert raised.value.status == 413 and "at most 2" in raised.value.message


def test_timestamps_are_written_like_feast() -> None:
    assert _rfc3339(None) == "1970-01-01T00:00:00Z"
    assert _rfc3339(1_700_000_000_000_000) == "2023-11-14T22:13:20Z"
    assert _rfc3339(1_700_000_000_250_000) == "2023-11-14T22:13:20.250Z"
    assert _rfc3339(1_700_000_000_000_001) == "2023-11-14T22:13:20.000001Z"


def test_non_finite_floats_and_bytes_render_as_feast_does() -> None:
    # given a response with NaN, infinities and bytes
    response = OnlineResponse(
        entity_columns=(("k", ValueType.INT64, (1, 2, 3)),),
        feature_columns=(
            ("t:x", ValueType.DOUBLE, (math.nan, math.inf, -math.inf)),
            ("t:b", ValueType.BYTES, (b"\x00\x01", None, None)),
        ),
        statuses=((FeatureStatus.PRESENT,) * 3, (FeatureStatus.PRESENT,) + (FeatureStatus.NOT_FOUND,) * 2),
        event_timestamps=((1, 1, 1), (1, None, None)),
    )  # fmt: skip
    # when rendered
    body = orjson.loads(render(response, full_feature_names=False))
    # then NaN and infinities are Feast's strings, bytes base64
    assert body["results"][1]["values"] == ["NaN", "Infinity", "-Infinity"]
    assert body["results"][2]["values"] == ["AAE=", None, None]
    assert body["results"][2]["event_timestamps"][1] == "1970-01-01T00:00:00Z"
