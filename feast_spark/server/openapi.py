"""The server's contract as an OpenAPI 3.1 document (served at ``/openapi.json`` and ``/docs``)."""

from __future__ import annotations

import html
from typing import Any, Final

import orjson

_STATUS = {"type": "string", "enum": ["PRESENT", "NULL_VALUE", "NOT_FOUND", "OUTSIDE_MAX_AGE"]}
_ERROR = {
    "type": "object",
    "required": ["detail", "error"],
    "properties": {
        "detail": {"type": "string", "description": "One line: what is wrong and the fix."},
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "examples": ["unknown_feature_table"]},
                "kind": {"type": "string", "examples": ["feature table"]},
                "name": {"type": "string", "description": "The culprit.", "examples": ["drv"]},
                "message": {"type": "string"},
            },
        },
    },
}


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


SCHEMA: Final[dict[str, Any]] = {
    "openapi": "3.1.0",
    "info": {
        "title": "feast-spark feature server",
        "version": "1",
        "description": (
            "Feast's feature-server JSON contract over the feast-spark online store "
            "(Cassandra or SQLite). Values and statuses equal Client.get_online_features."
        ),
    },
    "paths": {
        "/get-online-features": {
            "post": {
                "summary": "Latest feature values for entity rows",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/Request"},
                            "example": {
                                "features": ["driver_stats:conv_rate", "driver_stats:trips"],
                                "entities": {"driver_id": [1001, 1002]},
                                "full_feature_names": False,
                            },
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "One result per name: entity keys first, then features.",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/Response"}
                            }
                        },
                    },
                    "400": _error_response("Malformed JSON."),
                    "404": _error_response("Unknown feature table or feature."),
                    "413": _error_response("Too many entity rows, or a body too large."),
                    "422": _error_response(
                        "A missing or ill-typed field, a key of the wrong type, key arrays of "
                        "different lengths, an unknown or missing entity, a name collision."
                    ),
                    "503": _error_response("The online store (or registry) is unreachable."),
                    "504": _error_response("The online store did not answer in time."),
                },
            }
        },
        "/health": {"get": {"summary": "Alive", "responses": {"200": {"description": "Alive"}}}},
        "/ready": {
            "get": {
                "summary": "The online store answers",
                "responses": {
                    "200": {"description": "Ready"},
                    "503": _error_response("The online store does not answer."),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics of every worker",
                "responses": {"200": {"description": "Prometheus text format"}},
            }
        },
    },
    "components": {
        "schemas": {
            "Request": {
                "type": "object",
                "required": ["features", "entities"],
                "additionalProperties": False,
                "properties": {
                    "features": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"type": "string", "description": "table:feature or table:*"},
                    },
                    "entities": {
                        "type": "object",
                        "description": (
                            "Entity name -> keys, one per row; composite keys as parallel "
                            "arrays of equal length. BYTES keys base64, UNIX_TIMESTAMP keys "
                            "RFC 3339."
                        ),
                        "additionalProperties": {"type": "array"},
                    },
                    "full_feature_names": {
                        "type": "boolean",
                        "default": False,
                        "description": "Name features table__feature.",
                    },
                    "include_feature_view_version_metadata": {
                        "type": "boolean",
                        "description": "Accepted for Feast clients; ignored.",
                    },
                },
            },
            "Response": {
                "type": "object",
                "properties": {
                    "metadata": {
                        "type": "object",
                        "properties": {
                            "feature_names": {"type": "array", "items": {"type": "string"}}
                        },
                    },
                    "results": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "values": {"type": "array"},
                                "statuses": {"type": "array", "items": _STATUS},
                                "event_timestamps": {
                                    "type": "array",
                                    "items": {"type": "string", "format": "date-time"},
                                },
                            },
                        },
                    },
                },
            },
            "Error": _ERROR,
        }
    },
}

OPENAPI: Final = orjson.dumps(SCHEMA, option=orjson.OPT_INDENT_2)

DOCS_HTML: Final = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>feast-spark feature server</title></head>
<body>
<h1>feast-spark feature server</h1>
<p>Feast's JSON contract. The OpenAPI document: <a href="/openapi.json">/openapi.json</a>.</p>
<pre>curl -s localhost:6566/get-online-features -d '{{"features": ["driver_stats:conv_rate"],
  "entities": {{"driver_id": [1001, 1002]}}}}'</pre>
<pre>{html.escape(OPENAPI.decode())}</pre>
</body></html>
"""
