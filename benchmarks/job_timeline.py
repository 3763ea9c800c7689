"""Where a job's time goes, from the command to its exit: one line per phase and per Spark job.

Reads what a job leaves behind, all optional but the first:

* its folder in the job store (``job.json``: submitted, supervisor started; ``exit.json``:
  spark-submit exited; ``driver.log``; the result record: the Python job's own start and end);
* ``--event-log FILE`` or ``--event-log-dir DIR`` (the file whose application name holds the job
  id): a Spark event log (``spark.eventLog.enabled``), giving the SparkContext's start and end
  and each Spark job with its description, tasks and milliseconds. Without one, the Spark jobs
  come from the driver log's ``DAGScheduler: Job N finished`` lines (second resolution).

A job run by a warm driver (``feast-spark driver start``) has no JVM or SparkContext of its own:
its Spark jobs are those of its job group in the driver's event log (found by the driver's job
id), and its phases are ``launcher``, ``client`` (the warm client's start and the hand-off, up to
the job's first line in the driver), the jobs and driver-side gaps, and ``exit``.

Phases:

    launcher        command -> supervisor started (the CLI, registry, spec, sizing)
    jvm+python      supervisor -> the Python job's first line (spark-submit's JVM, Python, imports)
    sparkcontext    -> SparkContext up (event log: application start)
    jobs / driver   each Spark job, and the driver-side time between them (planning, Delta log
                    replay, Python); Delta's snapshot jobs are marked ``snapshot``
    stop            the Python job's end -> SparkContext stopped
    exit            -> spark-submit's exit recorded

Example::

    python benchmarks/job_timeline.py ~/qs/data/jobs/ingest-driver_stats-... \\
        --event-log-dir /tmp/events/after
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_DAG_JOB = re.compile(
    r"^(\d{2}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}) INFO DAGScheduler: Job (\d+) finished: (.+?), "
    r"took ([\d.]+) (ms|s)$",
    re.MULTILINE,
)
_SPARK_VERSION = re.compile(
    r"^(\d{2}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}) INFO SparkContext: Running Spark version", re.M
)


@dataclass
class SparkJob:
    """One Spark job: when it started and ended (epoch seconds), what it was, its tasks."""

    start: float
    end: float
    description: str
    tasks: int | None = None

    @property
    def kind(self) -> str:
        """``snapshot`` (Delta state reconstruction), ``delta`` (other log work) or ``work``."""
        text = self.description.lower()
        if "snapshot" in text:
            return "snapshot"
        if text.startswith("delta") or "delta log" in text:
            return "delta"
        return "work"


@dataclass
class Timeline:
    """The instants a job left behind (epoch seconds; None when unknown)."""

    submitted: float | None = None
    supervisor: float | None = None
    python_start: float | None = None
    context_start: float | None = None
    python_end: float | None = None
    context_end: float | None = None
    exited: float | None = None
    jobs: tuple[SparkJob, ...] = ()
    warm_driver: str | None = None  # the warm driver's job id, for a job it ran


def _instant(text: str | None) -> float | None:
    return datetime.fromisoformat(text).timestamp() if text else None


def _log_instant(text: str) -> float:
    """``26/11/26 17:34:22`` (log4j's default pattern; the JVM runs in UTC)."""
    return datetime.strptime(text, "%y/%m/%d %H:%M:%S").replace(tzinfo=UTC).timestamp()


def read_job_dir(folder: Path) -> tuple[Timeline, str]:
    """The instants of a job's folder in the job store, and its driver log."""
    record = _json(folder / "job.json")
    exit_doc = _json(folder / "exit.json")
    result_path = record.get("result_path") or str(folder / "result.json")
    result = _json(Path(result_path.removeprefix("file:")))
    log_file = folder / "driver.log"
    log = log_file.read_text(errors="replace") if log_file.is_file() else ""
    command = record.get("command") or []
    warm = "--driver-job" in command  # run by a warm driver: the option names it
    timeline = Timeline(
        warm_driver=command[command.index("--driver-job") + 1] if warm else None,
        submitted=_instant(record.get("submitted_at")),
        supervisor=_instant(record.get("started_at")),
        python_start=_instant(result.get("started_at")),
        python_end=_instant(result.get("finished_at")),
        exited=_instant(exit_doc.get("ended_at")),
    )
    versions = _SPARK_VERSION.findall(log)
    if versions:
        timeline.context_start = _log_instant(versions[0])
    jobs = []
    for stamp, _number, call_site, took, unit in _DAG_JOB.findall(log):
        end = _log_instant(stamp)
        seconds = float(took) / (1000 if unit == "ms" else 1)
        jobs.append(SparkJob(end - seconds, end, call_site))
    timeline.jobs = tuple(jobs)
    return timeline, log


def event_lines(path: Path) -> list[str]:
    """The lines of an event log: a file, or Spark 4's folder of (zstd-compressed) parts."""
    parts = sorted(path.glob("events_*")) if path.is_dir() else [path]
    lines: list[str] = []
    for part in parts:
        if part.suffix in (".zstd", ".zst"):
            text = subprocess.run(
                ["zstd", "-dc", str(part)], capture_output=True, text=True, check=False
            ).stdout
        else:
            text = part.read_text(errors="replace")
        lines += text.splitlines()
    return lines


def read_event_log(path: Path, timeline: Timeline, job_group: str | None = None) -> Timeline:
    """Fill the SparkContext's start and end and the Spark jobs from an event log.

    ``job_group``: only the Spark jobs of that group (a job of a warm driver, whose application
    start and end are the driver's, not the job's).
    """
    starts: dict[int, tuple[float, str, int]] = {}
    jobs = []
    for line in event_lines(path):
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue  # a log cut short by a killed driver
        kind = event.get("Event")
        if kind == "SparkListenerApplicationStart" and job_group is None:
            timeline.context_start = event["Timestamp"] / 1000
        elif kind == "SparkListenerApplicationEnd" and job_group is None:
            timeline.context_end = event["Timestamp"] / 1000
        elif kind == "SparkListenerJobStart":
            properties = event.get("Properties") or {}
            if job_group is not None and properties.get("spark.jobGroup.id") != job_group:
                continue
            description = (
                properties.get("spark.job.description") or properties.get("callSite.short") or "?"
            )
            tasks = sum(s.get("Number of Tasks", 0) for s in event.get("Stage Infos", []))
            starts[event["Job ID"]] = (event["Submission Time"] / 1000, description, tasks)
        elif kind == "SparkListenerJobEnd" and event["Job ID"] in starts:
            start, description, tasks = starts.pop(event["Job ID"])
            jobs.append(SparkJob(start, event["Completion Time"] / 1000, description, tasks))
    timeline.jobs = tuple(sorted(jobs, key=lambda job: job.start))
    return timeline


def find_event_log(folder: Path, job_id: str) -> Path | None:
    """The event log in ``folder`` whose application name holds ``job_id``."""
    for path in sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True):
        if path.name.startswith("."):
            continue
        head = event_lines(path)[:50]  # the application start comes after the environment
        if any('"SparkListenerApplicationStart"' in line and job_id in line for line in head):
            return path
    return None


