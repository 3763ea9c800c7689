"""The served contract equals what the Client (and ``get-online-features``) returns."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from feast_spark.cli import cli

from .conftest import Project

STATUS_CASES = {  # driver_id -> status of driver_stats features
    1001: "PRESENT", 1002: "NULL_VALUE (conv_rate, note)", 1003: "OUTSIDE_MAX_AGE", 9999: "NOT_FOUND",
}  # fmt: skip


def expected_from_client(project: Project, refs: list[str], entities: dict[str, list[Any]]) -> Any:
    client = project.client()
    try:
        return client.get_online_features(refs, entities).to_dict()
    finally:
        client.close()


def check_against_client(
    body: dict[str, Any], project: Project, refs: list[str], entities: dict[str, list[Any]],
    *, full: bool,
) -> None:  # fmt: skip
    expected = expected_from_client(project, refs, entities)
    names = body["metadata"]["feature_names"]
    results = dict(zip(names, body["results"], strict=True))
    for name in entities:
        assert results[name]["values"] == entities[name]
        assert set(results[name]["statuses"]) == {"PRESENT"}
    for ref in refs:
        table, feature = ref.split(":")
        served = results[f"{table}__{feature}" if full else feature]
        assert served["values"] == expected[ref], ref
        assert served["statuses"] == expected[ref + "__status"], ref
    assert names[: len(entities)] == list(entities)  # entity keys first


def serve_and_compare(project: Project, start_server: Any) -> None:
    server = start_server(project.config)
    # given one row per status, when a Feast-shaped request is served
    refs = ["driver_stats:conv_rate", "driver_stats:trips", "driver_stats:note"]
    entities = {"driver_id": [1001, 1002, 1003, 9999, 1001]}
    status, body = server.post({"features": refs, "entities": entities})
    # then values and statuses equal the client's, and every status occurs
    assert status == 200, body
    check_against_client(body, project, refs, entities, full=False)
    statuses = {s for result in body["results"] for s in result["statuses"]}
    assert statuses == {"PRESENT", "NULL_VALUE", "OUTSIDE_MAX_AGE", "NOT_FOUND"}
    conv = body["results"][1]
    assert conv["event_timestamps"][3] == "1970-01-01T00:00:00Z"  # NOT_FOUND: the epoch
    assert conv["event_timestamps"][0].endswith("Z") and conv["event_timestamps"][0] > "2026"

    # composite keys as parallel arrays, and full feature names for a shared feature name
    refs = ["driver_stats:conv_rate", "pair_stats:conv_rate", "pair_stats:score"]
    entities = {"driver_id": [1001, 1001, 1002], "customer_id": ["a", "b", "a"]}
    status, body = server.post({"features": refs, "entities": entities, "full_feature_names": True})
    assert status == 200, body
    check_against_client(body, project, refs, entities, full=True)
    assert body["metadata"]["feature_names"] == [
        "driver_id", "customer_id", "driver_stats__conv_rate", "pair_stats__conv_rate",
        "pair_stats__score",
    ]  # fmt: skip

    # table:* expands like the client's
    status, body = server.post({"features": ["pair_stats:*"], "entities": entities})
    assert status == 200, body
    check_against_client(body, project, ["pair_stats:conv_rate", "pair_stats:score"], entities,
                         full=False)  # fmt: skip


def test_sqlite_contract_equals_the_client(sqlite_project: Project, start_server: Any) -> None:
    serve_and_compare(sqlite_project, start_server)


@pytest.mark.cassandra
def test_cassandra_contract_equals_the_client(
    cassandra_project: Project, start_server: Any
) -> None:
    serve_and_compare(cassandra_project, start_server)


def test_served_values_equal_the_get_online_features_command(
    sqlite_project: Project, start_server: Any
) -> None:
    # given the command's JSON output for some rows
    result = CliRunner().invoke(cli, [
        "get-online-features", "--config", str(sqlite_project.config), "--features",
        "driver_stats:conv_rate,driver_stats:trips", "--entity", "driver_id=1001",
        "--entity", "driver_id=1002", "--entity", "driver_id=9999", "--output", "json",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    command = json.loads(result.output)
    # when the server answers the same request
    server = start_server(sqlite_project.config)
    status, body = server.post({
        "features": ["driver_stats:conv_rate", "driver_stats:trips"],
        "entities": {"driver_id": [1001, 1002, 9999]},
    })  # fmt: skip
    # then values and statuses are the same
    assert status == 200
    served = dict(zip(body["metadata"]["feature_names"], body["results"], strict=True))
    for ref in ("driver_stats:conv_rate", "driver_stats:trips"):
        feature = ref.split(":")[1]
        assert served[feature]["values"] == command[ref]
        assert served[feature]["statuses"] == command[ref + "__status"]
