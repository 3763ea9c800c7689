"""Class-data sharing for local drivers: a JVM maps the classes an earlier driver loaded.

Most of a small local job's time is its driver's fixed cost, and much of that is loading and
linking the classes of Spark SQL and Delta, the same ones in every job. The JVM can keep them in
a class-data sharing (CDS) archive: a driver started with ``-XX:ArchiveClassesAtExit=FILE`` writes
the classes it loaded when it exits, and later drivers started with ``-XX:SharedArchiveFile=FILE``
map them instead of loading them again.

- The archive is kept in feast-spark's cache (``<cache root>/jvm``), one per fingerprint of what
  it depends on: the ``java`` that runs the driver, ``SPARK_HOME`` and the job's jars.
- The first job of a fingerprint writes it, to a temporary file at its driver's exit; the
  supervisor renames it into place once that job succeeded (:mod:`feast_spark.launcher.
  supervisor`), so no half-written archive is ever used. One job writes at a time (a claim
  file, created exclusively): writing costs its driver seconds of CPU at exit, and twenty jobs
  started at once on a bare machine must not all pay it; the others run without an archive.
- The JVM checks the archive again at every start and, when it does not match (another JDK
  build, another class path), is missing or damaged, runs without it: ``-Xlog:cds=off`` keeps
  that silent. An archive can cost disk space only, never a job.
- ``spark.driver.extraJavaOptions`` set by the user wins over these options (no archive then);
  ``FEAST_SPARK_CLASS_ARCHIVE=off`` turns the archive off.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SWITCH_ENV = "FEAST_SPARK_CLASS_ARCHIVE"
QUIET = "-Xlog:cds=off,cds+dynamic=off"
# Temporary archives of drivers that never finished (a supervisor killed -9) are removed after
# this long; a live driver writes its archive within seconds of exiting.
STALE_TEMP_S = 24 * 3600
# A claim to write the archive older than this is one whose job never reported: taken over.
STALE_CLAIM_S = 3600


@dataclass(frozen=True)
class ClassArchive:
    """The CDS options of one driver.

    Attributes:
        java_options: To add to the driver's ``spark.driver.extraJavaOptions``.
        written: The temporary file this driver writes at its exit (None: it uses the archive).
        final: The archive's place, where ``written`` is renamed when the job succeeded.
    """

    java_options: str
    written: str | None
    final: str


def driver_class_archive(
    conf: Mapping[str, str],
    folder: Path,
    spark_submit: str,
    environ: Mapping[str, str] | None = None,
) -> ClassArchive | None:
    """The archive options of a local driver with Spark settings ``conf``; None: no archive.

    Args:
        conf: The job's Spark settings as spark-submit gets them (``spark.jars``, and the
            user's ``spark.driver.extraJavaOptions``, which turns the archive off).
        folder: Where archives are kept.
        spark_submit: The spark-submit program (its Spark's jars are on the class path).
        environ: The launcher's environment (``JAVA_HOME``, ``PATH``, the switch).
    """
    env = os.environ if environ is None else environ
    if env.get(SWITCH_ENV, "").strip().lower() in ("off", "0", "false", "no"):
        return None
    if conf.get("spark.driver.extraJavaOptions"):
        return None
    fingerprint = _fingerprint(conf, spark_submit, env)
    if fingerprint is None:
        return None
    final = folder / f"driver-{fingerprint}.jsa"
    if final.is_file():
        return ClassArchive(f"-XX:SharedArchiveFile={final} {QUIET}", None, str(final))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _remove_stale(folder)
        if not _claim(_claim_path(str(final))):
            return None  # another job is writing it
    except OSError:
        return None  # an unwritable cache: jobs run as they would without an archive
    written = folder / f".driver-{fingerprint}-{secrets.token_hex(4)}.jsa.tmp"
    return ClassArchive(f"-XX:ArchiveClassesAtExit={written} {QUIET}", str(written), str(final))


def keep_written(archive_written: str, final: str, *, succeeded: bool) -> None:
    """After the driver's exit: rename its archive into place if the job succeeded, else drop it.

    Either way the claim to write it is released.
    """
    try:
        if succeeded and os.path.getsize(archive_written) > 0:
            os.replace(archive_written, final)
        else:
            os.remove(archive_written)
    except OSError:
        pass  # not written (the driver died first): nothing to keep
    with contextlib.suppress(OSError):
        os.remove(_claim_path(final))


def _claim_path(final: str) -> str:
    return final + ".claim"


def _claim(path: str) -> bool:
    """Create ``path`` exclusively (True), or find it held by a live claim (False)."""
    for _ in range(2):
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            return True
        except FileExistsError:
            try:
                if time.time() - os.stat(path).st_mtime < STALE_CLAIM_S:
                    return False
                os.remove(path)  # a claim of a job that never reported: take it over
            except FileNotFoundError:
                continue  # released meanwhile: try again
    return False


def _fingerprint(conf: Mapping[str, str], spark_submit: str, env: Mapping[str, str]) -> str | None:
    java_home = env.get("JAVA_HOME")
    if java_home:
        java: str | None = os.path.join(java_home, "bin", "java")
    else:
        java = shutil.which("java", path=env.get("PATH"))
    if not java or not os.path.exists(java):
        return None
    real = os.path.realpath(java)
    stat = os.stat(real)
    parts = [
        real, str(stat.st_size), str(stat.st_mtime_ns),
        os.path.realpath(shutil.which(spark_submit, path=env.get("PATH")) or spark_submit),
        conf.get("spark.jars", ""), conf.get("spark.driver.extraClassPath", ""),
    ]  # fmt: skip
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _remove_stale(folder: Path) -> None:
    now = time.time()
    for path in folder.glob(".driver-*.jsa.tmp"):
        try:
            if now - path.stat().st_mtime > STALE_TEMP_S:
                path.unlink()
        except OSError:
            continue
