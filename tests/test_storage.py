"""feast_spark.storage: one address means one file, written atomically, whoever names it."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pyarrow.fs
import pytest

from feast_spark import storage
from feast_spark.definitions import Entity
from feast_spark.errors import ArgumentError, NotFoundError
from feast_spark.launcher.job_store import JobStore
from feast_spark.registry import Registry
from feast_spark.types import ValueType


@pytest.fixture
def fresh_filesystems(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty file-system cache, so a test sees its own pyarrow calls."""
    monkeypatch.setattr(storage, "_FILESYSTEMS", {})


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


# --- resolution --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "base", "expected"),
    [
        ("s3a://bucket/x/registry.json", None, "s3://bucket/x/registry.json"),
        ("s3n://bucket/x", None, "s3://bucket/x"),
        ("S3A://bucket/x", None, "s3://bucket/x"),
        ("gcs://bucket/x", None, "gs://bucket/x"),
        ("gs://bucket/x", None, "gs://bucket/x"),
        ("hdfs://nn:8020/feast/r.json", None, "hdfs://nn:8020/feast/r.json"),
        (
            "abfss://c@acct.dfs.core.windows.net/r.json",
            None,
            "abfss://c@acct.dfs.core.windows.net/r.json",
        ),
        ("file:/some/abs/path", None, "/some/abs/path"),  # Hadoop's short form
        ("file:///some/abs/path", None, "/some/abs/path"),
        ("file://localhost/some/abs/path", None, "/some/abs/path"),
        ("/some/abs/path", "/elsewhere", "/some/abs/path"),
        ("data/r.json", "/repo", "/repo/data/r.json"),
        ("../r.json", "/repo/conf", "/repo/r.json"),
        ("file:data/r.json", "/repo", "/repo/data/r.json"),
    ],
)
def test_every_address_resolves_to_one_canonical_form(
    address: str, base: str | None, expected: str
) -> None:
    # given an address as a user, Hadoop or Spark writes it; when resolved; then one form
    assert storage.resolve(address, base) == expected


def test_home_and_relative_paths_resolve_against_home_and_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a home folder and a working directory
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    # when paths without a base are resolved; then ~ is home and relative is the cwd
    assert storage.resolve("~/r.json") == str(tmp_path / "home" / "r.json")
    assert storage.resolve("file:~/r.json") == str(tmp_path / "home" / "r.json")
    assert storage.resolve("r.json") == str(tmp_path / "r.json")
    assert storage.local_path("s3a://bucket/r.json") is None


def test_a_file_uri_naming_another_machine_is_refused() -> None:
    with pytest.raises(ArgumentError, match="file:///path"):
        storage.resolve("file://otherhost/p")


def test_a_registry_and_a_job_store_at_the_same_s3a_address_ask_pyarrow_for_the_same_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_filesystems: None
) -> None:
    # given pyarrow asked for file systems through a recorder that serves s3:// from a local
    # folder (no network), the way S3FileSystem.from_uri names paths: "<bucket>/<key>"
    asked: list[str] = []

    def from_uri(uri: str) -> tuple[pyarrow.fs.FileSystem, str]:
        asked.append(uri)
        scheme, _, path = uri.partition("://")
        assert scheme == "s3", uri
        local = pyarrow.fs.SubTreeFileSystem(str(tmp_path), pyarrow.fs.LocalFileSystem())
        return local, path

    monkeypatch.setattr(storage, "_from_uri", from_uri)

    # when a registry and a job store are both configured under s3a://bucket/x
    registry = Registry("s3a://bucket/x/registry.json")
    registry.apply("demo", [Entity("driver_id", ValueType.INT64)])
    registry.apply("demo", [Entity("driver_id", ValueType.INT64), Entity("rider", ValueType.INT64)])
    store = JobStore("s3a://bucket/x/jobs")
    store.write_json("j-1", "exit.json", {"exit_code": 0})

    # then pyarrow was asked once, for s3:// (the file system is cached per bucket), and both
    # wrote under the same bucket folder; Spark still gets the store's s3a:// form
    assert asked == ["s3://bucket/x/registry.json"]
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == [
        "bucket/x/jobs/j-1/exit.json",
        "bucket/x/registry.json",
        "bucket/x/registry.json.bak",
    ]
    assert store.read_json("j-1", "exit.json") == {"exit_code": 0}
    assert store.path("j-1", "spec.json") == "s3a://bucket/x/jobs/j-1/spec.json"
    assert storage.resolve(registry.uri) == "s3://bucket/x/registry.json"
    assert storage.resolve(store.uri) == "s3://bucket/x/jobs"


