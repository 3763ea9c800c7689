"""Time what users run: whole ``feast-spark`` commands, from the command to its exit.

In-session benchmarks time a function in a warm SparkSession; a user pays for a JVM, a
SparkContext, the first Delta load, the launcher's polling and the process exit on every
command. This benchmark runs the real CLI in fresh processes, for one or more source trees in
the same run (``--tree NAME=PATH``: the code under test beside a baseline, e.g. ``main``), rounds
interleaved so that load from elsewhere hits every tree alike:

* ``quickstart``: ``feast-spark quickstart`` in a scratch folder (its total and its steps), then,
  in the project it made, its three small jobs each as a whole process:
  ``ingest driver_stats`` (720K rows), ``get-historical-features`` (2,000 entity rows over both
  tables) and ``materialize`` (both tables, 30 days, to SQLite).

* ``warm``: one quickstart project (untimed), ``feast-spark driver start`` (timed apart), then its
  three small jobs as whole processes, run by the warm driver (``warm``) and, interleaved, each
  in its own spark-submit (``cold``: an environment variable the driver lacks keeps them out).

* ``jvm-options``: one quickstart project (untimed), then its three small jobs under each
  ``--jvm NAME=OPTIONS`` of the driver JVM (default: none against ``-XX:TieredStopAtLevel=1``),
  set as ``spark.driver.extraJavaOptions`` in its ``feature_store.yaml``, or each
  ``--conf-variant NAME=key=value;key=value`` of Spark settings (the JVM options then left to
  the launcher).

Each figure is printed with the 1-minute load average when it started (the machine may be
shared); compare trees by their ratio within one run. With ``--event-logs DIR`` the small jobs
write Spark event logs there, for ``benchmarks/job_timeline.py``.

Example::

    python benchmarks/whole_process.py quickstart --tree after=. --tree before=/work/main \\
        --repeat 2
    python benchmarks/whole_process.py warm --repeat 3
    python benchmarks/whole_process.py jvm-options --repeat 2 \\
        --jvm none= --jvm c1=-XX:TieredStopAtLevel=1

The helpers (:func:`run_timed`, :func:`cli_command`, :func:`load`) are also used by
``historical_retrieval.py --whole-process``.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
_STEP = re.compile(r"^\[(\d+)\] (.+)$")
_DONE = re.compile(r"^\s+done in ([\d.]+)s$")
_JOB_SUMMARY = re.compile(r"job (\S+) (\w+) in ([\d.]+)s")


@dataclass
class Timed:
    """One whole-process run."""

    label: str
    seconds: float
    load: float  # 1-minute load average when it started
    output: str
    job_seconds: float | None = None  # the job's own duration, as its summary line says
    steps: dict[str, float] = field(default_factory=dict)
    started: float = 0.0  # epoch seconds
    cpu: float = 0.0  # CPU seconds (user + system) of the process and every child it reaped


class CommandFailedError(RuntimeError):
    """A timed command exited with a non-zero status."""


def load() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


def cli_command(tree: Path, *args: str) -> tuple[list[str], dict[str, str]]:
    """``feast-spark ARGS`` as the source tree ``tree`` runs it, with its environment."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(tree.resolve()), env.get("PYTHONPATH", "")) if p
    )
    python = os.environ.get("PYSPARK_PYTHON") or sys.executable
    env.setdefault("PYSPARK_PYTHON", python)
    env.setdefault("PYSPARK_DRIVER_PYTHON", python)
    return [python, "-m", "feast_spark.cli", *args], env


def run_timed(
    label: str,
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 3600,
) -> Timed:
    """Run ``argv`` to its exit and time it (wall clock, process start to exit).

    Raises:
        CommandFailedError: It exited with a non-zero status (the message: its output's tail).
    """
    started_load = load()
    started_at = time.time()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        argv,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        tail = "\n".join(done.stdout.splitlines()[-15:])
        raise CommandFailedError(f"{label}: exit {done.returncode} after {seconds:.1f}s:\n{tail}")
    found = _JOB_SUMMARY.findall(done.stdout)
    job_seconds = float(found[-1][2]) if found else None
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    steps = _steps(done.stdout)
    return Timed(label, seconds, started_load, done.stdout, job_seconds, steps, started_at, cpu)


def _steps(output: str) -> dict[str, float]:
    """The quickstart's ``[n] title`` ... ``done in Xs`` pairs, by step number and first word."""
    steps: dict[str, float] = {}
    current = None
    for line in output.splitlines():
        step = _STEP.match(line)
        if step:
            current = f"{step.group(1)} {step.group(2).split()[0].lower()}"
            continue
        done = _DONE.match(line)
        if done and current:
            steps[current] = float(done.group(1))
            current = None
    return steps


