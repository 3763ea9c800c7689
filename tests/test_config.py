from pathlib import Path

import pytest

from feast_spark.config import (
    CassandraOnlineStoreConfig,
    SqliteOnlineStoreConfig,
    find_config_path,
    load_config,
)
from feast_spark.errors import ConfigError

EXAMPLE = Path(__file__).parents[1] / "conf" / "example" / "feature_store.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "feature_store.yaml"
    path.write_text(text)
    return path


MINIMAL = "project: demo\nregistry: data/registry.json\noffline_store: {path: data/offline}\n"


def test_the_example_config_loads() -> None:
    config = load_config(EXAMPLE)
    assert config.project == "driver_ranking"
    assert isinstance(config.online_store, CassandraOnlineStoreConfig)
    assert config.online_store.write_consistency == "LOCAL_QUORUM"
    assert config.online_store.replication == {"class": "SimpleStrategy", "replication_factor": 1}


def test_relative_paths_resolve_against_the_file_and_defaults_apply(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    assert config.registry == str(tmp_path / "data" / "registry.json")
    assert config.offline_store.path == str(tmp_path / "data" / "offline")
    assert isinstance(config.online_store, SqliteOnlineStoreConfig)
    assert config.spark.master == "local[*]"
    assert config.launcher.job_store == str(tmp_path / "data" / "jobs")


def test_uris_are_left_alone(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL.replace("data/offline", "s3a://bucket/offline")))
    assert config.offline_store.path == "s3a://bucket/offline"


def test_a_registry_in_hadoops_short_file_form_keeps_it_and_sqlite_lands_beside_it(
    tmp_path: Path,
) -> None:
    # given a registry named in Hadoop's short form file:/abs/path (Spark reads the paths, and
    # on a cluster a bare /abs/path may mean HDFS, so file: stays)
    folder = tmp_path / "repo"
    config = load_config(
        write(tmp_path, MINIMAL.replace("data/registry.json", f"file:{folder}/registry.json"))
    )
    # then the job store follows it, and SQLite, which opens plain paths, gets the local path
    assert config.registry == f"file:{folder}/registry.json"
    assert config.launcher.job_store == f"file:{folder}/jobs"
    assert isinstance(config.online_store, SqliteOnlineStoreConfig)
    assert config.online_store.path == str(folder / "online_store.db")
    # and a registry at a file: URI naming a folder is refused like a plain path is
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(write(tmp_path, MINIMAL.replace("data/registry.json", f"file:{tmp_path}")))


@pytest.mark.parametrize(
    ("extra", "key", "reason"),
    [
        ("colour: blue\n", "colour", "unknown key"),
        ("online_store: {type: cassandra, prot: 9042}\n", "online_store.prot", "unknown key"),
        ("online_store: {type: cassandra, port: nine}\n", "online_store.port", "whole number"),
        ("online_store: {type: cassandra, port: 70000}\n", "online_store.port", "between"),
        ("online_store: {type: redis}\n", "online_store.type", "sqlite"),
        (
            "online_store: {type: cassandra, read_consistency: MOST}\n",
            "online_store.read_consistency",
            "one of",
        ),
        (
            "online_store: {type: cassandra, replication: {class: SimpleStrategy}}\n",
            "online_store.replication",
            "replication_factor",
        ),
        ("spark: {master: 7}\n", "spark.master", "a string"),
        ("launcher: {type: mesos}\n", "launcher.type", "one of"),
    ],
)
def test_bad_keys_and_values_name_key_value_and_file(
    tmp_path: Path, extra: str, key: str, reason: str
) -> None:
    path = write(tmp_path, MINIMAL + extra)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.key == key
    assert caught.value.source == str(path)
    assert reason in str(caught.value)


def test_a_missing_required_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'offline_store'.*required"):
        load_config(write(tmp_path, "project: demo\nregistry: r.json\n"))


def test_yaml_errors_give_the_line(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match="not valid YAML: line 3, column 1: .*flow sequence at line 2"
    ):
        load_config(write(tmp_path, "project: demo\nregistry: [x\n"))


def test_sqlite_with_a_cluster_master_says_to_configure_cassandra(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="configure online_store.type: cassandra"):
        load_config(write(tmp_path, MINIMAL + "spark: {master: 'spark://host:7077'}\n"))


