"""What every feast-spark Spark run is given: ``spark-defaults.conf`` and the Delta Lake jars.

Pure Python (no pyspark), so that the three ways a Spark starts make the same choices from one
copy of the logic:

- :func:`feast_spark.spark.session.build_spark_session` (tests, notebooks, local runs),
- ``./spark-submit.sh`` (asks :func:`delta_jars_conf` through a one-line Python call),
- :mod:`feast_spark.launcher` (builds the spark-submit command of a job).

``spark-defaults.conf`` is looked up in ``$FEAST_SPARK_CONF_DIR``, then in the ``conf/`` folder of
the source tree this module lives in, then in ``<prefix>/share/feast-spark/conf/`` where an
installed package puts it (setup.cfg ``[options.data_files]``). The Delta jars are always local
files given as ``spark.jars``: a pre-seeded folder (``FEAST_SPARK_JARS_DIR``, ``.jars/``) or the
pinned set of ``feast_spark/jars.lock``, downloaded once per machine into the jar cache
(:mod:`feast_spark.jars`); ``spark.jars.packages`` with :data:`DELTA_PACKAGE` only on request.
"""

from __future__ import annotations

import os
import sysconfig
from collections.abc import Iterable, Mapping
from pathlib import Path

from feast_spark.errors import ConfigError
from feast_spark.jars import JarLock, cache_root, repository, resolve

DELTA_PACKAGE = "io.delta:delta-spark_2.13:4.4.0"
"""Maven coordinate for ``FEAST_SPARK_JARS_MODE=packages``; the version of conf/jars/pom.xml."""

DEFAULTS_FILE = "spark-defaults.conf"

CONF_DIR_ENV = "FEAST_SPARK_CONF_DIR"
JARS_DIR_ENV = "FEAST_SPARK_JARS_DIR"
JARS_MODE_ENV = "FEAST_SPARK_JARS_MODE"

OWN_JAR = Path(__file__).with_name("feast-spark-jvm.jar")
"""feast-spark's own JVM classes (feature statistics fed by generated code), built from
``conf/jvm/src`` by ``conf/jvm/build.sh`` and shipped inside the package."""

# The source tree this module sits in: <root>/feast_spark/spark_conf.py.
SOURCE_ROOT = Path(__file__).resolve().parents[1]
# Where setup.cfg's data_files puts conf/spark-defaults.conf in an installed package.
_INSTALLED_CONF_DIR = ("share", "feast-spark", "conf")
# A jars directory is usable only if it holds these (file name prefixes).
_REQUIRED_JARS = ("delta-spark_2.13-", "delta-storage-")
_JARS_MODES = ("", "jars", "cache", "packages")
# Comma-separated lists that are joined, not replaced, when two layers both set them.
LIST_KEYS = frozenset({"spark.jars", "spark.jars.packages", "spark.submit.pyFiles"})


