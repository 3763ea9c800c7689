"""A job's secret Spark settings in a file only its owner can read, instead of on a command line.

``ps`` (and ``/proc/<pid>/cmdline``) shows every process's arguments to every user of a machine,
so a secret given as ``--conf`` is public there. The launcher writes the job's secret settings
(:func:`feast_spark.launcher.submit.secret_conf`) to ``<cache dir>/secrets/<job id>.properties``
(folder mode 0700, file mode 0600, created exclusively) and gives spark-submit its path. The file
is removed once spark-submit has ended (by the supervisor for local and client-mode jobs, by the
launcher for cluster-mode submissions), and by ``jobs prune`` if a killed supervisor left it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from feast_spark.launcher import environment
from feast_spark.launcher.submit import properties_text


def secrets_path(job_id: str) -> Path:
    """Where the secret settings of ``job_id`` are kept while spark-submit needs them."""
    return environment.cache_dir() / "secrets" / f"{job_id}.properties"


def write_secrets(job_id: str, conf: Mapping[str, str]) -> Path:
    """Write ``conf`` to the job's private properties file and return its path.

    Raises:
        OSError: The file cannot be created (or exists already: a job id is used once).
    """
    path = secrets_path(job_id)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(properties_text(conf))
    return path


def remove_secrets(job_id: str) -> None:
    """Remove the job's secrets file, if there is one."""
    secrets_path(job_id).unlink(missing_ok=True)


@contextlib.contextmanager
def private_properties(conf: Mapping[str, str]) -> Iterator[str | None]:
    """A private properties file holding ``conf`` for the duration of a command (None if empty)."""
    if not conf:
        yield None
        return
    folder = environment.cache_dir() / "secrets"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=".client-", suffix=".properties", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:  # mkstemp: mode 0600
            out.write(properties_text(conf))
        yield name
    finally:
        Path(name).unlink(missing_ok=True)