def test_environment_variables_override_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEAST_SPARK__ONLINE_STORE__TYPE", "cassandra")
    monkeypatch.setenv("FEAST_SPARK__ONLINE_STORE__PORT", "9043")
    monkeypatch.setenv("FEAST_SPARK__PROJECT", "other")
    config = load_config(write(tmp_path, MINIMAL))
    assert config.project == "other"
    assert isinstance(config.online_store, CassandraOnlineStoreConfig)
    assert config.online_store.port == 9043


def test_a_bad_override_is_still_validated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEAST_SPARK__SPARK__MASTRE", "local")
    with pytest.raises(ConfigError, match="spark.mastre"):
        load_config(write(tmp_path, MINIMAL))


def test_credentials_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(write(tmp_path, MINIMAL + "online_store: {type: cassandra}\n"))
    assert isinstance(config.online_store, CassandraOnlineStoreConfig)
    monkeypatch.delenv("FEAST_SPARK_CASSANDRA_USERNAME", raising=False)
    assert config.online_store.credentials is None
    monkeypatch.setenv("FEAST_SPARK_CASSANDRA_USERNAME", "feast")
    monkeypatch.setenv("FEAST_SPARK_CASSANDRA_PASSWORD", "s3cret")
    assert config.online_store.credentials == ("feast", "s3cret")


def test_tls_settings(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, MINIMAL + "online_store: {type: cassandra, tls: {ca_cert: ca.pem}}\n")
    )
    assert isinstance(config.online_store, CassandraOnlineStoreConfig)
    assert config.online_store.tls is not None
    assert config.online_store.tls.ca_cert == str(tmp_path / "ca.pem")


def test_the_file_is_found_by_flag_env_or_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, MINIMAL)
    monkeypatch.delenv("FEAST_SPARK_CONFIG", raising=False)
    assert find_config_path(cwd=str(tmp_path)) == path
    monkeypatch.setenv("FEAST_SPARK_CONFIG", str(path))
    assert find_config_path(cwd="/") == path
    with pytest.raises(ConfigError, match="no such file"):
        find_config_path(str(tmp_path / "missing.yaml"))
    monkeypatch.delenv("FEAST_SPARK_CONFIG")
    with pytest.raises(ConfigError, match="quickstart"):
        find_config_path(cwd=str(tmp_path / "empty"))


def test_the_registry_may_be_a_section_with_feasts_cache_ttl(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "registry: data/registry.json", "registry: {path: data/registry.json, cache_ttl_seconds: 5}"
    )
    config = load_config(write(tmp_path, text))
    assert config.registry == str(tmp_path / "data" / "registry.json")
    assert config.registry_cache_ttl_seconds == 5.0
    assert load_config(write(tmp_path, MINIMAL)).registry_cache_ttl_seconds == 60.0


@pytest.mark.parametrize(
    ("registry", "key"),
    [
        ("{path: r.json, cache_ttl_seconds: -1}", "registry.cache_ttl_seconds"),
        ("{path: r.json, cache_ttl_seconds: soon}", "registry.cache_ttl_seconds"),
        ("{path: r.json, ttl: 5}", "registry.ttl"),
        ("{cache_ttl_seconds: 5}", "registry.path"),
    ],
)
def test_a_bad_registry_section_names_its_key(tmp_path: Path, registry: str, key: str) -> None:
    text = MINIMAL.replace("registry: data/registry.json", f"registry: {registry}")
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(write(tmp_path, text))


def test_the_registry_cache_ttl_can_be_set_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the short form "registry: PATH" and an override of the TTL
    monkeypatch.setenv("FEAST_SPARK__REGISTRY__CACHE_TTL_SECONDS", "0")
    # when loaded
    config = load_config(write(tmp_path, MINIMAL))
    # then the path stays and the TTL is the override
    assert config.registry == str(tmp_path / "data" / "registry.json")
    assert config.registry_cache_ttl_seconds == 0.0


def test_the_future_event_time_allowance_is_a_validated_duration(tmp_path: Path) -> None:
    from datetime import timedelta

    # given no setting, then a setting, then bad ones
    assert load_config(write(tmp_path, MINIMAL)).future_event_time_allowance == timedelta(hours=1)
    path = write(tmp_path, MINIMAL + "future_event_time_allowance: 15m\n")
    assert load_config(path).future_event_time_allowance == timedelta(minutes=15)
    for bad, reason in (("soon", "is not a duration"), ("400d", "between 0s and 366d")):
        write(tmp_path, MINIMAL + f"future_event_time_allowance: {bad}\n")
        with pytest.raises(ConfigError, match=f"future_event_time_allowance.*{reason}"):
            load_config(path)
