"""The example Airflow DAG loads and chains ingest before materialize (skipped without Airflow)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

DAG_FOLDER = Path(__file__).resolve().parents[2] / "conf" / "example" / "airflow"


def test_the_example_dag_loads_without_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("airflow")
    monkeypatch.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    from airflow.models import DagBag

    # when Airflow parses the example folder (Airflow 2 also takes include_examples)
    options = {}
    if "include_examples" in inspect.signature(DagBag.__init__).parameters:
        options["include_examples"] = False
    bag = DagBag(dag_folder=str(DAG_FOLDER), **options)

    # then there is one DAG, without import errors
    assert bag.import_errors == {}
    dag = bag.dags.get("feast_spark_daily")  # get_dag() would ask the metadata database
    assert dag is not None

    # and each table is ingested, then materialized, over the run's data interval
    ingest = dag.get_task("ingest_driver_stats")
    materialize = dag.get_task("materialize_driver_stats")
    assert materialize.upstream_task_ids == {"ingest_driver_stats"}
    for task in (ingest, materialize):
        command = task.bash_command
        assert "{{ data_interval_start.isoformat() }}" in command
        assert "{{ data_interval_end.isoformat() }}" in command
        assert command.endswith("--wait")
    assert ingest.bash_command.startswith("feast-spark ingest driver_stats --start ")
    assert materialize.bash_command.startswith("feast-spark materialize driver_stats --start ")