def phases(timeline: Timeline) -> list[tuple[str, float | None, float | None, str]]:
    """(phase, start, end, note) rows in time order."""
    if timeline.warm_driver is not None:
        return _warm_phases(timeline)
    rows: list[tuple[str, float | None, float | None, str]] = [
        ("launcher", timeline.submitted, timeline.supervisor, "CLI -> supervisor"),
        ("jvm+python", timeline.supervisor, timeline.python_start, "spark-submit, Python"),
        ("sparkcontext", timeline.python_start, timeline.context_start, ""),
    ]
    previous = _add_spark_jobs(rows, timeline, timeline.context_start)
    if previous is not None and timeline.python_end is not None:
        rows.append(("driver", previous, timeline.python_end, "after the last Spark job"))
    rows.append(("stop", timeline.python_end, timeline.context_end, "spark.stop()"))
    rows.append(("exit", timeline.context_end or timeline.python_end, timeline.exited, ""))
    return rows


def _add_spark_jobs(
    rows: list[tuple[str, float | None, float | None, str]],
    timeline: Timeline,
    previous: float | None,
) -> float | None:
    """Append each Spark job and the driver-side gap before it; return the last job's end."""
    for job in timeline.jobs:
        if previous is not None and job.start - previous > 0.05:
            rows.append(("driver", previous, job.start, "between Spark jobs"))
        tasks = f"{job.tasks} tasks, " if job.tasks is not None else ""
        rows.append((job.kind, job.start, job.end, tasks + job.description[:70]))
        previous = max(previous or job.end, job.end)
    return previous


def _warm_phases(timeline: Timeline) -> list[tuple[str, float | None, float | None, str]]:
    rows: list[tuple[str, float | None, float | None, str]] = [
        ("launcher", timeline.submitted, timeline.supervisor, "CLI -> supervisor"),
        ("client", timeline.supervisor, timeline.python_start,
         f"warm client -> the job's first line in {timeline.warm_driver}"),
    ]  # fmt: skip
    previous = _add_spark_jobs(rows, timeline, timeline.python_start)
    rows.append(("driver", previous, timeline.python_end, "after the last Spark job"))
    rows.append(("exit", timeline.python_end, timeline.exited, "the client and supervisor end"))
    return rows


def print_timeline(timeline: Timeline) -> None:
    """The phases with their offsets from the first known instant, then totals per kind."""
    rows = phases(timeline)
    origin = min(t for row in rows for t in row[1:3] if isinstance(t, float))
    totals: dict[str, float] = {}
    print(f"{'phase':<13} {'at s':>7} {'took s':>7}  note")
    for name, start, end, note in rows:
        if start is None or end is None:
            print(f"{name:<13} {'?':>7} {'?':>7}  {note} (not recorded)")
            continue
        took = end - start
        totals[name] = totals.get(name, 0.0) + took
        print(f"{name:<13} {start - origin:7.2f} {took:7.2f}  {note}")
    print("totals: " + ", ".join(f"{name} {seconds:.1f}s" for name, seconds in totals.items()))
    ends = [t for t in (timeline.exited, timeline.context_end, timeline.python_end) if t]
    if ends:
        print(f"first instant to last: {max(ends) - origin:.1f}s")


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("job_dir", help="the job's folder in the job store")
    parser.add_argument("--event-log", default=None, help="the job's Spark event log")
    parser.add_argument("--event-log-dir", default=None, help="find the event log in here")
    args = parser.parse_args(argv)
    folder = Path(args.job_dir)
    timeline, _log = read_job_dir(folder)
    event_log = Path(args.event_log) if args.event_log else None
    if event_log is None and args.event_log_dir:
        event_log = find_event_log(Path(args.event_log_dir), timeline.warm_driver or folder.name)
    if event_log is not None:
        group = folder.name if timeline.warm_driver else None
        timeline = read_event_log(event_log, timeline, group)
        print(f"job {folder.name}, event log {event_log}")
    else:
        print(f"job {folder.name}, driver log only (Spark jobs to the second)")
    print_timeline(timeline)


if __name__ == "__main__":
    main()
