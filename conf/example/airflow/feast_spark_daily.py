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

- the Airflow Variable ``feast_spark_config``: the path of ``feature_store.yaml`` on the workers;
- ``FEATURE_TABLES`` below;
- ``feast-spark`` on the workers' PATH (``pip install feast-spark``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

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
CONFIG = "{{ var.value.get('feast_spark_config', 'feature_store.yaml') }}"

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
            bash_command=f"feast-spark ingest {table} {WINDOW} --wait",
            env={"FEAST_SPARK_CONFIG": CONFIG},
            append_env=True,
        )
        materialize = BashOperator(
            task_id=f"materialize_{table}",
            bash_command=f"feast-spark materialize {table} {WINDOW} --wait",
            env={"FEAST_SPARK_CONFIG": CONFIG},
            append_env=True,
        )
        ingest >> materialize
