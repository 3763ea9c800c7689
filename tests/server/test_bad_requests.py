"""Bad requests get a 4xx JSON error naming the culprit, and never hurt the server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import ServerProcess, make_project

GOOD = {"features": ["driver_stats:trips"], "entities": {"driver_id": [1001]}}

CASES = [
    # (what, payload or raw bytes, status, code, culprit)
    ("malformed JSON", b'{"features": [', 400, "malformed_json", "body"),
    ("not an object", b"[1, 2]", 400, "invalid_request", "body"),
    ("unknown table", {"features": ["nope:trips"], "entities": {"driver_id": [1]}},
     404, "unknown_feature_table", "nope"),
    ("unknown feature", {"features": ["driver_stats:speed"], "entities": {"driver_id": [1]}},
     404, "unknown_feature", "driver_stats:speed"),
    ("malformed reference", {"features": ["driver_stats"], "entities": {"driver_id": [1]}},
     422, "invalid_feature_reference", "driver_stats"),
    ("wrong key type", {"features": ["driver_stats:trips"], "entities": {"driver_id": ["1001"]}},
     422, "invalid_entity", "driver_id"),
    ("float key for INT64", {"features": ["driver_stats:trips"], "entities": {"driver_id": [1.5]}},
     422, "invalid_entity", "driver_id"),
    ("null key", {"features": ["driver_stats:trips"], "entities": {"driver_id": [None]}},
     422, "invalid_entity", "driver_id"),
    ("arrays of different lengths",
     {"features": ["pair_stats:score"], "entities": {"driver_id": [1, 2], "customer_id": ["a"]}},
     422, "entity_lengths_differ", "driver_id,customer_id"),
    ("too many entities", {"features": ["driver_stats:trips"], "entities": {"driver_id": [1] * 11}},
     413, "too_many_entities", "driver_id"),
    ("missing entity", {"features": ["pair_stats:score"], "entities": {"driver_id": [1]}},
     422, "missing_entity", "customer_id"),
    ("unknown entity", {"features": ["driver_stats:trips"], "entities": {"driver_id": [1], "x": [1]}},
     422, "unknown_entity", "x"),
    ("no features", {"features": [], "entities": {"driver_id": [1]}},
     422, "invalid_request", "features"),
    ("entities not arrays", {"features": ["driver_stats:trips"], "entities": {"driver_id": 1}},
     422, "invalid_entity", "driver_id"),
    ("unknown request key", {**GOOD, "entites": {}}, 422, "invalid_request", "entites"),
    ("full_feature_names not a bool", {**GOOD, "full_feature_names": "yes"},
     422, "invalid_request", "full_feature_names"),
    ("feature name collision",
     {"features": ["driver_stats:conv_rate", "pair_stats:conv_rate"],
      "entities": {"driver_id": [1], "customer_id": ["a"]}},
     422, "feature_name_collision", "conv_rate"),
]  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the module (bad requests must not hurt it: each case checks after)."""
    project = make_project(tmp_path_factory.mktemp("bad"), "sqlite")
    server = ServerProcess(project.config, "--max-entities", "10").wait_healthy()
    yield server
    assert server.stop() == 0


@pytest.mark.parametrize(("what", "payload", "status", "code", "culprit"), CASES,
                         ids=[case[0] for case in CASES])  # fmt: skip
def test_bad_request_names_the_culprit(
    server: Any, what: str, payload: Any, status: int, code: str, culprit: str
) -> None:
    # when a bad request is sent
    if isinstance(payload, bytes):
        got, body = server.post(None, raw=payload)
    else:
        got, body = server.post(payload)
    # then a JSON error with a status, a code and the culprit; no traceback
    assert (got, body["error"]["code"], body["error"]["name"]) == (status, code, culprit), body
    assert body["detail"] == body["error"]["message"]
    assert "Traceback" not in body["detail"] and "\n" not in body["detail"]
    # and the server keeps serving
    assert server.post(GOOD)[0] == 200


def test_unknown_routes_and_methods_are_json_errors(server: Any) -> None:
    status, body = server.get("/nope")
    assert status == 404 and body["error"]["name"] == "/nope"
    status, body = server.get("/get-online-features")
    assert status == 405 and body["error"]["code"] == "http"


def test_a_body_over_the_limit_is_refused_before_it_is_read(server: Any) -> None:
    status, body = server.post(None, raw=b" " * (2 << 20))
    assert status == 413 and body["error"]["code"] == "body_too_large"
    assert server.post(GOOD)[0] == 200


def test_docs_and_openapi_describe_the_contract(server: Any) -> None:
    status, schema = server.get("/openapi.json")
    assert status == 200
    assert "/get-online-features" in schema["paths"]
    assert schema["components"]["schemas"]["Response"]["properties"]["results"]
    status, page = server.get("/docs")
    assert status == 200 and "openapi.json" in page
