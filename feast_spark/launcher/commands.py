"""Running a short command (spark-submit in cluster mode, ``yarn application``) and its output.

A :data:`Runner` is injectable so that the YARN and Kubernetes targets are tested without a
cluster: the commands are checked by exact equality, the parsing on recorded outputs.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class CommandResult:
    """How a command ended.

    Attributes:
        exit_code: Its exit status (``None``: it could not be started or timed out).
        output: stdout and stderr, interleaved.
        problem: Why there is no exit status (not found, timed out), else None.
    """

    exit_code: int | None
    output: str
    problem: str | None = None

    @property
    def ok(self) -> bool:
        """Whether it ran and exited 0."""
        return self.exit_code == 0


Runner = Callable[[Sequence[str], Mapping[str, str] | None, float], CommandResult]


def run_command(
    argv: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 300.0
) -> CommandResult:
    """Run ``argv`` to its end (at most ``timeout`` seconds) and capture its output."""
    try:
        completed = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        return CommandResult(None, "", f"'{argv[0]}' not found")
    except subprocess.TimeoutExpired as expired:
        output = expired.output.decode("utf-8", "replace") if expired.output else ""
        return CommandResult(None, output, f"no answer within {timeout:g}s")
    return CommandResult(completed.returncode, completed.stdout.decode("utf-8", "replace"))