def delta_jars_conf(
    environ: Mapping[str, str] | None = None, *, lock: JarLock | None = None
) -> dict[str, str]:
    """Choose how Spark gets the Delta Lake jars: local files, always, unless asked otherwise.

    In this order:

    1. ``FEAST_SPARK_JARS_DIR``, when set: every ``*.jar`` in it (a pre-seeded, air-gapped
       copy); it must hold the Delta jars.
    2. ``.jars/`` of the source tree, when ``conf/jars/fetch-jars.sh`` filled it.
    3. The pinned jars of ``feast_spark/jars.lock`` in the jar cache, downloaded once per
       machine (under an inter-process lock, checksums verified) by
       :func:`feast_spark.jars.resolve`; later calls touch no network.

    ``spark.jars`` with local files works for any number of jobs started at once and in every
    deploy mode; Ivy (``spark.jars.packages``) does neither (concurrent resolutions into one Ivy
    cache corrupt each other, and standalone cluster mode fails on the executors), so it is only
    used when asked for. ``./spark-submit.sh``, ``build_spark_session`` and the launcher all ask
    this function, so they make the same choice.

    Environment:
        ``FEAST_SPARK_JARS_DIR``: a folder of pre-seeded jars (default: ``.jars/`` in the source
        tree, used when complete).
        ``FEAST_SPARK_JARS_MODE``: unset or empty chooses as above; ``jars`` uses only the jars
        folder (never the network); ``cache`` uses only the jar cache (ignores any jars folder);
        ``packages`` gives Spark :data:`DELTA_PACKAGE` to resolve with Ivy.
        ``FEAST_SPARK_CACHE_DIR``, ``FEAST_SPARK_MAVEN_REPO``: see :mod:`feast_spark.jars`.

    Example:
        >>> delta_jars_conf({"FEAST_SPARK_JARS_MODE": "packages"})
        {'spark.jars.packages': 'io.delta:delta-spark_2.13:4.4.0'}

    Args:
        environ: The environment to read (default: ``os.environ``).
        lock: The pinned jars (default: ``feast_spark/jars.lock``).

    Returns:
        One setting: ``{"spark.jars": "<comma-separated local paths>"}`` or, in ``packages``
        mode, ``{"spark.jars.packages": DELTA_PACKAGE}``.

    Raises:
        ConfigError: ``FEAST_SPARK_JARS_MODE`` is not one of the above, or the jars folder was
            asked for (``FEAST_SPARK_JARS_DIR`` set, or mode ``jars``) and lacks the Delta jars.
        JarDownloadError: The jar cache had to be filled and a jar could not be downloaded or
            did not match its checksum.
    """
    env = os.environ if environ is None else environ
    mode = env.get(JARS_MODE_ENV, "").strip().lower()
    if mode not in _JARS_MODES:
        raise ConfigError(
            JARS_MODE_ENV,
            env[JARS_MODE_ENV],
            "environment",
            "must be 'jars' (only the jars folder), 'cache' (only the jar cache) or 'packages' "
            f"(resolve {DELTA_PACKAGE} with Ivy), or unset to use the jars folder when it "
            "holds the Delta jars and the jar cache otherwise",
        )
    if mode == "packages":
        return {"spark.jars.packages": DELTA_PACKAGE}
    if mode != "cache":
        configured = env.get(JARS_DIR_ENV)
        jars_dir = Path(configured or SOURCE_ROOT / ".jars")
        found = _delta_jars_in(jars_dir)
        if found:
            return {"spark.jars": ",".join(str(jar) for jar in found)}
        if configured or mode == "jars":
            raise ConfigError(
                JARS_DIR_ENV,
                str(jars_dir),
                "environment",
                "this folder holds no Delta jars "
                f"({', '.join(p + '*.jar' for p in _REQUIRED_JARS)}); fill it with "
                "'python -m feast_spark.jars --dest DIR' or conf/jars/fetch-jars.sh, or unset "
                f"{JARS_DIR_ENV} (and {JARS_MODE_ENV}) to download them into the jar cache",
            )
    the_lock = lock or JarLock.read()
    paths = resolve(the_lock, cache_root(env), repository(env))
    return {"spark.jars": ",".join(str(path) for path in paths)}


def jars_conf(
    environ: Mapping[str, str] | None = None, *, lock: JarLock | None = None
) -> dict[str, str]:
    """What every feast-spark Spark is given: :func:`delta_jars_conf` plus :data:`OWN_JAR`.

    Our jar is a local file of the package, so it is always ``spark.jars`` (beside Ivy's
    ``spark.jars.packages`` in ``packages`` mode).

    Raises:
        ConfigError, JarDownloadError: As :func:`delta_jars_conf`.
    """
    chosen = delta_jars_conf(environ, lock=lock)
    chosen["spark.jars"] = ",".join(filter(None, (chosen.get("spark.jars"), str(OWN_JAR))))
    return chosen