def add_spark_conf(project: Path, conf: dict[str, str]) -> None:
    """Add settings to ``spark.conf`` of a project's ``feature_store.yaml``."""
    config_file = project / "feature_store.yaml"
    config = yaml.safe_load(config_file.read_text())
    config.setdefault("spark", {}).setdefault("conf", {}).update(conf)
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))


# --------------------------------------------------------------------------------------------------
# quickstart


def quickstart_round(name: str, tree: Path, scratch: Path, event_logs: Path | None) -> list[Timed]:
    """One quickstart and its three small jobs as whole processes, for one source tree."""
    project = scratch / f"qs-{name}-{time.monotonic_ns()}"
    argv, env = cli_command(tree, "quickstart", str(project))
    runs = [run_timed(f"{name} quickstart", argv, cwd=scratch, env=env)]
    if event_logs is not None:
        folder = event_logs / name
        folder.mkdir(parents=True, exist_ok=True)
        add_spark_conf(
            project,
            {
                "spark.eventLog.enabled": "true",
                "spark.eventLog.dir": str(folder),
                "spark.eventLog.compress": "false",
                "spark.eventLog.rolling.enabled": "false",
            },
        )
    runs += small_jobs(name, tree, project, event_logs / name if event_logs else None)
    shutil.rmtree(project, ignore_errors=True)
    return runs


def small_jobs(
    name: str,
    tree: Path,
    project: Path,
    event_logs: Path | None,
    extra_env: dict[str, str] | None = None,
) -> list[Timed]:
    """The quickstart project's ingest, training set and materialize, each a whole process."""
    import pyarrow.parquet as pq

    from feast_spark.quickstart import ENTITY_ROWS, data_end, sample_entity_rows

    end = data_end()
    rows = project / "entity_rows.parquet"
    pq.write_table(sample_entity_rows(end, ENTITY_ROWS), rows)
    start = (end - timedelta(days=30)).isoformat()
    jobs = {
        "ingest": ["ingest", "driver_stats"],
        "training set": [
            "get-historical-features",
            "--features",
            "driver_stats:conv_rate,driver_stats:acc_rate,driver_stats:avg_daily_trips,"
            "customer_profile:lifetime_trips,customer_profile:is_premium",
            "--entities",
            str(rows),
            "--output-path",
            str(project / f"dataset-{time.monotonic_ns()}"),
        ],
        "materialize": [
            "materialize",
            "driver_stats",
            "customer_profile",
            "--start",
            start,
            "--end",
            end.isoformat(),
        ],
    }
    runs = []
    for label, args in jobs.items():
        argv, env = cli_command(tree, *args, "--config", str(project))
        env.update(extra_env or {})
        runs.append(run_timed(f"{name} {label}", argv, cwd=project, env=env))
        if event_logs is not None:
            print_job_timeline(runs[-1], project, event_logs)
    return runs


def variant_rounds(
    tree: Path, scratch: Path, variants: dict[str, dict[str, str]], repeat: int
) -> dict[str, list[list[Timed]]]:
    """The small jobs under each set of Spark settings, in one quickstart project.

    The settings go into ``spark.conf`` of ``feature_store.yaml``, which wins over the launcher's
    sizing (``spark.driver.extraJavaOptions=-Dnone=1`` stands for "no JVM option"); each
    variant's settings are removed again before the next.
    """
    project = scratch / "qs-variants"
    argv, env = cli_command(tree, "quickstart", str(project))
    first = run_timed("setup quickstart", argv, cwd=scratch, env=env)
    print(f"setup: quickstart {first.seconds:.1f}s (load {first.load:.1f})", flush=True)
    config_file = project / "feature_store.yaml"
    original = config_file.read_text()
    results: dict[str, list[list[Timed]]] = {name: [] for name in variants}
    for round_number in range(repeat):
        for name, conf in variants.items():
            config_file.write_text(original)
            add_spark_conf(project, conf)
            runs = small_jobs(name, tree, project, None)
            results[name].append(runs)
            shown = ", ".join(f"{r.label.split(' ', 1)[1]} {r.seconds:.1f}s" for r in runs)
            print(f"round {round_number + 1} {name}: {shown} (load {runs[0].load:.1f})")
    config_file.write_text(original)
    return results


def ran_warm(project: Path, run: Timed) -> bool:
    """Whether the job of ``run`` was run by the warm driver (its record's command says)."""
    [(job_id, _, _)] = _JOB_SUMMARY.findall(run.output)[-1:]
    record = yaml.safe_load((project / "data" / "jobs" / job_id / "job.json").read_text())
    return "feast_spark.launcher.warm_client" in (record.get("command") or [])


