"""The JVM jars feast-spark adds to Spark, resolved once per machine from a pinned lock file.

Pure Python, standard library only (no pyspark, no Maven, no Ivy), so that the launcher,
``./spark-submit.sh`` and :func:`feast_spark.spark.session.build_spark_session` can all call it
before any JVM starts.

``feast_spark/jars.lock`` lists the exact jars (Maven coordinate, size, sha256) that
``conf/jars/pom.xml`` resolves to: Delta Lake and its dependencies that Spark does not ship.
:func:`resolve` makes sure they are all in one cache folder,
``<cache>/jars/<lock digest>/``, and returns their paths:

- A folder marked complete returns at once: no lock, no network, no hashing.
- Otherwise the caller takes an exclusive ``fcntl`` lock on ``<lock digest>.lock`` beside it;
  every other process waits for it, then finds the folder complete. Of two, five or twenty
  processes started together exactly one downloads; the others wait and succeed.
- Each jar is downloaded to a temporary file in the same folder, checked (length announced by
  the server, size and sha256 pinned in the lock), and renamed into place: a reader never sees
  a partial jar. A short or corrupt download is retried, then reported.
- Correctness does not depend on the lock (on a shared file system where ``fcntl`` locks do not
  reach across machines, two writers rename identical, verified files): the lock only saves
  duplicate downloads.

Environment:
    ``FEAST_SPARK_CACHE_DIR``: the cache root (default ``$XDG_CACHE_HOME/feast-spark``, else
        ``~/.cache/feast-spark``); jars go to ``<root>/jars/<lock digest>/``.
    ``FEAST_SPARK_MAVEN_REPO``: the Maven repository to download from (default Maven
        Central); a corporate mirror (``https://nexus.example.com/repository/maven-public``) or
        a local one (``file:///home/me/.m2/repository``).

Command line (pre-seeding a cluster or an air-gapped machine)::

    python -m feast_spark.jars                 # resolve into the cache, print its folder
    python -m feast_spark.jars --dest DIR      # and copy the jars to DIR (FEAST_SPARK_JARS_DIR)
    python -m feast_spark.jars --lock-from-maven LIST   # print a lock from `mvn dependency:list`
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import hashlib
import http.client
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from feast_spark.errors import ConfigError, JarDownloadError

LOCK_FILE = Path(__file__).with_name("jars.lock")
"""The pinned jar set that ships with this package."""

MAVEN_CENTRAL = "https://repo1.maven.org/maven2"
CACHE_DIR_ENV = "FEAST_SPARK_CACHE_DIR"
REPOSITORY_ENV = "FEAST_SPARK_MAVEN_REPO"
COMPLETE_MARKER = ".complete"

_CHUNK = 1 << 20


@dataclass(frozen=True)
class PinnedJar:
    """One jar of the lock: its Maven coordinate and the exact bytes expected.

    Attributes:
        group: Maven groupId, e.g. ``io.delta``.
        artifact: Maven artifactId, e.g. ``delta-spark_2.13``.
        version: The version, e.g. ``4.4.0``.
        size: The jar's size in bytes.
        sha256: The jar's sha256, lower-case hex.
    """

    group: str
    artifact: str
    version: str
    size: int
    sha256: str

    @property
    def coordinate(self) -> str:
        """``group:artifact:version``."""
        return f"{self.group}:{self.artifact}:{self.version}"

    @property
    def file_name(self) -> str:
        """``artifact-version.jar``, the name Maven and Spark give it."""
        return f"{self.artifact}-{self.version}.jar"

    def url(self, repository: str) -> str:
        """Where the jar is in a Maven repository laid out the standard way."""
        parts = (*self.group.split("."), self.artifact, self.version, self.file_name)
        return "/".join((repository.rstrip("/"), *parts))


@dataclass(frozen=True)
class JarLock:
    """The pinned jar set: what ``conf/jars/pom.xml`` resolves to, byte for byte.

    Attributes:
        jars: The jars, in file-name order.
        source: Where the lock was read from (for error messages).
    """

    jars: tuple[PinnedJar, ...]
    source: str = "jars.lock"

    @property
    def digest(self) -> str:
        """16 hex digits naming this exact set (its cache folder): any change gives a new one."""
        text = "\n".join(f"{j.coordinate} {j.size} {j.sha256}" for j in self.jars)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @classmethod
    def parse(cls, text: str, source: str = "jars.lock") -> JarLock:
        """Read a lock: one ``group:artifact:version size sha256`` per line, ``#`` comments.

        Raises:
            ConfigError: A line is malformed, or a jar is listed twice.
        """
        jars: list[PinnedJar] = []
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            fields = line.split()
            parts = fields[0].split(":")
            valid = (
                len(fields) == 3
                and len(parts) == 3
                and all(parts)
                and fields[1].isdigit()
                and len(fields[2]) == 64
                and all(c in "0123456789abcdef" for c in fields[2])
            )
            if not valid:
                raise ConfigError(
                    f"line {number}",
                    raw,
                    source,
                    "expected 'group:artifact:version <size> <sha256 hex>'; regenerate the lock "
                    "with conf/jars/fetch-jars.sh --lock",
                )
            jars.append(PinnedJar(parts[0], parts[1], parts[2], int(fields[1]), fields[2]))
        names = [jar.file_name for jar in jars]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ConfigError(duplicates[0], None, source, "listed twice; keep one line per jar")
        if not jars:
            raise ConfigError("jars", None, source, "no jar listed")
        return cls(tuple(sorted(jars, key=lambda j: j.file_name)), source)

    @classmethod
    def read(cls, path: Path = LOCK_FILE) -> JarLock:
        """Read a lock file (default: the one that ships with this package)."""
        return cls.parse(path.read_text(encoding="utf-8"), str(path))


def cache_root(environ: Mapping[str, str] | None = None) -> Path:
    """feast-spark's cache root: ``$FEAST_SPARK_CACHE_DIR``, XDG's cache, or ``~/.cache``."""
    env = os.environ if environ is None else environ
    configured = env.get(CACHE_DIR_ENV)
    if configured:
        return Path(configured)
    xdg = env.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "feast-spark"


def repository(environ: Mapping[str, str] | None = None) -> str:
    """The Maven repository to download from: ``$FEAST_SPARK_MAVEN_REPO`` or Maven Central."""
    env = os.environ if environ is None else environ
    return env.get(REPOSITORY_ENV) or MAVEN_CENTRAL


def jar_folder(lock: JarLock, root: Path) -> Path:
    """The folder that holds (or will hold) exactly the jars of ``lock``."""
    return root / "jars" / lock.digest


def resolve(
    lock: JarLock,
    root: Path,
    repository_url: str = MAVEN_CENTRAL,
    *,
    timeout_s: float = 60.0,
    attempts: int = 3,
    backoff_s: float = 1.0,
    lock_timeout_s: float = 900.0,
    report: Callable[[str], None] | None = None,
) -> list[Path]:
    """Make sure every jar of ``lock`` is in its cache folder; return their paths.

    Safe to call from any number of processes at once (see the module docstring); a complete
    folder returns without taking the lock or touching the network.

    Args:
        lock: The jars to resolve.
        root: The cache root (:func:`cache_root`).
        repository_url: The Maven repository (``https://…`` or ``file://…``).
        timeout_s: Socket timeout of each download.
        attempts: Tries per jar before giving up (a short or corrupt download is retried).
        backoff_s: Seconds before the second try, doubled for each next one.
        lock_timeout_s: How long to wait for another process that holds the lock.
        report: Called with one line when this call starts downloading (default: stderr).

    Returns:
        The jars' paths, in file-name order.

    Raises:
        JarDownloadError: A jar could not be downloaded or did not match the lock, after
            ``attempts`` tries; or the cache folder cannot be written.
    """
    folder = jar_folder(lock, root)
    paths = [folder / jar.file_name for jar in lock.jars]
    if _is_complete(lock, folder):
        return paths
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _cache_error(lock, folder, error) from None
    with _exclusive(folder.with_name(folder.name + ".lock"), lock_timeout_s, lock, folder):
        if _is_complete(lock, folder):
            return paths  # another process finished while this one waited
        missing = [jar for jar in lock.jars if not _matches(folder / jar.file_name, jar)]
        if missing:
            total = sum(jar.size for jar in missing) / 1e6
            (report or _to_stderr)(
                f"feast-spark: downloading {len(missing)} jars ({total:.1f} MB) from "
                f"{repository_url} into {folder} (once per machine)"
            )
        for jar in missing:
            _download(jar, folder, repository_url, timeout_s, attempts, backoff_s)
        _write_atomically(folder / COMPLETE_MARKER, f"{lock.digest}\n".encode())
    return paths


def _is_complete(lock: JarLock, folder: Path) -> bool:
    """The marker is written last, under the lock: with it, every jar was verified."""
    if not (folder / COMPLETE_MARKER).is_file():
        return False
    for jar in lock.jars:
        try:
            if (folder / jar.file_name).stat().st_size != jar.size:
                return False
        except OSError:
            return False
    return True


def _matches(path: Path, jar: PinnedJar) -> bool:
    try:
        if path.stat().st_size != jar.size:
            return False
        digest = hashlib.sha256()
        with open(path, "rb") as stream:
            for chunk in iter(lambda: stream.read(_CHUNK), b""):
                digest.update(chunk)
    except OSError:
        return False
    return digest.hexdigest() == jar.sha256


@contextlib.contextmanager
def _exclusive(path: Path, timeout_s: float, lock: JarLock, folder: Path) -> Iterator[None]:
    """Hold an exclusive ``fcntl`` lock on ``path``; the kernel releases it if we die."""
    try:
        handle = open(path, "a+b")  # noqa: SIM115 - closed in finally
    except OSError as error:
        raise _cache_error(lock, folder, error) from None
    try:
        deadline = time.monotonic() + timeout_s
        delay = 0.05
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise _cache_error(lock, folder, error) from None
                if time.monotonic() >= deadline:
                    raise JarDownloadError(
                        lock.jars[0].coordinate,
                        str(folder),
                        f"another process has held {path} for over {timeout_s:.0f} s",
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
        yield
    finally:
        handle.close()  # releases the lock


def _download(
    jar: PinnedJar,
    folder: Path,
    repository_url: str,
    timeout_s: float,
    attempts: int,
    backoff_s: float,
) -> None:
    url = jar.url(repository_url)
    reason = "not tried"
    for attempt in range(max(1, attempts)):
        if attempt:
            time.sleep(backoff_s * 2 ** (attempt - 1))
        try:
            _fetch_verified(jar, url, folder, timeout_s)
            return
        except _RejectedError as rejected:
            reason = str(rejected)
        except urllib.error.HTTPError as error:
            reason = f"HTTP {error.code} {error.reason}"
            if error.code == 404:
                break  # a missing file stays missing
        except urllib.error.URLError as error:
            reason = str(error.reason)
        except (OSError, ValueError, http.client.HTTPException) as error:  # resets, short reads
            reason = f"{type(error).__name__}: {error}"
    raise JarDownloadError(jar.coordinate, url, f"{reason} (after {attempt + 1} tries)")


class _RejectedError(Exception):
    """A download that arrived but is not the pinned jar."""


def _fetch_verified(jar: PinnedJar, url: str, folder: Path, timeout_s: float) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{jar.file_name}.", suffix=".part", dir=folder)
    try:
        digest = hashlib.sha256()
        received = 0
        with os.fdopen(handle, "wb") as out:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                announced = response.headers.get("Content-Length")
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        if announced is not None and announced.isdigit() and int(announced) != received:
            raise _RejectedError(f"received {received} bytes of the {announced} announced")
        if received != jar.size:
            raise _RejectedError(f"received {received} bytes, the lock says {jar.size}")
        if digest.hexdigest() != jar.sha256:
            raise _RejectedError(
                f"sha256 {digest.hexdigest()} differs from the lock's {jar.sha256} "
                "(a corrupt download or a mirror serving other bytes)"
            )
        os.chmod(temporary, 0o644)
        os.replace(temporary, folder / jar.file_name)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _write_atomically(path: Path, content: bytes) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(content)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _cache_error(lock: JarLock, folder: Path, error: OSError) -> JarDownloadError:
    return JarDownloadError(
        lock.jars[0].coordinate,
        str(folder),
        f"cannot write the jar cache ({error.strerror or error}); set {CACHE_DIR_ENV} to a "
        "writable folder",
    )


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# --- lock generation and pre-seeding -------------------------------------------------------------


def lock_from_maven_list(listing: str) -> str:
    """A lock's text from ``mvn dependency:list -DoutputAbsoluteArtifactFilename=true`` output.

    Each resolved line looks like ``group:artifact:jar[:classifier]:version:scope:/path.jar``
    (optionally followed by `` -- module …``); the jar at that path is hashed.

    Raises:
        ConfigError: A jar has a classifier (not supported by the lock), or no jar is listed.
    """
    lines = []
    for raw in listing.splitlines():
        entry = raw.strip().split(" -- ", 1)[0].strip()
        parts = entry.split(":", 6)
        if len(parts) < 6 or not parts[-1].endswith(".jar"):
            continue
        if len(parts) == 7:
            raise ConfigError(
                entry, None, "mvn dependency:list", "classified jars are not supported"
            )
        group, artifact, _type, version, _scope, path = parts
        content = Path(path).read_bytes()
        lines.append(
            f"{group}:{artifact}:{version} {len(content)} {hashlib.sha256(content).hexdigest()}"
        )
    if not lines:
        raise ConfigError("jars", None, "mvn dependency:list", "no jar in the listing")
    header = (
        "# The jars feast-spark adds to Spark: what conf/jars/pom.xml resolves to.\n"
        "# Generated by conf/jars/fetch-jars.sh --lock; do not edit by hand.\n"
        "# group:artifact:version  size  sha256\n"
    )
    return header + "\n".join(sorted(lines, key=lambda s: s.split()[0])) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m feast_spark.jars``: resolve the jars (or print a lock); see the module doc."""
    parser = argparse.ArgumentParser(
        prog="python -m feast_spark.jars",
        description="Resolve feast-spark's pinned JVM jars into the cache (once per machine).",
    )
    parser.add_argument("--dest", type=Path, help="also copy the jars to this folder")
    parser.add_argument(
        "--lock-from-maven",
        type=Path,
        metavar="LIST",
        help="print a lock file made from `mvn dependency:list` output and exit",
    )
    args = parser.parse_args(argv)
    try:
        if args.lock_from_maven:
            sys.stdout.write(lock_from_maven_list(args.lock_from_maven.read_text()))
            return 0
        lock = JarLock.read()
        paths = resolve(lock, cache_root(), repository())
        if args.dest:
            args.dest.mkdir(parents=True, exist_ok=True)
            for path in paths:
                _copy_atomically(path, args.dest / path.name)
            print(args.dest)
        else:
            print(paths[0].parent)
    except (ConfigError, JarDownloadError, OSError) as error:
        print(f"feast_spark.jars: {error}", file=sys.stderr)
        return 1
    return 0


def _copy_atomically(source: Path, target: Path) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(handle)
    try:
        shutil.copyfile(source, temporary)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


if __name__ == "__main__":
    sys.exit(main())
