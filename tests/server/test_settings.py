"""The feature_server section of feature_store.yaml, and flags over it."""

from __future__ import annotations

from pathlib import Path

import pytest

from feast_spark.config import FeatureServerConfig, load_config
from feast_spark.errors import ConfigError
from feast_spark.server.settings import ServeSettings

from .conftest import write_config


def test_defaults_and_values_from_the_file(tmp_path: Path) -> None:
    assert load_config(write_config(tmp_path, "sqlite")).feature_server == FeatureServerConfig()
    config = load_config(write_config(tmp_path, "sqlite", feature_server={
        "host": "0.0.0.0", "port": 7000, "workers": 2, "max_entities": 50,
        "request_timeout_s": 1, "shutdown_timeout_s": 5,
    }))  # fmt: skip
    assert config.feature_server == FeatureServerConfig("0.0.0.0", 7000, 2, 50, 1.0, 5.0)


@pytest.mark.parametrize(("section", "key"), [
    ({"prot": 1}, "feature_server.prot"),
    ({"port": 0}, "feature_server.port"),
    ({"workers": "two"}, "feature_server.workers"),
    ({"max_entities": 0}, "feature_server.max_entities"),
    ({"request_timeout_s": -1}, "feature_server.request_timeout_s"),
])  # fmt: skip
def test_bad_values_name_the_key(tmp_path: Path, section: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(write_config(tmp_path, "sqlite", feature_server=section))
    assert raised.value.key == key


def test_flags_override_the_file_and_travel_to_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ServeSettings("x.yaml", None, FeatureServerConfig(port=7000, workers=2))
    flagged = settings.with_flags(host=None, port=8000, workers=None, max_entities=5)
    assert flagged.server == FeatureServerConfig(port=8000, workers=2, max_entities=5)
    monkeypatch.setenv("FEAST_SPARK_SERVE_SETTINGS", flagged.to_env())
    assert ServeSettings.from_env() == flagged