def warm_rounds(tree: Path, scratch: Path, repeat: int) -> dict[str, list[list[Timed]]]:
    """The small jobs run by a warm driver and, interleaved, each in its own spark-submit."""
    project = scratch / "qs-warm"
    argv, env = cli_command(tree, "quickstart", str(project))
    first = run_timed("setup quickstart", argv, cwd=scratch, env=env)
    print(f"setup: quickstart {first.seconds:.1f}s (load {first.load:.1f})", flush=True)
    argv, env = cli_command(tree, "driver", "start", "--config", str(project))
    started = run_timed("driver start", argv, cwd=project, env=env)
    print(f"feast-spark driver start: {started.seconds:.1f}s (load {started.load:.1f})")
    results: dict[str, list[list[Timed]]] = {"warm": [], "cold": []}
    try:
        for round_number in range(repeat):
            for name in results:
                extra = {"FEAST_SPARK_BENCH_COLD": "1"} if name == "cold" else {}
                runs = small_jobs(name, tree, project, None, extra)
                results[name].append(runs)
                wrong = [r.label for r in runs if ran_warm(project, r) != (name == "warm")]
                if wrong:
                    raise CommandFailedError(f"{', '.join(wrong)}: ran in the wrong driver")
                shown = ", ".join(f"{r.label.split(' ', 1)[1]} {r.seconds:.1f}s" for r in runs)
                print(f"round {round_number + 1} {name}: {shown} (load {runs[0].load:.1f})")
    finally:
        argv, env = cli_command(tree, "driver", "stop", "--config", str(project))
        run_timed("driver stop", argv, cwd=project, env=env)
    return results


SMOKE_JOB = ROOT / "jobs" / "smoke.py"


def jvm_smoke(variants: dict[str, str], repeat: int, scratch: Path) -> None:
    """``spark-submit jobs/smoke.py`` (a tiny Delta write, append, time travel) per JVM option set.

    The smallest job there is: nearly all of it is the fixed cost. CPU seconds are reported
    beside the wall clock: on a loaded machine they move far less than the wall clock does.
    """
    from feast_spark.launcher.environment import package_zip, spark_home
    from feast_spark.spark_conf import delta_jars_conf, find_defaults_file, read_properties

    defaults = read_properties(find_defaults_file(required=True) or Path())
    base = [str(spark_home() / "bin" / "spark-submit"), "--master", "local[2]"]
    base += ["--jars", delta_jars_conf()["spark.jars"], "--py-files", str(package_zip())]
    for key, value in {**defaults, "spark.sql.shuffle.partitions": "2"}.items():
        if key not in ("spark.jars.excludes",):
            base += ["--conf", f"{key}={value}"]
    runs: dict[str, list[Timed]] = {name: [] for name in variants}
    for round_number in range(repeat):
        for name, options in variants.items():
            argv = [*base, "--conf", f"spark.driver.extraJavaOptions={options or '-Dnone=1'}"]
            argv += [str(SMOKE_JOB), str(scratch / f"smoke-{name}-{round_number}")]
            timed = run_timed(f"smoke {name}", argv, cwd=scratch)
            runs[name].append(timed)
            print(
                f"round {round_number + 1} {name}: {timed.seconds:.1f}s wall, cpu "
                f"{timed.cpu:.1f}s (load {timed.load:.1f})",
                flush=True,
            )
    for name, timed_runs in runs.items():
        print(
            f"{name:<12} best wall {min(r.seconds for r in timed_runs):6.1f}s, best cpu "
            f"{min(r.cpu for r in timed_runs):6.1f}s, mean cpu "
            f"{sum(r.cpu for r in timed_runs) / len(timed_runs):6.1f}s"
        )


def print_job_timeline(run: Timed, project: Path, event_logs: Path) -> None:
    """Where the time of a small job went (benchmarks/job_timeline.py), under its figure."""
    import job_timeline

    found = _JOB_SUMMARY.findall(run.output)
    if not found:
        return
    folder = project / "data" / "jobs" / found[-1][0]
    if folder.is_dir():  # kept beside the event logs: the project is removed after the round
        shutil.copytree(folder, event_logs / f"job-{folder.name}", dirs_exist_ok=True)
    timeline, _log = job_timeline.read_job_dir(folder)
    event_log = job_timeline.find_event_log(event_logs, folder.name)
    if event_log is not None:
        timeline = job_timeline.read_event_log(event_log, timeline)
    print(f"\n{run.label}: {run.seconds:.1f}s whole process (load {run.load:.1f})")
    job_timeline.print_timeline(timeline)
    if timeline.submitted and timeline.exited:
        print(
            f"command start -> submitted: {timeline.submitted - run.started:.2f}s (CLI, "
            f"registry, spec); exit recorded -> command exit: "
            f"{run.started + run.seconds - timeline.exited:.2f}s (noticing the end, exiting)"
        )