def test_file_systems_are_cached_per_scheme_and_authority(fresh_filesystems: None) -> None:
    # given two files under one in-memory file system; when both are opened
    first, first_path = storage.filesystem("mock:///a/one.json")
    second, second_path = storage.filesystem("mock:///b/two.json")
    # then they share it (pyarrow's mock:// makes a new empty one per call otherwise)
    assert first is second
    assert (first_path, second_path) == ("a/one.json", "b/two.json")


# --- writes ----------------------------------------------------------------------------------


def test_a_write_replaces_the_file_and_leaves_nothing_beside_it(tmp_path: Path) -> None:
    # given a file written once, in a folder that did not exist
    target = tmp_path / "nested" / "r.json"
    storage.write_text(str(target), "first")
    # when it is written again
    storage.write_text(str(target), "second")
    # then it holds the second text only, and no temporary is left
    assert storage.read_text(str(target)) == "second"
    assert [p.name for p in target.parent.iterdir()] == ["r.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a file, and a rename that fails (a full disk, a crash between write and rename)
    target = tmp_path / "r.json"
    storage.write_text(str(target), "old")

    def broken_replace(source: str, destination: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    # when it is written
    with pytest.raises(OSError, match="No space left"):
        storage.write_text(str(target), "new")
    # then the old file is whole and no temporary is left
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_new_files_follow_the_umask(tmp_path: Path, umask_022: None) -> None:
    # given umask 022 (job-store files were 0600 when made with mkstemp; secrets files, written
    # by launcher/secrets.py, stay 0600); when a file is written; then it is 0644
    target = tmp_path / "job.json"
    storage.write_text(str(target), "{}")
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_remote_writes_go_through_pyarrow_output_streams(fresh_filesystems: None) -> None:
    # given an in-memory file system; when a file is written, copied and its folder listed
    storage.write_text("mock:///store/a/job.json", "one")
    storage.copy_file("mock:///store/a/job.json", "mock:///store/b/job.json")
    # then it reads back, and the folders are there
    assert storage.read_text("mock:///store/b/job.json") == "one"
    assert storage.list_dirs("mock:///store") == ["a", "b"]
    assert storage.exists("mock:///store/a/job.json")
    assert storage.delete_dir("mock:///store/a")
    assert storage.list_dirs("mock:///store") == ["b"]
    assert not storage.delete_dir("mock:///store/a")


# --- reads and folders ---------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["local", "remote"])
def test_reading_a_missing_file_is_a_clear_not_found_error(
    tmp_path: Path, where: str, fresh_filesystems: None
) -> None:
    # given an address where nothing is
    address = str(tmp_path / "none.json") if where == "local" else "mock:///nothing/none.json"
    # when it is read; then the error names what was looked for and where
    with pytest.raises(NotFoundError) as caught:
        storage.read_text(address, kind="job result")
    assert str(caught.value) == f"job result '{address}' not found"
    assert not storage.exists(address)


def test_local_folders_are_listed_and_deleted(tmp_path: Path) -> None:
    # given two job folders and a file under a file: URI root
    root = f"file:{tmp_path}"
    storage.write_text(f"{root}/j-2/job.json", "{}")
    storage.write_text(f"{root}/j-1/job.json", "{}")
    (tmp_path / "stray.txt").write_text("x")
    # then only folders are listed, sorted; a missing root lists nothing
    assert storage.list_dirs(root) == ["j-1", "j-2"]
    assert storage.list_dirs(str(tmp_path / "missing")) == []
    # and a dry run deletes nothing, a real one the folder with its contents
    assert storage.delete_dir(f"{root}/j-1", dry_run=True)
    assert (tmp_path / "j-1" / "job.json").exists()
    assert storage.delete_dir(f"{root}/j-1")
    assert not storage.exists(f"{root}/j-1")
    assert not storage.delete_dir(f"{root}/j-1")
