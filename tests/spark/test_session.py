"""build_spark_session: Delta works, time is UTC, defaults and jars come from one place."""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import feast_spark.spark_conf as spark_conf
from feast_spark.errors import ConfigError
from feast_spark.jars import JarLock
from feast_spark.spark.session import build_spark_session, delta_log_bytes, size_delta_snapshots
from feast_spark.spark_conf import (
    DELTA_PACKAGE,
    OWN_JAR,
    delta_jars_conf,
    find_defaults_file,
    jars_conf,
    merge_conf,
    read_properties,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ROOT = Path(__file__).resolve().parents[2]
POM = ROOT / "conf" / "jars" / "pom.xml"
DEFAULTS = ROOT / "conf" / "spark-defaults.conf"
MAVEN = "{http://maven.apache.org/POM/4.0.0}"
SCHEMA = "id INT, name STRING"


def rows(spark: SparkSession, path: str, version: int) -> list[tuple[int, str]]:
    table = spark.read.format("delta").option("versionAsOf", version).load(path)
    return sorted((row["id"], row["name"]) for row in table.collect())


# --- with Spark --------------------------------------------------------------------------------


def test_delta_table_keeps_both_versions_for_time_travel(
    spark: SparkSession, tmp_path: Path
) -> None:
    # given a Delta table written once, then appended to
    path = str(tmp_path / "table")
    spark.createDataFrame([(1, "a"), (2, "b")], SCHEMA).write.format("delta").save(path)
    spark.createDataFrame([(3, "c")], SCHEMA).write.format("delta").mode("append").save(path)

    # when each version is read back with versionAsOf
    first, second = rows(spark, path, 0), rows(spark, path, 1)

    # then version 0 is the first write and version 1 adds the appended row
    assert first == [(1, "a"), (2, "b")]
    assert second == [(1, "a"), (2, "b"), (3, "c")]


def test_a_delta_log_is_measured_as_the_bytes_of_its_files(
    spark: SparkSession, tmp_path: Path
) -> None:
    # given a Delta table of two commits, and a path with no table yet
    path = str(tmp_path / "table")
    spark.createDataFrame([(1, "a")], SCHEMA).write.format("delta").save(path)
    spark.createDataFrame([(2, "b")], SCHEMA).write.format("delta").mode("append").save(path)
    log_files = [f for f in (tmp_path / "table" / "_delta_log").rglob("*") if f.is_file()]
    # Hadoop's own checksum files (".name.crc") are not part of the log
    on_disk = sum(f.stat().st_size for f in log_files if not f.name.startswith("."))

    # when each log is measured through Hadoop's file system
    measured = delta_log_bytes(spark, path)
    missing = delta_log_bytes(spark, f"file://{tmp_path}/no_table")

    # then the table's log counts every byte of it, and no table counts 0
    assert measured == on_disk > 0
    assert missing == 0


def test_a_snapshot_setting_given_at_submission_is_kept(
    spark: SparkSession, tmp_path: Path
) -> None:
    # given a session whose submission set the snapshot partitions (tests/conftest.py: 2)
    before = spark.conf.get("spark.databricks.delta.snapshotPartitions")

    # when a job would size them to a small table
    chosen = size_delta_snapshots(spark, [str(tmp_path / "table")])

    # then the submitted value stays
    assert chosen is None
    assert spark.conf.get("spark.databricks.delta.snapshotPartitions") == before == "2"


def test_delta_sql_extension_is_active(spark: SparkSession, tmp_path: Path) -> None:
    # given a Delta table with two commits
    path = str(tmp_path / "table")
    for value in (1, 2):
        spark.createDataFrame([(value, "x")], SCHEMA).write.format("delta").mode("append").save(
            path
        )

    # when its history is asked for in SQL (needs DeltaSparkSessionExtension)
    history = spark.sql(f"DESCRIBE HISTORY delta.`{path}`").select("version", "operation")

    # then both commits are listed
    assert sorted((r["version"], r["operation"]) for r in history.collect()) == [
        (0, "WRITE"),
        (1, "WRITE"),
    ]


def test_session_and_jvm_time_zone_are_utc(spark: SparkSession) -> None:
    # given the session built from conf/spark-defaults.conf
    # when its SQL time zone and the driver JVM's default time zone are read
    session_tz = spark.conf.get("spark.sql.session.timeZone")
    jvm_tz = spark.sparkContext._jvm.java.util.TimeZone.getDefault().getID()  # type: ignore[union-attr]

    # then both are UTC, whatever the machine's zone
    assert session_tz == "UTC"
    assert jvm_tz == "UTC"


def test_defaults_file_is_applied_below_the_callers_conf(spark: SparkSession) -> None:
    # given conf/spark-defaults.conf and the test conf from tests/conftest.py
    defaults = read_properties(DEFAULTS)

    # then the session has the defaults' SQL settings ...
    for key in (
        "spark.sql.extensions",
        "spark.sql.catalog.spark_catalog",
        "spark.sql.ansi.enabled",
    ):
        assert spark.conf.get(key) == defaults[key]
    # ... and the caller's conf where it sets a key
    assert spark.conf.get("spark.sql.shuffle.partitions") == "2"


def test_second_call_returns_the_running_session_without_overriding_it(spark: SparkSession) -> None:
    # given the running session (shuffle partitions = 2 from the conftest conf)
    # when build_spark_session is called again with a different value and a new key
    again = build_spark_session(
        "another-name",
        master="local[1]",
        conf={"spark.sql.shuffle.partitions": "7", "spark.feast_spark.test.marker": "set"},
    )
    try:
        # then it is the same Spark; settings it has are kept, the missing one is added
        assert again.sparkContext is spark.sparkContext
        assert again.conf.get("spark.sql.shuffle.partitions") == "2"
        assert again.sparkContext.master == "local[2]"
        assert again.conf.get("spark.feast_spark.test.marker") == "set"
    finally:
        again.conf.unset("spark.feast_spark.test.marker")


# --- without Spark: the jar choice -------------------------------------------------------------


def fake_jars(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")
    return folder


def test_jars_directory_with_delta_jars_gives_spark_jars(tmp_path: Path) -> None:
    # given a jars directory that holds the Delta jars
    jars = fake_jars(tmp_path, "delta-spark_2.13-4.4.0.jar", "delta-storage-4.4.0.jar", "x-1.jar")

    # when the jar setting is chosen
    chosen = delta_jars_conf({"FEAST_SPARK_JARS_DIR": str(jars)})

    # then every jar of that directory is listed, in a stable order
    assert list(chosen) == ["spark.jars"]
    assert [Path(p).name for p in chosen["spark.jars"].split(",")] == [
        "delta-spark_2.13-4.4.0.jar",
        "delta-storage-4.4.0.jar",
        "x-1.jar",
    ]


@pytest.mark.parametrize("names", [(), ("delta-spark_2.13-4.4.0.jar",)], ids=["empty", "partial"])
def test_a_jars_dir_without_the_delta_jars_is_an_error_that_names_the_fix(
    tmp_path: Path, names: tuple[str, ...]
) -> None:
    # given FEAST_SPARK_JARS_DIR set to a folder without the Delta jars (or only some of them)
    jars = fake_jars(tmp_path / "jars", *names)

    # when the jar setting is chosen, then the error says so instead of going to the network
    with pytest.raises(ConfigError, match="python -m feast_spark.jars --dest") as caught:
        delta_jars_conf({"FEAST_SPARK_JARS_DIR": str(jars)})
    assert caught.value.key == "FEAST_SPARK_JARS_DIR"
    assert caught.value.value == str(jars)


def local_maven_repository(folder: Path) -> tuple[JarLock, str]:
    """A lock of two fake Delta jars and a file:// repository that holds them."""
    lines = []
    for artifact in ("delta-spark_2.13", "delta-storage"):
        body = artifact.encode() * 100
        path = folder / "io" / "delta" / artifact / "4.4.0" / f"{artifact}-4.4.0.jar"
        path.parent.mkdir(parents=True)
        path.write_bytes(body)
        lines.append(f"io.delta:{artifact}:4.4.0 {len(body)} {hashlib.sha256(body).hexdigest()}")
    return JarLock.parse("\n".join(lines)), folder.as_uri()


@pytest.mark.parametrize("mode", ["", "cache"])
def test_without_a_jars_dir_the_pinned_jars_come_from_the_cache(
    tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given no .jars/ in the source tree and a repository with the pinned jars
    monkeypatch.setattr(spark_conf, "SOURCE_ROOT", tmp_path / "source")
    lock, repository = local_maven_repository(tmp_path / "m2")
    env = {
        "FEAST_SPARK_JARS_MODE": mode,
        "FEAST_SPARK_CACHE_DIR": str(tmp_path / "cache"),
        "FEAST_SPARK_MAVEN_REPO": repository,
    }

    # when the jar setting is chosen
    chosen = delta_jars_conf(env, lock=lock)

    # then Spark gets the cached local files, never a Maven coordinate
    folder = tmp_path / "cache" / "jars" / lock.digest
    assert chosen == {
        "spark.jars": f"{folder}/delta-spark_2.13-4.4.0.jar,{folder}/delta-storage-4.4.0.jar"
    }


def test_mode_cache_ignores_a_jars_dir(tmp_path: Path) -> None:
    jars = fake_jars(tmp_path / "jars", "delta-spark_2.13-4.4.0.jar", "delta-storage-4.4.0.jar")
    lock, repository = local_maven_repository(tmp_path / "m2")
    env = {
        "FEAST_SPARK_JARS_DIR": str(jars),
        "FEAST_SPARK_JARS_MODE": "cache",
        "FEAST_SPARK_CACHE_DIR": str(tmp_path / "cache"),
        "FEAST_SPARK_MAVEN_REPO": repository,
    }
    chosen = delta_jars_conf(env, lock=lock)["spark.jars"]
    assert chosen.startswith(str(tmp_path / "cache"))


def test_mode_packages_wins_over_present_jars(tmp_path: Path) -> None:
    jars = fake_jars(tmp_path, "delta-spark_2.13-4.4.0.jar", "delta-storage-4.4.0.jar")
    env = {"FEAST_SPARK_JARS_DIR": str(jars), "FEAST_SPARK_JARS_MODE": "Packages"}
    assert delta_jars_conf(env) == {"spark.jars.packages": DELTA_PACKAGE}


def test_every_choice_adds_our_own_jar_as_a_local_file(tmp_path: Path) -> None:
    # given a jars folder, and Ivy packages mode
    jars = fake_jars(tmp_path, "delta-spark_2.13-4.4.0.jar", "delta-storage-4.4.0.jar")
    folder = {"FEAST_SPARK_JARS_DIR": str(jars)}
    packages = {**folder, "FEAST_SPARK_JARS_MODE": "packages"}
    # then our jar comes after the Delta jars, and beside Ivy's packages
    assert jars_conf(folder) == {
        "spark.jars": f"{jars}/delta-spark_2.13-4.4.0.jar,{jars}/delta-storage-4.4.0.jar,{OWN_JAR}"
    }
    assert jars_conf(packages) == {"spark.jars.packages": DELTA_PACKAGE, "spark.jars": str(OWN_JAR)}
    assert OWN_JAR.is_file()


def test_mode_jars_without_jars_is_an_error_that_names_the_fix(tmp_path: Path) -> None:
    env = {"FEAST_SPARK_JARS_DIR": str(tmp_path / "missing"), "FEAST_SPARK_JARS_MODE": "jars"}
    with pytest.raises(ConfigError, match="fetch-jars.sh") as caught:
        delta_jars_conf(env)
    assert caught.value.key == "FEAST_SPARK_JARS_DIR"


def test_unknown_mode_is_an_error() -> None:
    with pytest.raises(ConfigError, match="'jars'.*'packages'") as caught:
        delta_jars_conf({"FEAST_SPARK_JARS_MODE": "maven"})
    assert caught.value.key == "FEAST_SPARK_JARS_MODE"
    assert caught.value.value == "maven"


def test_jar_lists_are_joined_not_replaced() -> None:
    merged = merge_conf(
        [
            {"spark.jars": "/a.jar,/b.jar", "spark.app.name": "x"},
            {"spark.jars": "/b.jar,/c.jar", "spark.app.name": "y"},
        ]
    )
    assert merged == {"spark.jars": "/a.jar,/b.jar,/c.jar", "spark.app.name": "y"}


# --- without Spark: one source of truth --------------------------------------------------------


def test_properties_are_read_like_java_properties(tmp_path: Path) -> None:
    # given a properties file with each supported form
    path = tmp_path / "spark-defaults.conf"
    path.write_text(
        "# comment\n"
        "! also a comment\n"
        "\n"
        "spark.a   one two  \n"
        "spark.b=-Dx=y\n"
        "spark.c : colon\n"
        "spark.list \\\n"
        "    x,\\\n"
        "    # not a comment inside a continuation,\\\n"
        "    z\n"
        "spark.empty\n",
        encoding="utf-8",
    )

    # when it is read
    properties = read_properties(path)

    # then keys and values are what Spark's loader gives
    assert properties == {
        "spark.a": "one two",
        "spark.b": "-Dx=y",
        "spark.c": "colon",
        "spark.list": "x,# not a comment inside a continuation,z",
        "spark.empty": "",
    }


def test_properties_with_other_backslash_escapes_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "spark-defaults.conf"
    path.write_text("spark.ok 1\nspark.path C:\\tmp\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"spark-defaults.conf:2") as caught:
        read_properties(path)
    assert caught.value.key == "spark.path"


def test_pom_exclusions_match_spark_jars_excludes() -> None:
    # given the Maven exclusions (pre-fetched jars) and Ivy's (spark.jars.packages)
    pom = ET.parse(POM).getroot()
    maven = {
        f"{e.findtext(MAVEN + 'groupId')}:{e.findtext(MAVEN + 'artifactId')}"
        for e in pom.iter(MAVEN + "exclusion")
    }
    ivy = set(read_properties(DEFAULTS)["spark.jars.excludes"].split(","))

    # then both routes leave out the same artifacts
    assert maven == ivy
    assert len(maven) > 20


def test_delta_package_matches_pom_version() -> None:
    pom = ET.parse(POM).getroot()
    version = pom.findtext(f"{MAVEN}properties/{MAVEN}delta.version")
    scala = pom.findtext(f"{MAVEN}properties/{MAVEN}scala.binary.version")
    assert f"io.delta:delta-spark_{scala}:{version}" == DELTA_PACKAGE


def test_delta_package_matches_installed_python_delta() -> None:
    from importlib.metadata import version

    # given the Python delta-spark package (delta.tables) and the jar coordinate
    python_delta = version("delta-spark")
    jar_version = DELTA_PACKAGE.rsplit(":", 1)[1]

    # then they are the same release line (a patch may differ: the jar can lag the wheel)
    assert python_delta.split(".")[:2] == jar_version.split(".")[:2]


def test_conf_dir_without_defaults_file_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given FEAST_SPARK_CONF_DIR pointing at a folder without spark-defaults.conf
    monkeypatch.setenv("FEAST_SPARK_CONF_DIR", str(tmp_path))

    # when a session is built, then the error names the variable before any JVM starts
    with pytest.raises(ConfigError, match="no spark-defaults.conf") as caught:
        find_defaults_file(required=True)
    assert caught.value.key == "FEAST_SPARK_CONF_DIR"


def test_conf_dir_picks_that_defaults_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "spark-defaults.conf").write_text("spark.x 1\n", encoding="utf-8")
    monkeypatch.setenv("FEAST_SPARK_CONF_DIR", str(tmp_path))
    assert find_defaults_file(required=True) == tmp_path / "spark-defaults.conf"


def test_source_tree_defaults_file_is_found_without_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FEAST_SPARK_CONF_DIR", raising=False)
    assert find_defaults_file(required=True) == DEFAULTS
