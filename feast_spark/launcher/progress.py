"""Progress of a running job, from Spark's monitoring REST API at the driver's web UI.

``GET <ui>/api/v1/applications`` names the application; ``GET <ui>/api/v1/applications/<id>/jobs``
lists its Spark jobs with their stage and task counts. Progress is best effort: when the UI
cannot be reached (not started yet, finished, behind a firewall) there is simply no progress,
and the job's state is unaffected.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

HTTP_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class Progress:
    """Counts summed over the Spark jobs an application has run so far.

    Attributes:
        app_id: The Spark application.
        jobs_done: Spark jobs that ended.
        jobs_total: Spark jobs started so far (more may come).
        stages_done: Stages completed or skipped.
        stages_total: Stages of those jobs.
        tasks_done: Tasks completed or skipped.
        tasks_total: Tasks of those jobs.
        tasks_active: Tasks running now.
    """

    app_id: str
    jobs_done: int = 0
    jobs_total: int = 0
    stages_done: int = 0
    stages_total: int = 0
    tasks_done: int = 0
    tasks_total: int = 0
    tasks_active: int = 0

    def describe(self) -> str:
        """``stages 3/5, tasks 40/60 (2 running)``."""
        text = (
            f"stages {self.stages_done}/{self.stages_total}, "
            f"tasks {self.tasks_done}/{self.tasks_total}"
        )
        return text + (f" ({self.tasks_active} running)" if self.tasks_active else "")


def progress_from_jobs(app_id: str, jobs: Sequence[Mapping[str, Any]]) -> Progress:
    """Sum the ``/jobs`` documents of Spark's REST API into one :class:`Progress`."""
    done_states = ("SUCCEEDED", "FAILED")
    return Progress(
        app_id=app_id,
        jobs_done=sum(1 for job in jobs if job.get("status") in done_states),
        jobs_total=len(jobs),
        stages_done=sum(
            int(job.get("numCompletedStages", 0)) + int(job.get("numSkippedStages", 0))
            for job in jobs
        ),
        stages_total=sum(len(job.get("stageIds", ())) for job in jobs),
        tasks_done=sum(
            int(job.get("numCompletedTasks", 0)) + int(job.get("numSkippedTasks", 0))
            for job in jobs
        ),
        tasks_total=sum(int(job.get("numTasks", 0)) for job in jobs),
        tasks_active=sum(int(job.get("numActiveTasks", 0)) for job in jobs),
    )


def application_id(ui_url: str) -> str | None:
    """The id of the application a driver UI serves, or None when the UI does not answer."""
    apps = _get_json(f"{ui_url.rstrip('/')}/api/v1/applications")
    if isinstance(apps, list) and apps and isinstance(apps[0], dict) and "id" in apps[0]:
        return str(apps[0]["id"])
    return None


def fetch_progress(ui_url: str, app_id: str, job_group: str | None = None) -> Progress | None:
    """The application's progress, or None when its UI does not answer.

    ``job_group``: only the Spark jobs of that group (a job run by a warm driver, whose
    application runs every job of the project).
    """
    jobs = _get_json(f"{ui_url.rstrip('/')}/api/v1/applications/{app_id}/jobs")
    if not isinstance(jobs, list):
        return None
    wanted = [
        job
        for job in jobs
        if isinstance(job, dict) and (job_group is None or job.get("jobGroup") == job_group)
    ]
    return progress_from_jobs(app_id, wanted)


def _get_json(url: str) -> Any:
    """GET a JSON document; None when the server cannot be reached or answers something else."""
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:
            return json.loads(response.read().decode("utf-8"))
    except (urllib.error.URLError, OSError, ValueError):
        # URLError/HTTPError/timeouts are OSErrors; a non-JSON page is a ValueError.
        return None