def print_quickstart(results: dict[str, list[list[Timed]]]) -> None:
    """Best of the rounds per tree and command, with every run and its load average."""
    names = list(results)
    labels = [run.label.split(" ", 1)[1] for run in results[names[0]][0]]
    with_quickstart = labels[0] == "quickstart"
    print("\ncommand (whole process)   " + "".join(f"{n:>14}" for n in names) + "   runs (load)")
    for index, label in enumerate(labels):
        cells, notes = [], []
        for name in names:
            runs = [round_runs[index] for round_runs in results[name]]
            cells.append(f"{min(r.seconds for r in runs):13.1f}s")
            notes.append(f"{name}: " + ", ".join(f"{r.seconds:.1f}s ({r.load:.1f})" for r in runs))
        print(f"{label:<26}" + "".join(cells) + "   " + "; ".join(notes))
    if len(names) > 1:
        base = names[-1]
        for name in names[:-1]:
            for index, label in enumerate(labels):
                mine = min(r[index].seconds for r in results[name])
                theirs = min(r[index].seconds for r in results[base])
                print(f"ratio {name}/{base} {label}: {mine / theirs:.2f}")
    for name in names:
        if with_quickstart:
            best = min(results[name], key=lambda r: r[0].seconds)[0]
            steps = ", ".join(f"[{k}] {v:.1f}s" for k, v in best.steps.items())
            print(f"{name} quickstart steps (best run): {steps}")
        jobs = slice(1, None) if with_quickstart else slice(None)
        for run in min(results[name], key=lambda r: sum(x.seconds for x in r[jobs]))[jobs]:
            if run.job_seconds is not None:
                print(
                    f"{run.label}: {run.seconds:.1f}s whole process, job record "
                    f"{run.job_seconds:.1f}s, outside the job {run.seconds - run.job_seconds:.1f}s"
                )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["quickstart", "warm", "jvm-options", "jvm-smoke"])
    parser.add_argument(
        "--tree",
        action="append",
        default=[],
        help="NAME=PATH of a feast-spark source tree to run (repeat; default: this one)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="rounds (best is reported)")
    parser.add_argument("--tmp", default=None, help="scratch directory")
    parser.add_argument("--event-logs", default=None, help="write the small jobs' event logs here")
    parser.add_argument(
        "--jvm",
        action="append",
        default=[],
        help="jvm-options: NAME=OPTIONS of the driver JVM to compare (repeat)",
    )
    parser.add_argument(
        "--conf-variant",
        action="append",
        default=[],
        help="jvm-options: NAME=key=value;key=value Spark settings to compare (repeat)",
    )
    args = parser.parse_args(argv)
    print("command: python benchmarks/whole_process.py " + " ".join(argv or sys.argv[1:]))
    trees = dict(t.split("=", 1) for t in args.tree) or {"this": str(ROOT)}
    scratch = Path(tempfile.mkdtemp(prefix="whole-process-", dir=args.tmp))
    event_logs = Path(args.event_logs).resolve() if args.event_logs else None
    results: dict[str, list[list[Timed]]] = {name: [] for name in trees}
    if args.what == "jvm-smoke":
        options = dict(v.split("=", 1) for v in args.jvm) or {
            "none": "",
            "c1": "-XX:TieredStopAtLevel=1",
        }
        try:
            jvm_smoke(options, args.repeat, scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return
    if args.what == "warm":
        try:
            tree = Path(next(iter(trees.values())))
            print_quickstart(warm_rounds(tree, scratch, args.repeat))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return
    if args.what == "jvm-options":
        variants: dict[str, dict[str, str]] = {
            name: {"spark.driver.extraJavaOptions": options or "-Dnone=1"}
            for name, options in (v.split("=", 1) for v in args.jvm)
        }
        for variant in args.conf_variant:
            name, _, settings = variant.partition("=")
            variants[name] = dict(
                item.split("=", 1) for item in settings.split(";") if item.strip()
            )
        variants = variants or {
            "none": {"spark.driver.extraJavaOptions": "-Dnone=1"},
            "c1": {"spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1"},
        }
        try:
            tree = Path(next(iter(trees.values())))
            print_quickstart(variant_rounds(tree, scratch, variants, args.repeat))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return
    try:
        for round_number in range(args.repeat):
            for name, path in trees.items():
                runs = quickstart_round(name, Path(path), scratch, event_logs)
                results[name].append(runs)
                shown = ", ".join(f"{r.label.split(' ', 1)[1]} {r.seconds:.1f}s" for r in runs)
                print(f"round {round_number + 1} {name}: {shown} (load {runs[0].load:.1f})")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print_quickstart(results)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
