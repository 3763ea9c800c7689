"""Example Airflow DAG: every day, ingest yesterday's rows, then materialize them online.

For each feature table, two tasks over the run's data interval ``[data_interval_start,
data_interval_end)``::

    ingest_<table>  >>  materialize_<table>

Each task runs the feast-spark CLI, which submits the Spark job to the cluster of
``feature_store.yaml`` (``launcher:`` section), waits for it while logging Spark's progress, and
exits non-zero unless the job SUCCEEDED, so a failed job fails its task with the job's own error
message in the task log. Stopping the task (mark failed, timeout) cancels the Spark job.

Two runs never write the same table over overlapping windows at once: feast-spark refuses the
second job (it names the running one), the task fails and Airflow retries it later.

Copy this file into the DAGs folder and set:

- the Airflow Variable ``feast_spark_config``: the absolute path of ``feature_store.yaml`` on the
  workers (default: ``feature_store.yaml`` beside this file). Tasks run in a temporary working
  directory, so the path is made absolute here and every relative path inside the file is read
  relative to the file's folder, whatever the working directory;
- ``FEATURE_TABLES`` below;
- this feast-spark on the workers, in the Python that runs the tasks. It is not on PyPI: the
  PyPI name ``feast-spark`` belongs to feast-dev's older, unrelated 0.2 package, so
  ``pip install feast-spark`` installs the wrong thing. Install a wheel built from this
  repository (``pip wheel --no-deps -w dist <repo>``, then
  ``pip install dist/feast_spark-*.whl``) or the repository itself
  (``pip install "feast-spark @ git+<repository URL>@<tag>"``). The tasks run
  ``<python> -m feast_spark.cli``, so the ``feast-spark`` script need not be on the PATH; set the
  Airflow Variable ``feast_spark_python`` to that Python (default: the one parsing this file).
"""

from __future__ import annotations

import shlex
import sys
from datetime import datetime, timedelta
from pathlib import Path

try:  # Airflow 3
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.operators.bash import BashOperator

FEATURE_TABLES = ("driver_stats",)

# The run's half-open event-time window, as ISO-8601 instants.
WINDOW = (
    "--start '{{ data_interval_start.isoformat() }}' --end '{{ data_interval_end.isoformat() }}'"
)
# Absolute, so that a task's working directory (a temporary folder) does not matter.
DEFAULT_CONFIG = str(Path(__file__).resolve().parent / "feature_store.yaml")
CONFIG = f"{{{{ var.value.get('feast_spark_config', {DEFAULT_CONFIG!r}) }}}}"
PYTHON = f"{{{{ var.value.get('feast_spark_python', {sys.executable!r}) }}}}"
FEAST_SPARK = f"{PYTHON} -m feast_spark.cli"

with DAG(
    dag_id="feast_spark_daily",
    description="Ingest each day's feature rows into Delta, then materialize them to Cassandra",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={
        "retries": 2,
        "retry_delay": timedelta(minutes=10),
        # A day's job that runs longer than this is stopped (and its Spark job cancelled).
        "execution_timeout": timedelta(hours=3),
    },
    tags=["feast-spark"],
) as dag:
    for table in FEATURE_TABLES:
        ingest = BashOperator(
            task_id=f"ingest_{table}",
            bash_command=f"{FEAST_SPARK} ingest {shlex.quote(table)} {WINDOW} --wait",
            env={"FEAST_SPARK_CONFIG": CONFIG},
            append_env=True,
        )
        materialize = BashOperator(
            task_id=f"materialize_{table}",
            bash_command=f"{FEAST_SPARK} materialize {shlex.quote(table)} {WINDOW} --wait",
            env={"FEAST_SPARK_CONFIG": CONFIG},
            append_env=True,
        )
        ingest >> materialize
