"""The package zip shipped to jobs with ``--py-files``."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

from feast_spark.launcher.environment import _publish, package_zip


def import_from(archive: Path) -> subprocess.CompletedProcess[str]:
    """A fresh Python importing feast_spark from ``archive`` first; prints a module's file."""
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "import feast_spark.errors as e, feast_spark.specs; print(e.__file__)"
    )
    return subprocess.run(
        [sys.executable, "-c", probe, str(archive)], capture_output=True, text=True
    )


def test_the_package_zip_carries_bytecode_that_python_imports_without_the_sources(
    tmp_path: Path,
) -> None:
    # given the package zip, and a copy of it without any source file
    shipped = package_zip(tmp_path / "out")
    with zipfile.ZipFile(shipped) as archive:
        names = archive.namelist()
        sources = [name for name in names if name.endswith(".py")]
        assert sources and all(name + "c" in names for name in sources)
        assert archive.read("feast_spark/errors.pyc")[:4] == importlib.util.MAGIC_NUMBER
        bytecode_only = tmp_path / "bytecode-only.zip"
        with zipfile.ZipFile(bytecode_only, "w") as copy:
            for name in names:
                if not name.endswith(".py"):
                    copy.writestr(name, archive.read(name))
    # when a Python imports the package from that copy (ahead of the installed package)
    done = import_from(bytecode_only)
    # then the modules come from the zip's bytecode
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(str(bytecode_only))


def test_the_same_sources_give_the_same_zip(tmp_path: Path) -> None:
    assert package_zip(tmp_path) == package_zip(tmp_path)


def test_a_python_of_another_version_imports_the_zip_from_its_sources(tmp_path: Path) -> None:
    # given the package zip as another Python sees it: every bytecode's magic number differs
    shipped = package_zip(tmp_path / "out")
    other = tmp_path / "other-python.zip"
    with zipfile.ZipFile(shipped) as archive, zipfile.ZipFile(other, "w") as copy:
        for name in archive.namelist():
            data = archive.read(name)
            copy.writestr(name, b"\0\0\0\0" + data[4:] if name.endswith(".pyc") else data)
    # when a Python imports the package from it
    done = import_from(other)
    # then it compiles the sources in the zip instead
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(str(other))


def test_a_published_zip_is_never_replaced_by_a_concurrent_build(tmp_path: Path) -> None:
    # given the zip one launcher published, and another launcher's build of the same sources
    # (marshal's bytes differ between builds: here, other bytes altogether)
    target = package_zip(tmp_path)
    published = target.read_bytes()
    late_build = tmp_path / ".feast_spark.late.zip"
    late_build.write_bytes(b"another build")
    # when the late build is published
    _publish(late_build, target)
    # then the zip a running job may be importing from is unchanged, and the late build is gone
    assert target.read_bytes() == published
    assert not late_build.exists()
