"""Files at any address: the one place that resolves, reads and writes them.

The registry, the job store, staged inputs and job result records all go through here, so one
address means one file whichever of them names it. An address is a local path or a URI::

    data/r.json (relative)      <base>/data/r.json (base: the caller's, else the cwd)
    ~/r.json                    /home/<user>/r.json
    file:/p, file:///p          /p (Spark and Hadoop print the short form)
    s3a://b/k, s3n://b/k        s3://b/k (pyarrow's name for Hadoop's)
    gcs://b/k                   gs://b/k
    hdfs://nn:8020/p, gs://b/k  unchanged

Local writes are atomic: a temporary file in the same folder, flushed to disk, then renamed over
the target, so a reader sees the old file or the new one, never half of one. New files follow the
umask, like any file the user creates. Remote writes go through ``pyarrow.fs`` output streams,
which object stores publish only when closed. Pure Python: pyarrow is imported when a remote
address is used; pyspark never.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from feast_spark.errors import ArgumentError, NotFoundError

if TYPE_CHECKING:
    import pyarrow.fs

# Schemes opened through pyarrow.fs (Hadoop's s3a/s3n/gcs translated); config refuses others.
SCHEMES = ("file", "s3", "s3a", "s3n", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss")
_HADOOP_SCHEMES = {"s3a": "s3", "s3n": "s3", "gcs": "gs"}
_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")

# (scheme, authority, query) -> (file system, the prefix pyarrow puts before a URI's path).
_FILESYSTEMS: dict[tuple[str, str, str], tuple[pyarrow.fs.FileSystem, str]] = {}
_FILESYSTEMS_LOCK = threading.Lock()


def is_uri(address: str) -> bool:
    """Whether ``address`` has a ``scheme://`` (``file:/p``, Hadoop's short form, has not)."""
    return _URI.match(address) is not None


def local_path(address: str, base: str | os.PathLike[str] | None = None) -> str | None:
    """The absolute local path of a plain path or ``file:`` URI; None for any other URI.

    ``~`` is expanded and a relative path is resolved against ``base`` (default: the working
    directory), as :func:`absolute_path` does.

    Raises:
        ArgumentError: A ``file://`` URI names another machine.
    """
    if address.startswith("file://"):
        authority, slash, path = address[len("file://") :].partition("/")
        if authority not in ("", "localhost"):
            raise ArgumentError(
                "address", address, "a file: URI names this machine: use file:///path or /path"
            )
        address = slash + path
    elif address.startswith("file:"):
        address = address[len("file:") :]
    elif is_uri(address):
        return None
    return absolute_path(address, base)


def absolute_path(path: str, base: str | os.PathLike[str] | None = None) -> str:
    """A local path made absolute: ``~`` expanded, relative to ``base`` (default: the cwd)."""
    expanded = os.path.expanduser(path)
    if base is not None and not os.path.isabs(expanded):
        expanded = os.path.join(os.fspath(base), expanded)
    return os.path.abspath(expanded)  # folds ".." lexically; symbolic links are kept


def pyarrow_uri(address: str) -> str:
    """The URI pyarrow.fs and delta-rs understand for a Hadoop one (``s3a://b/k`` -> ``s3://b/k``)."""
    scheme, separator, rest = address.partition("://")
    if not separator:
        return address
    return f"{_HADOOP_SCHEMES.get(scheme.lower(), scheme.lower())}://{rest}"


def resolve(address: str, base: str | os.PathLike[str] | None = None) -> str:
    """The one canonical form of an address: an absolute local path, or pyarrow's URI.

    Two addresses that name the same file resolve to the same string, whoever names them.
    """
    local = local_path(address, base)
    return local if local is not None else pyarrow_uri(address)


def filesystem(address: str) -> tuple[pyarrow.fs.FileSystem, str]:
    """The pyarrow file system of an address and the path within it.

    File systems are opened once per scheme, authority (bucket, name node) and query, since
    opening one may cost a round trip (an S3 bucket's region).

    Raises:
        ValueError: pyarrow cannot open the address (``pyarrow.ArrowInvalid`` is one).
    """
    import pyarrow.fs

    local = local_path(address)
    if local is not None:
        return pyarrow.fs.LocalFileSystem(), local
    uri = pyarrow_uri(address)
    parts = urlsplit(uri)
    rest = unquote(parts.path.lstrip("/").rstrip("/"))
    key = (parts.scheme, parts.netloc, parts.query)
    with _FILESYSTEMS_LOCK:
        cached = _FILESYSTEMS.get(key)
    if cached is not None and rest:
        return cached[0], cached[1] + rest
    files, path = _from_uri(uri)
    if rest and path.endswith(rest):  # learn where pyarrow puts the path (s3: after the bucket)
        with _FILESYSTEMS_LOCK:
            _FILESYSTEMS.setdefault(key, (files, path[: len(path) - len(rest)]))
    return files, path


