"""The example Airflow DAG loads and chains ingest before materialize (skipped without Airflow)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from ..cli.test_jobs import repo  # noqa: F401 - the fixture (a stand-in spark-submit)

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
    assert " -m feast_spark.cli ingest driver_stats --start " in ingest.bash_command
    assert " -m feast_spark.cli materialize driver_stats --start " in materialize.bash_command


# --- without Airflow: a stand-in records the tasks; their commands run from another folder ------


class _Task:
    def __init__(self, task_id: str, bash_command: str, env: dict[str, str], **_: object) -> None:
        self.task_id, self.bash_command, self.env = task_id, bash_command, env
        self.upstream: list[_Task] = []
        _TASKS[task_id] = self

    def __rshift__(self, other: _Task) -> _Task:
        other.upstream.append(self)
        return other


class _Dag:
    def __init__(self, **_: object) -> None:
        pass

    def __enter__(self) -> _Dag:
        return self

    def __exit__(self, *_: object) -> None:
        pass


_TASKS: dict[str, _Task] = {}


def _load_dag(monkeypatch: pytest.MonkeyPatch, cwd: Path) -> dict[str, _Task]:
    import runpy
    import sys
    import types

    airflow = types.ModuleType("airflow")
    airflow.DAG = _Dag  # type: ignore[attr-defined]
    operators = types.ModuleType("airflow.operators")
    bash = types.ModuleType("airflow.operators.bash")
    bash.BashOperator = _Task  # type: ignore[attr-defined]
    for name, module in {
        "airflow": airflow,
        "airflow.operators": operators,
        "airflow.operators.bash": bash,
        "airflow.providers": None,  # no Airflow 3 layout: the file falls back to Airflow 2's
        "airflow.sdk": None,
    }.items():
        monkeypatch.setitem(sys.modules, name, module)  # type: ignore[arg-type]
    _TASKS.clear()
    monkeypatch.chdir(cwd)
    runpy.run_path(str(DAG_FOLDER / "feast_spark_daily.py"), run_name="dag")
    return dict(_TASKS)


def _render(template: str, variables: dict[str, str], start: str, end: str) -> str:
    """Airflow's rendering of the few expressions the example uses."""
    import re

    def variable(match: re.Match[str]) -> str:
        return variables.get(match.group(1), match.group(2))

    text = re.sub(r"\{\{ var\.value\.get\('(\w+)', '([^']*)'\) \}\}", variable, template)
    text = text.replace("{{ data_interval_start.isoformat() }}", start)
    text = text.replace("{{ data_interval_end.isoformat() }}", end)
    assert "{{" not in text, text
    return text


def test_the_config_default_is_absolute_beside_the_dag_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    tasks = _load_dag(monkeypatch, tmp_path)
    config = _render(tasks["ingest_driver_stats"].env["FEAST_SPARK_CONFIG"], {}, "", "")
    assert config == str(DAG_FOLDER / "feature_store.yaml")
    assert tasks["materialize_driver_stats"].upstream == [tasks["ingest_driver_stats"]]


def test_the_dag_tasks_run_from_any_working_directory(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    repo: Path,  # noqa: F811 - the imported fixture
) -> None:
    import os
    import subprocess

    # given a project whose feature_store.yaml uses relative paths, and the DAG parsed elsewhere
    definitions = repo / "defs.yaml"
    definitions.write_text(
        "kind: Entity\nname: driver_id\nvalue_type: INT64\n---\nkind: FeatureTable\n"
        "name: driver_stats\nentities: [driver_id]\nfeatures: [{name: trips, dtype: INT64}]\n"
        "batch_source: {type: file, path: data/x.parquet, event_timestamp_column: ts}\n"
    )
    from feast_spark.client import Client

    Client(repo / "feature_store.yaml").apply_files([definitions])
    tasks = _load_dag(monkeypatch, tmp_path)
    elsewhere = tmp_path / "task-working-directory"
    elsewhere.mkdir()
    variables = {"feast_spark_config": str(repo / "feature_store.yaml")}
    for task_id in ("ingest_driver_stats", "materialize_driver_stats"):
        task = tasks[task_id]
        command = _render(task.bash_command, variables, "2024-01-01T00:00:00+00:00",
                          "2024-01-02T00:00:00+00:00")  # fmt: skip
        env = {k: _render(v, variables, "", "") for k, v in task.env.items()}
        # when Airflow runs the task's command in another working directory
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=elsewhere,
            env={**os.environ, **env, "PYTHONPATH": str(DAG_FOLDER.parents[2])},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        # then the job runs to success, with the project's own registry and job store
        assert done.returncode == 0, done.stderr
        assert " SUCCEEDED in " in done.stdout
    assert not any(elsewhere.iterdir())  # nothing written where the task happened to run
    assert len(list((repo / "job_store").iterdir())) == 2
