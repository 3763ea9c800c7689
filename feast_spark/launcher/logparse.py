"""Facts read from a driver's log: the web UI port, application ids, and the job's own error.

Pure functions over text, so each rule is tested on real log excerpts.
"""

from __future__ import annotations

import re

_UI_PORT = re.compile(r"Successfully started service 'SparkUI' on port (\d+)")
_UI_URL = re.compile(
    r"(?:Bound SparkUI to \S+, and started at|feast-spark: the warm driver's Spark UI is at) "
    r"(https?://\S+)"
)
_APP_ID = re.compile(
    r"(?:Connected to Spark cluster with app ID|Submitted application|Application report for)"
    r" (app-\d+-\d+|application_\d+_\d+|local-\d+)"
)
_YARN_APP_ID = re.compile(r"\b(application_\d+_\d+)\b")
# A line Spark's log4j writes: "26/11/26 17:34:22 INFO ..." (default pattern) or ISO dates.
_LOG_LINE = re.compile(r"^(\d{2}/\d{2}/\d{2}|\d{4}-\d{2}-\d{2})[ T]\d{2}:\d{2}:\d{2}")
_JAVA_MAIN_ERROR = re.compile(r'^Exception in thread "main" (.+)$')
_ERROR_MAX_CHARS = 4000


def ui_port(log: str) -> int | None:
    """The port the driver's web UI listens on (the last one started), if the log says."""
    ports = _UI_PORT.findall(log)
    return int(ports[-1]) if ports else None


def ui_url(log: str) -> str | None:
    """The driver UI's URL when the log prints it whole (older Spark, a warm driver's job)."""
    urls = _UI_URL.findall(log)
    return urls[-1] if urls else None


def application_id(log: str) -> str | None:
    """The Spark application id the log names (standalone ``app-…``, YARN ``application_…``)."""
    found = _APP_ID.findall(log)
    return found[-1] if found else None


def yarn_application_id(output: str) -> str | None:
    """The YARN application id in spark-submit's output (the first one, the submitted app)."""
    found = _YARN_APP_ID.search(output)
    return found.group(1) if found else None


def error_from_log(log: str) -> str | None:
    r"""The job's own error: the exception of the last Python traceback in the log.

    The exception line (and the lines of a multi-line message) that ends the last
    ``Traceback (most recent call last):`` block; else the JVM's ``Exception in thread "main"``
    line; else None.

    Example:
        >>> error_from_log("Traceback (most recent call last):\n  File \"j.py\", line 1\n"
        ...                "    boom()\nValueError: no rows in window\n")
        'ValueError: no rows in window'
    """
    lines = log.splitlines()
    start = None
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].startswith("Traceback (most recent call last):"):
            start = index
            break
    if start is not None:
        message: list[str] = []
        for line in lines[start + 1 :]:
            if not message:
                if line.startswith((" ", "\t")) or not line.strip():
                    continue  # the frames
                message.append(line)
                continue
            if not line.strip() or _LOG_LINE.match(line) or line.startswith("Traceback"):
                break
            message.append(line)
        if message:
            return _limit("\n".join(message).strip())
    for line in reversed(lines):
        match = _JAVA_MAIN_ERROR.match(line)
        if match:
            return _limit(match.group(1).strip())
    return None


def tail(text: str, lines: int = 20) -> str:
    """The last ``lines`` lines of ``text``."""
    return "\n".join(text.splitlines()[-lines:])


def _limit(message: str) -> str:
    return message if len(message) <= _ERROR_MAX_CHARS else message[:_ERROR_MAX_CHARS] + " [...]"
