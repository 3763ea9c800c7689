"""Spark standalone clusters: client mode through spark-submit, cluster mode through REST.

Client deploy mode runs the driver in a spark-submit process here (:class:`ProcessTarget`, with
``--master spark://host:7077``). Cluster deploy mode runs it on a worker, and the master is the
source of truth, asked through its REST submission server (``spark.master.rest.enabled=true``,
port ``spark.master.rest.port``, default 6066):

- ``POST /v1/submissions/create`` with a ``CreateSubmissionRequest`` starts the driver
  (spark-submit refuses Python in this mode; see :mod:`feast_spark.launcher.submit`);
- ``GET /v1/submissions/status/<driver id>`` gives ``driverState``: SUBMITTED, RUNNING,
  RELAUNCHING, FINISHED, FAILED, ERROR, KILLED or UNKNOWN;
- ``POST /v1/submissions/kill/<driver id>`` stops the driver.

The driver's log lives on its worker; it is read from the worker's web UI
(``/log/?driverId=…&logType=stdout|stderr``), found through the master's web UI
(``/json/``, port ``spark.master.ui.port``, default 8080). Python's own output (and its
traceback) is in ``stdout``, Spark's log in ``stderr``.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from feast_spark.errors import ConfigError
from feast_spark.launcher import logparse
from feast_spark.launcher.base import Observation
from feast_spark.launcher.errors import SubmitError, TrackingError
from feast_spark.launcher.records import JobRecord, JobState
from feast_spark.launcher.submit import mask_properties

DEFAULT_REST_PORT = 6066
DEFAULT_MASTER_UI_PORT = 8080
HTTP_TIMEOUT_S = 10.0
LOG_BYTES = 1 << 20

DRIVER_STATES: Mapping[str, JobState] = {
    "SUBMITTED": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "RELAUNCHING": JobState.RUNNING,
    "FINISHED": JobState.SUCCEEDED,
    "FAILED": JobState.FAILED,
    "ERROR": JobState.FAILED,
    "KILLED": JobState.CANCELLED,
    "UNKNOWN": JobState.FAILED,
}
_MASTER = re.compile(r"^spark://(?P<hosts>[^/]+)/?$")
_LOG_HEADER = re.compile(r"^==== Bytes \d+-\d+ of \d+ of .* ====\n?")


def master_hosts(master: str) -> list[tuple[str, int]]:
    """``spark://h1:7077,h2:7077`` -> ``[("h1", 7077), ("h2", 7077)]``.

    Raises:
        ConfigError: Not a ``spark://`` URL.
    """
    match = _MASTER.match(master)
    if not match:
        raise ConfigError(
            "spark.master", master, "launcher", "a standalone master is spark://host:port"
        )
    hosts = []
    for part in match.group("hosts").split(","):
        host, _, port = part.partition(":")
        hosts.append((host, int(port or 7077)))
    return hosts


def rest_url(master: str, conf: Mapping[str, str]) -> str:
    """The REST submission server of the (first) master: ``http://host:<spark.master.rest.port>``."""
    host = master_hosts(master)[0][0]
    return f"http://{host}:{int(conf.get('spark.master.rest.port', DEFAULT_REST_PORT))}"


def master_ui_url(rest: str, conf: Mapping[str, str]) -> str:
    """The master's web UI, on the REST server's host: ``http://host:<spark.master.ui.port>``."""
    host = urllib.parse.urlsplit(rest).hostname or "localhost"
    return f"http://{host}:{int(conf.get('spark.master.ui.port', DEFAULT_MASTER_UI_PORT))}"


