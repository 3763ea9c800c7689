"""The launcher's inputs from this machine: Spark's programs, the job files, the feast_spark zip.

Nothing here imports pyspark: its location comes from ``importlib.util.find_spec`` and its
version from the package metadata.

Environment:
    ``FEAST_SPARK_SPARK_HOME``: a Spark installation to submit with (default: pyspark's own, whose
        ``bin/spark-submit`` runs the pinned Spark).
    ``FEAST_SPARK_JOBS_DIR``: where ``ingest.py``, ``materialize.py``, ... are (default: ``jobs/``
        of the source tree).
    ``FEAST_SPARK_CACHE_DIR``: where the feast_spark zip, remote-store logs and the jar cache go
        (default ``$XDG_CACHE_HOME/feast-spark``, else ``~/.cache/feast-spark``).
    ``PYSPARK_PYTHON``: the Python of the driver and the executors (default: this Python).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import py_compile
import sys
import tempfile
import zipfile
from pathlib import Path

from feast_spark.errors import ConfigError
from feast_spark.jars import cache_root
from feast_spark.spark_conf import SOURCE_ROOT

SPARK_HOME_ENV = "FEAST_SPARK_SPARK_HOME"
JOBS_DIR_ENV = "FEAST_SPARK_JOBS_DIR"
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def spark_home() -> Path:
    """The Spark installation spark-submit comes from.

    Raises:
        ConfigError: ``FEAST_SPARK_SPARK_HOME`` has no ``bin/spark-submit``, or pyspark is not
            installed.
    """
    configured = os.environ.get(SPARK_HOME_ENV)
    if configured:
        home = Path(configured)
        if not (home / "bin" / "spark-submit").is_file():
            raise ConfigError(SPARK_HOME_ENV, configured, "environment", "has no bin/spark-submit")
        return home
    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            SPARK_HOME_ENV,
            None,
            "environment",
            "pyspark is not installed here: install it, or point this variable at a Spark",
        )
    return Path(next(iter(spec.submodule_search_locations)))


def spark_version() -> str:
    """The Spark version of pyspark's package (what the REST server is told as client version)."""
    try:
        return importlib.metadata.version("pyspark")
    except importlib.metadata.PackageNotFoundError:
        return "4.2.0"


def python_executable() -> str:
    """The Python of the driver and the executors: ``$PYSPARK_PYTHON``, else this Python."""
    return os.environ.get("PYSPARK_PYTHON") or sys.executable


def cache_dir() -> Path:
    """Where the launcher keeps files of its own (the jar cache's root too)."""
    return cache_root()


def job_file(job_type: str) -> Path:
    """The entry point of a job type: ``<jobs dir>/<job type>.py``.

    Raises:
        ConfigError: There is no such file.
    """
    folder = Path(os.environ.get(JOBS_DIR_ENV) or SOURCE_ROOT / "jobs")
    path = folder / f"{job_type}.py"
    if not path.is_file():
        raise ConfigError(
            JOBS_DIR_ENV,
            str(folder),
            "environment",
            f"no {path.name} there; point {JOBS_DIR_ENV} at feast-spark's jobs/ folder",
        )
    return path.resolve()


def package_zip(out_dir: Path | None = None) -> Path:
    """The feast_spark package as a zip for ``--py-files``, named after its content's hash.

    The same sources always give the same file, so a running job's zip is never replaced under
    it and unchanged sources are not zipped again. Each module's bytecode (for this Python) is
    stored beside its source: Python cannot cache bytecode of modules imported from a zip, so
    without it every driver and Python worker compiled the package again (about 0.6 s of a small
    job's driver). A Python of another version finds the bytecode's magic number wrong and
    compiles the source instead.
    """
    files = sorted(
        path
        for path in PACKAGE_DIR.rglob("*")
        if path.is_file()
        and "__pycache__" not in path.parts
        and path.suffix not in (".pyc", ".pyo")
    )
    digest = hashlib.sha256(importlib.util.MAGIC_NUMBER)
    for path in files:
        digest.update(str(path.relative_to(PACKAGE_DIR.parent)).encode())
        digest.update(path.read_bytes())
    folder = out_dir or cache_dir() / "py-files"
    target = folder / f"feast_spark-{digest.hexdigest()[:16]}.zip"
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".feast_spark.", suffix=".zip", dir=folder)
    os.close(handle)
    try:
        with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in files:
                name = str(path.relative_to(PACKAGE_DIR.parent))
                archive.write(path, name)
                if path.suffix == ".py":
                    archive.writestr(name + "c", _bytecode(path, f"{target}/{name}"))
        os.chmod(temporary, 0o644)
        _publish(Path(temporary), target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def _publish(built: Path, target: Path) -> None:
    """Move ``built`` to ``target``, unless a concurrent build published one there first.

    A published zip never changes: Python's zipimport reads a zip's directory once, then each
    module at the offsets it read, so a job importing from a zip that another launcher replaced
    fails with "bad local file header" (builds of the same sources differ in bytes: marshal's
    output is not reproducible). Where the filesystem has no hard links, the last build wins.
    """
    try:
        os.link(built, target)
    except FileExistsError:
        pass
    except OSError:
        os.replace(built, target)
        return
    built.unlink()


def _bytecode(source: Path, shown_as: str) -> bytes:
    """``source`` compiled to a .pyc that is used without checking it against its source.

    Unchecked-hash bytecode (PEP 552): zipimport would otherwise compare a timestamp .pyc with
    the zip entry's time; the zip's name already changes with any source change.
    """
    with tempfile.TemporaryDirectory() as scratch:
        compiled = Path(scratch) / "module.pyc"
        py_compile.compile(
            str(source),
            cfile=str(compiled),
            dfile=shown_as,
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
        return compiled.read_bytes()