def _delta_jars_in(folder: Path) -> list[Path]:
    """Every ``*.jar`` of ``folder`` (absolute, sorted) when it holds the Delta jars, else []."""
    jars = sorted(folder.glob("*.jar")) if folder.is_dir() else []
    names = [jar.name for jar in jars]
    if all(any(name.startswith(prefix) for name in names) for prefix in _REQUIRED_JARS):
        return [jar.resolve() for jar in jars]
    return []


def find_defaults_file(*, required: bool) -> Path | None:
    """Locate spark-defaults.conf: $FEAST_SPARK_CONF_DIR, the source tree, the installed copy."""
    conf_dir = os.environ.get(CONF_DIR_ENV)
    if conf_dir:
        path = Path(conf_dir) / DEFAULTS_FILE
        if not path.is_file():
            raise ConfigError(
                CONF_DIR_ENV,
                conf_dir,
                "environment",
                f"no {DEFAULTS_FILE} in this directory; point it at feast-spark's conf/ folder",
            )
        return path
    candidates = [
        SOURCE_ROOT / "conf" / DEFAULTS_FILE,
        Path(sysconfig.get_path("data")).joinpath(*_INSTALLED_CONF_DIR, DEFAULTS_FILE),
    ]
    for path in candidates:
        if path.is_file():
            return path
    if required:
        raise ConfigError(
            CONF_DIR_ENV,
            None,
            "environment",
            f"{DEFAULTS_FILE} not found in {' or '.join(str(p.parent) for p in candidates)}; "
            f"set {CONF_DIR_ENV} to the folder that holds feast-spark's {DEFAULTS_FILE}",
        )
    return None


def read_properties(path: Path) -> dict[str, str]:
    """Parse a Spark properties file the way Spark does (java.util.Properties, values trimmed).

    Supported: ``key value``, ``key=value``, ``key: value``; ``#`` and ``!`` comments; a line
    ending in a backslash continues on the next line (whose leading blanks are dropped). Other
    backslash escapes are rejected instead of being read differently from Java.
    """
    properties: dict[str, str] = {}
    for number, line in _logical_lines(path.read_text(encoding="utf-8").splitlines()):
        if "\\" in line:
            raise ConfigError(
                line.split()[0],
                line,
                f"{path}:{number}",
                "backslash escapes are not supported here (only a trailing '\\' that continues "
                "the line)",
            )
        key, value = _split_property(line)
        properties[key] = value
    return properties


def _logical_lines(lines: Iterable[str]) -> Iterable[tuple[int, str]]:
    """Yield (first line number, text) of each non-comment logical line, continuations joined."""
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(lines, start=1):
        text = raw.lstrip(" \t\f")
        if not pending:
            if not text or text[0] in "#!":
                continue
            start = number
        trailing = len(text) - len(text.rstrip("\\"))
        if trailing % 2 == 1:
            pending.append(text[:-1])
            continue
        pending.append(text)
        yield start, "".join(pending)
        pending = []
    if pending:
        yield start, "".join(pending)


def _split_property(line: str) -> tuple[str, str]:
    """Split ``key<blanks|=|:>value`` like java.util.Properties; the value is trimmed."""
    end = 0
    while end < len(line) and line[end] not in " \t\f=:":
        end += 1
    key, rest = line[:end], line[end:].lstrip(" \t\f")
    if rest[:1] in ("=", ":"):
        rest = rest[1:]
    return key, rest.strip()


def merge_conf(layers: Iterable[Mapping[str, str]]) -> dict[str, str]:
    """Later layers win, except comma-separated jar lists, which are joined."""
    merged: dict[str, str] = {}
    for layer in layers:
        for key, value in layer.items():
            if key in LIST_KEYS and merged.get(key):
                known = merged[key].split(",")
                extra = [item for item in value.split(",") if item and item not in known]
                merged[key] = ",".join([*known, *extra])
            else:
                merged[key] = value
    return merged