class StandaloneClusterTarget:
    """Drivers on a standalone cluster, through the master's REST submission server.

    Args:
        rest: The REST server, e.g. ``http://master:6066``.
        master_ui: The master's web UI, e.g. ``http://master:8080`` (to find driver logs).
    """

    def __init__(self, rest: str, master_ui: str) -> None:
        self.rest = rest.rstrip("/")
        self.master_ui = master_ui.rstrip("/")

    def start(self, record: JobRecord, request: Mapping[str, Any]) -> JobRecord:
        """Post the ``CreateSubmissionRequest``; return the record with the driver id.

        Raises:
            SubmitError: The server cannot be reached or refused the request.
        """
        shown = dict(request, sparkProperties=mask_properties(request["sparkProperties"]))
        command = ("POST", f"{self.rest}/v1/submissions/create", json.dumps(shown, sort_keys=True))
        try:
            answer = _http_json("POST", f"{self.rest}/v1/submissions/create", request)
        except _HttpError as error:
            raise SubmitError(record.job_id, command, error.reason, error.body) from None
        if not answer.get("success") or not answer.get("submissionId"):
            raise SubmitError(
                record.job_id, command, f"the master refused it: {answer.get('message')}"
            )
        return replace(
            record,
            state=JobState.PENDING,
            submission_id=str(answer["submissionId"]),
            rest_url=self.rest,
            started_at=datetime.now(UTC),
            command=(command[0], command[1], json.dumps(shown, sort_keys=True)),
        )

    def observe(self, record: JobRecord) -> Observation:
        """The driver's state from the master (``driverState``), and its UI once it runs.

        Raises:
            TrackingError: The REST server cannot be reached.
        """
        driver = self._driver_id(record)
        url = f"{self.rest}/v1/submissions/status/{driver}"
        try:
            answer = _http_json("GET", url)
        except _HttpError as error:
            raise TrackingError(record.job_id, record.state.value, url, error.reason) from None
        if not answer.get("success"):
            return Observation(
                state=JobState.FAILED,
                error=f"the master does not know driver {driver}: {answer.get('message')}",
                outcome_known=False,
            )
        driver_state = str(answer.get("driverState", "UNKNOWN"))
        state = DRIVER_STATES.get(driver_state, JobState.FAILED)
        problem = None
        if driver_state in ("ERROR", "UNKNOWN"):
            detail = answer.get("message")
            problem = f"driver {driver} {driver_state}" + (f": {detail}" if detail else "")
        # For FAILED, the job's own error comes from its result record or its log.
        if state is JobState.RUNNING and (record.ui_url is None or record.app_id is None):
            return replace(
                self._driver_facts(record, str(answer.get("workerHostPort", ""))),
                state=state,
                error=problem,
            )
        return Observation(state=state, error=problem)

    def kill(self, record: JobRecord) -> None:
        """Ask the master to kill the driver.

        Raises:
            TrackingError: The REST server cannot be reached.
        """
        url = f"{self.rest}/v1/submissions/kill/{self._driver_id(record)}"
        try:
            _http_json("POST", url, {})
        except _HttpError as error:
            raise TrackingError(record.job_id, record.state.value, url, error.reason) from None

    def read_log(self, record: JobRecord) -> str | None:
        """The driver's stdout (Python's output) and stderr (Spark's log) from its worker.

        Raises:
            TrackingError: The master's or the worker's web UI cannot be reached.
        """
        worker_ui = self._worker_ui(record)
        if worker_ui is None:
            return None
        parts = []
        for kind in ("stdout", "stderr"):
            text = self._worker_log(record, worker_ui, kind, tail=True)
            parts.append(f"==== driver {kind} ====\n{text}")
        return "\n".join(parts)

    # --- internals -------------------------------------------------------------------------------

    def _driver_id(self, record: JobRecord) -> str:
        if not record.submission_id:
            raise TrackingError(
                record.job_id, record.state.value, self.rest, "the record has no driver id"
            )
        return record.submission_id

    def _worker_ui(self, record: JobRecord) -> str | None:
        url = f"{self.master_ui}/json/"
        try:
            cluster = _http_json("GET", url)
        except _HttpError as error:
            raise TrackingError(record.job_id, record.state.value, url, error.reason) from None
        drivers = [*cluster.get("activedrivers", []), *cluster.get("completeddrivers", [])]
        worker_id = next(
            (d.get("worker") for d in drivers if d.get("id") == record.submission_id), None
        )
        for worker in cluster.get("workers", []):
            if worker.get("id") == worker_id:
                return str(worker.get("webuiaddress") or "") or None
        return None

    def _worker_log(self, record: JobRecord, worker_ui: str, kind: str, *, tail: bool) -> str:
        query = {"driverId": record.submission_id or "", "logType": kind, "byteLength": LOG_BYTES}
        if not tail:
            query["offset"] = 0
        url = f"{worker_ui.rstrip('/')}/log/?{urllib.parse.urlencode(query)}"
        try:
            text = _http_text("GET", url)
        except _HttpError as error:
            raise TrackingError(record.job_id, record.state.value, url, error.reason) from None
        return _LOG_HEADER.sub("", text, count=1)

    def _driver_facts(self, record: JobRecord, worker_host_port: str) -> Observation:
        """UI, application id and log location, from the driver's log on its worker.

        The UI is ``http://<worker host>:<port from the log>`` (it binds every interface). These
        are niceties: when the web UIs cannot be reached, nothing is learnt and the state stands.
        """
        host = worker_host_port.rpartition(":")[0] or worker_host_port
        try:
            worker_ui = self._worker_ui(record)
            if worker_ui is None:
                return Observation()
            log = self._worker_log(record, worker_ui, "stderr", tail=False)
        except TrackingError:
            return Observation()
        port = logparse.ui_port(log)
        query = urllib.parse.urlencode(
            {"driverId": record.submission_id or "", "logType": "stdout"}
        )
        return Observation(
            ui_url=f"http://{host}:{port}" if port and host else None,
            app_id=logparse.application_id(log),
            log_path=f"{worker_ui.rstrip('/')}/logPage/?{query}",
        )


class _HttpError(Exception):
    def __init__(self, reason: str, body: str = "") -> None:
        self.reason = reason
        self.body = body
        super().__init__(reason)


def _http_text(method: str, url: str, body: Any = None) -> str:
    data = None if body is None else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json;charset=UTF-8")
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            return str(response.read().decode("utf-8", errors="replace"))
    except urllib.error.HTTPError as error:
        text = error.read().decode("utf-8", errors="replace")
        raise _HttpError(f"HTTP {error.code} {error.reason}: {_message(text)}", text) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise _HttpError(f"cannot connect: {reason}") from None


def _http_json(method: str, url: str, body: Any = None) -> dict[str, Any]:
    text = _http_text(method, url, body)
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        raise _HttpError(f"not a JSON answer: {text[:200]!r}", text) from None
    if not isinstance(document, dict):
        raise _HttpError(f"not a JSON object: {text[:200]!r}", text)
    return document


def _message(text: str) -> str:
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        return text[:500]
    return str(document.get("message", text[:500])) if isinstance(document, dict) else text[:500]
