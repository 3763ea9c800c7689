"""Launch, track and cancel feast-spark jobs on local and cluster Spark.

Never imports pyspark: the launcher runs wherever the CLI or the client runs, and talks to Spark
through spark-submit, REST APIs and the job store.

    from feast_spark.launcher import Launcher
    launcher = Launcher.from_config(config)
    job = launcher.submit(spec)
    job.wait()  # JobState.SUCCEEDED, FAILED, CANCELLED (or ABANDONED: see Launcher.abandon)

See :mod:`feast_spark.launcher.launcher` for the targets and the double-run rule,
:mod:`feast_spark.launcher.job_store` for what is kept, :mod:`feast_spark.launcher.submit` for the
commands.
"""

from feast_spark.launcher.base import Job, Observation, Progress, Target
from feast_spark.launcher.errors import (
    JobConflictError,
    JobTimeoutError,
    SubmitError,
    TrackingError,
)
from feast_spark.launcher.job_store import JobStore, JobStoreError
from feast_spark.launcher.launcher import Launcher, PrunedJob
from feast_spark.launcher.records import JobRecord, JobState

__all__ = [
    "Job",
    "JobConflictError",
    "JobRecord",
    "JobState",
    "JobStore",
    "JobStoreError",
    "JobTimeoutError",
    "Launcher",
    "Observation",
    "Progress",
    "PrunedJob",
    "SubmitError",
    "Target",
    "TrackingError",
]
