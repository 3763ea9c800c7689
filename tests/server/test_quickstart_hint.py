"""The serve and curl commands the quickstart prints work on a project like the quickstart's."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from feast_spark.quickstart import DEFINITIONS, serve_hint


def test_the_printed_curl_asks_for_features_the_quickstart_defines(tmp_path: Path) -> None:
    # given the hint printed for a folder
    hint = serve_hint(tmp_path)
    assert f"cd {tmp_path} && feast-spark serve --port 6566" in hint
    body = json.loads(re.search(r"-d '(.*)'", hint).group(1))  # type: ignore[union-attr]
    # then its features exist in the quickstart's definitions
    definitions: list[dict[str, Any]] = list(yaml.safe_load_all(DEFINITIONS))
    features = {
        f"{d['name']}:{f['name']}"
        for d in definitions if d.get("kind") == "FeatureTable" for f in d["features"]
    }  # fmt: skip
    assert set(body["features"]) <= features
    assert set(body["entities"]) == {"driver_id"}