def read_bytes(address: str, *, kind: str = "file") -> bytes:
    """The bytes at ``address``.

    Raises:
        NotFoundError: Nothing is there (``kind`` names what was looked for).
        IsADirectoryError: A local folder is there.
    """
    local = local_path(address)
    if local is not None:
        try:
            return Path(local).read_bytes()
        except FileNotFoundError:
            raise NotFoundError(kind, address) from None
    import pyarrow.fs

    files, path = filesystem(address)
    if files.get_file_info(path).type == pyarrow.fs.FileType.NotFound:
        raise NotFoundError(kind, address)
    try:
        with files.open_input_stream(path) as stream:
            data: bytes = stream.read()
    except FileNotFoundError:  # deleted between the check and the read
        raise NotFoundError(kind, address) from None
    return data


def read_text(address: str, *, kind: str = "file") -> str:
    """The UTF-8 text at ``address`` (see :func:`read_bytes`)."""
    return read_bytes(address, kind=kind).decode("utf-8")


def write_bytes(address: str, data: bytes) -> None:
    """Write ``data`` at ``address``, replacing what is there and creating parent folders."""
    local = local_path(address)
    if local is not None:
        _atomic_write(Path(local), data)
        return
    files, path = filesystem(address)
    _make_parent(files, path)
    with files.open_output_stream(path) as stream:
        stream.write(data)


def write_text(address: str, text: str) -> None:
    """Write UTF-8 ``text`` at ``address`` (see :func:`write_bytes`)."""
    write_bytes(address, text.encode("utf-8"))


def copy_file(source: str, target: str) -> None:
    """Copy a file; a local target is replaced atomically.

    Raises:
        NotFoundError: ``source`` does not exist.
    """
    if local_path(target) is not None:
        write_bytes(target, read_bytes(source))
        return
    files, source_path = filesystem(source)
    target_files, target_path = filesystem(target)
    if target_files is not files:  # another bucket or file system: through this process
        write_bytes(target, read_bytes(source))
        return
    _make_parent(files, target_path)
    files.copy_file(source_path, target_path)


def exists(address: str) -> bool:
    """Whether a file or folder is at ``address``."""
    local = local_path(address)
    if local is not None:
        return os.path.exists(local)
    import pyarrow.fs

    files, path = filesystem(address)
    return bool(files.get_file_info(path).type != pyarrow.fs.FileType.NotFound)


def list_dirs(address: str) -> list[str]:
    """Names of the folders directly in the folder at ``address``, sorted; [] when it is missing."""
    return _list(address, directories=True)


def list_files(address: str) -> list[str]:
    """Names of the files directly in the folder at ``address``, sorted; [] when it is missing."""
    return _list(address, directories=False)


def _list(address: str, *, directories: bool) -> list[str]:
    local = local_path(address)
    if local is not None:
        folder = Path(local).expanduser()
        if not folder.is_dir():
            return []
        return sorted(
            p.name for p in folder.iterdir() if (p.is_dir() if directories else p.is_file())
        )
    import pyarrow.fs

    files, path = filesystem(address)
    selector = pyarrow.fs.FileSelector(path.rstrip("/"), allow_not_found=True, recursive=False)
    wanted = pyarrow.fs.FileType.Directory if directories else pyarrow.fs.FileType.File
    return sorted(info.base_name for info in files.get_file_info(selector) if info.type == wanted)


def delete_dir(address: str, *, dry_run: bool = False) -> bool:
    """Delete the folder at ``address`` with its contents.

    Returns:
        Whether it existed (and, unless ``dry_run``, was deleted).
    """
    local = local_path(address)
    if local is not None:
        if not os.path.isdir(local):
            return False
        if not dry_run:
            shutil.rmtree(local)
        return True
    import pyarrow.fs

    files, path = filesystem(address)
    if files.get_file_info(path).type != pyarrow.fs.FileType.Directory:
        return False
    if not dry_run:
        files.delete_dir(path)
    return True


def _from_uri(uri: str) -> tuple[pyarrow.fs.FileSystem, str]:
    """The one call that opens a file system (tests serve it from a local folder)."""
    import pyarrow.fs

    files, path = pyarrow.fs.FileSystem.from_uri(uri)
    return files, str(path)


def _make_parent(files: pyarrow.fs.FileSystem, path: str) -> None:
    parent = path.rstrip("/").rsplit("/", 1)[0]
    if parent and parent != path:
        files.create_dir(parent, recursive=True)


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # A name no other writer picks (pid alone repeats across threads); O_EXCL never reuses one.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())  # the new name never points at data still in flight
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
