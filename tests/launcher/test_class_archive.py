"""The driver's class-data sharing archive: options, fingerprint, and keeping what a job wrote."""

from __future__ import annotations

from pathlib import Path

from feast_spark.launcher.class_archive import QUIET, driver_class_archive, keep_written

CONF = {"spark.jars": "/cache/delta-spark.jar,/cache/delta-storage.jar"}


def test_the_first_driver_writes_the_archive_and_later_ones_map_it(tmp_path: Path) -> None:
    # given no archive yet
    first = driver_class_archive(CONF, tmp_path, "spark-submit")
    # then the first driver writes one to a temporary file at its exit
    assert first is not None and first.written is not None
    assert first.java_options == f"-XX:ArchiveClassesAtExit={first.written} {QUIET}"
    assert Path(first.final).parent == tmp_path and not Path(first.final).exists()

    # when that job succeeded, its archive is renamed into place
    Path(first.written).write_bytes(b"archive")
    keep_written(first.written, first.final, succeeded=True)
    assert Path(first.final).read_bytes() == b"archive" and not Path(first.written).exists()

    # then the next driver maps it and writes nothing
    later = driver_class_archive(CONF, tmp_path, "spark-submit")
    assert later is not None and later.written is None
    assert later.java_options == f"-XX:SharedArchiveFile={first.final} {QUIET}"


def test_a_failed_or_cancelled_job_leaves_no_archive(tmp_path: Path) -> None:
    archive = driver_class_archive(CONF, tmp_path, "spark-submit")
    assert archive is not None and archive.written is not None
    Path(archive.written).write_bytes(b"half")
    keep_written(archive.written, archive.final, succeeded=False)
    assert list(tmp_path.iterdir()) == []
    # and a driver that died before writing leaves nothing to keep, without an error
    keep_written(archive.written, archive.final, succeeded=True)
    assert list(tmp_path.iterdir()) == []


def test_other_jars_another_java_or_the_user_s_own_options_change_the_choice(
    tmp_path: Path,
) -> None:
    one = driver_class_archive(CONF, tmp_path, "spark-submit")
    other = driver_class_archive({"spark.jars": "/cache/other.jar"}, tmp_path, "spark-submit")
    assert one is not None and other is not None and one.final != other.final
    # the user's driver options win: no archive options to add
    assert (
        driver_class_archive(
            {**CONF, "spark.driver.extraJavaOptions": "-Xmx2g"}, tmp_path, "spark-submit"
        )
        is None
    )
    # no java to fingerprint, or the switch off: none
    assert driver_class_archive(CONF, tmp_path, "spark-submit", {"PATH": "/nowhere"}) is None
    off = {"FEAST_SPARK_CLASS_ARCHIVE": "off", "PATH": "/usr/bin:/bin"}
    assert driver_class_archive(CONF, tmp_path, "spark-submit", off) is None


def test_an_unwritable_cache_means_no_archive(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    assert driver_class_archive(CONF, blocked / "jvm", "spark-submit") is None


def test_one_job_writes_the_archive_at_a_time(tmp_path: Path) -> None:
    # given a first job writing the archive
    first = driver_class_archive(CONF, tmp_path, "spark-submit")
    assert first is not None and first.written is not None
    # when another starts meanwhile, then it runs without archive options (no second writer)
    assert driver_class_archive(CONF, tmp_path, "spark-submit") is None
    # and once the first job ended (here: failed), the next one may write it
    keep_written(first.written, first.final, succeeded=False)
    again = driver_class_archive(CONF, tmp_path, "spark-submit")
    assert again is not None and again.written is not None
