"""The launcher: turn a job spec into a running Spark job, record it, and find it again.

    launcher = Launcher.from_config(config)
    job = launcher.submit(spec)          # writes <job store>/<id>/spec.json, starts jobs/<type>.py
    job.wait()                           # or later, from any process: launcher.get(job.id).wait()

Targets (``launcher.type`` x ``launcher.deploy_mode`` of ``feature_store.yaml``):

==========  ============================  ================================================
type        client mode                   cluster mode
==========  ============================  ================================================
local       spark-submit process          (not possible: a local master has no cluster)
standalone  spark-submit process          master's REST submission server
yarn        spark-submit process          ``yarn application -status/-kill``
kubernetes  spark-submit process          ``spark-submit --status/--kill``
==========  ============================  ================================================

Double runs: an ``ingest``, ``materialize`` or ``stream_ingestion`` job is **refused**
(:class:`JobConflictError`, naming the other job) while another job of the same type writes one
of its tables over an overlapping window in the same project (a stream's window is open: one
stream per table). The launcher refuses rather than waits: a scheduler retries the
task, a person decides. The check is "write my record, then look": of two launchers racing, the
later-submitted job is the one refused, so at most one runs.
"""

from __future__ import annotations

import builtins
import getpass
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from feast_spark.config import RepoConfig
from feast_spark.definitions.durations import format_duration
from feast_spark.errors import ArgumentError, ConfigError
from feast_spark.jars import cache_root
from feast_spark.launcher import environment, sizing, warm
from feast_spark.launcher.base import Job, Target
from feast_spark.launcher.class_archive import ClassArchive, driver_class_archive
from feast_spark.launcher.commands import Runner, run_command
from feast_spark.launcher.errors import JobConflictError, SubmitError, TrackingError
from feast_spark.launcher.job_store import (
    RESULT_FILE,
    SPEC_FILE,
    JobStore,
    JobStoreError,
    check_job_id,
)
from feast_spark.launcher.kubernetes import KubernetesClusterTarget
from feast_spark.launcher.local import ProcessTarget
from feast_spark.launcher.records import JobRecord, JobState, describe_window, overlaps
from feast_spark.launcher.secrets import remove_secrets, write_secrets
from feast_spark.launcher.standalone import StandaloneClusterTarget, master_ui_url, rest_url
from feast_spark.launcher.submit import (
    JobLaunch,
    SparkSettings,
    SparkTarget,
    build_rest_submission,
    build_spark_submit_command,
    effective_conf,
    mask_command,
    secret_conf,
)
from feast_spark.launcher.yarn import YarnClusterTarget
from feast_spark.spark_conf import find_defaults_file, jars_conf, read_properties
from feast_spark.specs import JobSpec, Window, new_job_id
from feast_spark.storage import delete_dir

GUARDED_JOB_TYPES = ("ingest", "materialize", "stream_ingestion")
YARN_COMMAND_ENV = "FEAST_SPARK_YARN"
# Set by a PySpark driver; a spark-submit started from inside one must not inherit them.
_GATEWAY_VARIABLES = ("PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET")


@dataclass(frozen=True)
class PrunedJob:
    """A job :meth:`Launcher.prune` deleted (or would delete, in a dry run).

    Attributes:
        record: Its last record.
        removed: The folders deleted: its folder in the job store, then its staged inputs.
    """

    record: JobRecord
    removed: tuple[str, ...]


class Launcher:
    """Submit jobs to one Spark target and track them through one job store.

    Args:
        target: Where jobs run.
        store: Where job records live.
        spark_conf: ``spark.conf`` of ``feature_store.yaml``.
        settings: What every job is given; None gathers it from this machine at the first
            submission (spark-defaults.conf, Delta jars, the feast_spark zip, the Python).
        runner: Runs short commands (cluster-mode spark-submit, ``yarn``); a fake in tests.
        grace_s: Seconds a cancelled local/client job gets between SIGTERM and SIGKILL.
    """

    def __init__(
        self,
        target: SparkTarget,
        store: JobStore,
        *,
        spark_conf: Mapping[str, str] | None = None,
        settings: SparkSettings | None = None,
        runner: Runner = run_command,
        grace_s: float = 20.0,
    ) -> None:
        self.target = target
        self.store = store
        self.spark_conf = dict(spark_conf or {})
        self._settings = settings
        self.runner = runner
        self.grace_s = grace_s

    @classmethod
    def from_config(cls, config: RepoConfig) -> Launcher:
        """The launcher ``feature_store.yaml`` describes (nothing is checked or built yet)."""
        kind = config.launcher.type
        target = SparkTarget(
            kind=kind,
            master=config.spark.master,
            deploy_mode="client" if kind == "local" else config.launcher.deploy_mode,
            spark_submit="spark-submit",
            extra_args=tuple(config.launcher.spark_submit_args),
        )
        return cls(target, JobStore(config.launcher.job_store), spark_conf=config.spark.conf)

    # --- submitting ------------------------------------------------------------------------------

    def submit(self, spec: JobSpec, *, conf: Mapping[str, str] | None = None) -> Job:
        """Start ``jobs/<spec.job_type>.py --spec <job store>/<id>/spec.json``.

        The spec is stored beside the job's record; its ``result_path`` defaults to
        ``<job store>/<id>/result.json``.

        Args:
            spec: The job spec (``job_id`` from :func:`feast_spark.specs.new_job_id`).
            conf: Spark settings for this job only. Settings sized to the job
                (:mod:`feast_spark.launcher.sizing`: Delta snapshot partitions from its tables'
                log size, JVM options of a small local job) go beneath these and ``spark.conf``.

        Returns:
            The running job (``wait()`` for it, or pick it up later with :meth:`get`).

        Raises:
            JobConflictError: Another job writes one of its tables over an overlapping window.
            SubmitError: Spark did not accept the job (the record says FAILED, with the reason).
            ConfigError: The launcher settings do not fit together, or a file is missing.
        """
        check_job_id(spec.job_id)
        if spec.result_path is None:
            spec = replace(spec, result_path=self.store.path(spec.job_id, RESULT_FILE))
        local = self.target.kind == "local"
        sized = sizing.sized_conf(sizing.measure(spec, inputs=local), local_master=local)
        return self._launch(
            job_id=spec.job_id,
            job_type=spec.job_type,
            job_file=environment.job_file(spec.job_type),
            app_args=("--spec", self.store.path(spec.job_id, SPEC_FILE)),
            project=spec.project,
            tables=tuple(t.name for t in spec.feature_tables),
            window=spec.window,
            result_path=spec.result_path,
            conf=conf,
            spec_text=spec.to_json(),
            sized=sized,
        )

    def submit_file(
        self,
        job_file: str | Path,
        *,
        job_type: str = "custom",
        job_id: str | None = None,
        app_args: Sequence[str] = (),
        project: str | None = None,
        tables: Sequence[str] = (),
        window: Window | None = None,
        result_path: str | None = None,
        conf: Mapping[str, str] | None = None,
    ) -> Job:
        """Start any Python job file (``jobs/smoke.py``, a one-off script) as a tracked job.

        Raises:
            JobConflictError: See :meth:`submit`.
            SubmitError: See :meth:`submit`.
            ConfigError: See :meth:`submit`.
        """
        path = Path(job_file).resolve()
        if not path.is_file():
            raise ConfigError("job_file", str(job_file), "launcher", "no such file")
        job_id = check_job_id(job_id or new_job_id(job_type, tables[0] if tables else None))
        return self._launch(
            job_id=job_id,
            job_type=job_type,
            job_file=path,
            app_args=tuple(app_args),
            project=project,
            tables=tuple(tables),
            window=window or Window(),
            result_path=result_path,
            conf=conf,
            spec_text=None,
        )

    # --- finding ---------------------------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        """The job ``job_id``, from the store (any process can call this).

        Raises:
            NotFoundError: No such job.
        """
        record = self.store.get(job_id)
        return Job(record, self.store, self.target_for(record))

    def list(
        self,
        *,
        state: JobState | str | None = None,
        table: str | None = None,
        job_type: str | None = None,
        project: str | None = None,
        refresh: bool = True,
    ) -> list[JobRecord]:
        """Jobs in the store, newest first.

        With ``refresh``, jobs not known to have ended are first asked for their state; one whose
        source of truth cannot be asked keeps its last known state.
        """
        records = self.store.list(table=table, job_type=job_type, project=project)
        if refresh:
            records = [self._refreshed(r) for r in records]
        if state is not None:
            records = [r for r in records if r.state == JobState(state)]
        return records

    def prune(
        self,
        older_than: timedelta,
        *,
        staging_location: str | None = None,
        dry_run: bool = False,
        now: datetime | None = None,
    ) -> builtins.list[PrunedJob]:
        """Delete the jobs that ended more than ``older_than`` ago, oldest first.

        A pruned job's folder in the store goes (record, spec, driver log, result record), and
        with ``staging_location`` its staged inputs, ``<staging_location>/<job id>``: the
        frames handed to the client, and a training dataset written without an output path.
        Datasets written to an output path, and the tables a job wrote, are never touched.
        Jobs not known to have ended (asked first, as :meth:`list` does) are kept whatever
        their age. The staged inputs go before the record, so an interrupted prune is finished
        by the next one.

        Args:
            older_than: Age, from the job's end, beyond which it is deleted (0: every ended job).
            staging_location: ``launcher.staging_location`` of the configuration.
            dry_run: Report what would be deleted; delete nothing.
            now: The current time (for tests).

        Raises:
            ArgumentError: ``older_than`` is negative.
        """
        if older_than < timedelta(0):
            raise ArgumentError("older_than", format_duration(older_than), "must not be negative")
        cutoff = (now or datetime.now(UTC)) - older_than
        ended = [
            record for record in self.list() if record.state.is_final and _ended(record) <= cutoff
        ]
        pruned = []
        for record in sorted(ended, key=lambda r: (_ended(r), r.job_id)):
            removed = []
            if staging_location:
                staged = f"{staging_location.rstrip('/')}/{record.job_id}"
                if delete_dir(staged, dry_run=dry_run):
                    removed.append(staged)
            folder = self.store.path(record.job_id, "").rstrip("/")
            if not dry_run:
                remove_secrets(record.job_id)  # left behind only if a supervisor was killed
                self.store.delete(record.job_id)
            pruned.append(PrunedJob(record, (folder, *removed)))
        return pruned

    def abandon(self, job_id: str, *, reason: str) -> JobRecord:
        """Mark a job lost: ABANDONED (final), with who, when and why in its error.

        For a job whose driver ran on a machine that is gone (its record can never learn how it
        ended), or on a cluster that no longer answers. It then no longer blocks overlapping
        ingests or materializations. The record also carries a cancel request, so a supervisor
        that is in fact alive (a network partition) stops the job when it next reads it; writes
        made before are not undone (a Delta commit is all or nothing; rerun the window).

        Raises:
            ArgumentError: The job already ended, or it can be asked and is running (cancel it).
            NotFoundError: No such job.
        """
        job = self.get(job_id)
        try:
            record = job.refresh()
            answered = not job.record.runs_elsewhere
        except TrackingError:
            record, answered = self.store.get(job_id), False
        if record.state.is_final:
            raise ArgumentError(
                "job", job_id, f"already ended: {record.state.value}; nothing to abandon"
            )
        if answered:
            raise ArgumentError(
                "job",
                job_id,
                f"is {record.state.value} and can be asked from here ({record.host or 'cluster'}):"
                f" stop it with 'feast-spark jobs cancel {job_id}'",
            )
        now = datetime.now(UTC)
        where = f"host '{record.host}'" if record.runs_elsewhere else f"{record.master}"
        error = (
            f"abandoned at {now.isoformat(timespec='seconds')} from {socket.gethostname()} "
            f"by {_user()}: {reason}; its driver was last known RUNNING on {where}, and how it "
            "ended is unknown (a Delta commit is all or nothing: rerun the window to be sure)"
        )
        return self.store.put(
            replace(
                record,
                state=JobState.ABANDONED,
                ended_at=now,
                error=error,
                cancel_requested_at=record.cancel_requested_at or now,
            )
        )

    def target_for(self, record: JobRecord) -> Target:
        """How to reach a job's source of truth, from its record."""
        if record.deploy_mode != "cluster" or record.target == "local":
            return ProcessTarget(self.store, grace_s=self.grace_s)
        if record.target == "standalone":
            rest = record.rest_url or rest_url(record.master, self.spark_conf)
            return StandaloneClusterTarget(rest, master_ui_url(rest, self.spark_conf))
        if record.target == "yarn":
            return YarnClusterTarget(
                self.store, os.environ.get(YARN_COMMAND_ENV, "yarn"), self.runner
            )
        return KubernetesClusterTarget(
            self.store, self.spark_submit_program(), self.spark_conf, self.runner
        )

    # --- internals -------------------------------------------------------------------------------

    def _launch(
        self,
        *,
        job_id: str,
        job_type: str,
        job_file: Path,
        app_args: tuple[str, ...],
        project: str | None,
        tables: tuple[str, ...],
        window: Window,
        result_path: str | None,
        conf: Mapping[str, str] | None,
        spec_text: str | None,
        sized: Mapping[str, str] | None = None,
    ) -> Job:
        self._check_target()
        target = replace(self.target, spark_submit=self.spark_submit_program())
        settings = self.settings()
        launch = JobLaunch(job_id, str(job_file), app_args, dict(conf or {}), dict(sized or {}))
        record = JobRecord(
            job_id=job_id,
            job_type=job_type,
            state=JobState.PENDING,
            target=target.kind,
            deploy_mode=target.deploy_mode,
            master=target.master,
            submitted_at=datetime.now(UTC),
            project=project,
            tables=tables,
            window=window,
            spec_uri=self.store.path(job_id, SPEC_FILE) if spec_text is not None else None,
            result_path=result_path,
        )
        record = self.store.create(record)
        if spec_text is not None:
            self.store.write_text(job_id, SPEC_FILE, spec_text)
        self._refuse_overlaps(record)

        tracker = self.target_for(record)
        secrets_file = None
        try:
            if isinstance(tracker, StandaloneClusterTarget):
                request = build_rest_submission(
                    target, launch, settings, environment.spark_version()
                )
                started = tracker.start(record, request)
            elif isinstance(tracker, ProcessTarget | YarnClusterTarget | KubernetesClusterTarget):
                secrets = secret_conf(target, launch, settings)
                if secrets:  # off the command line: see feast_spark.launcher.secrets
                    secrets_file = write_secrets(job_id, secrets)
                archive = None
                if isinstance(tracker, ProcessTarget) and target.kind == "local":
                    launch, archive = _with_class_archive(target, launch, settings)
                argv = build_spark_submit_command(
                    target, launch, settings, str(secrets_file) if secrets_file else None
                )
                env = self.job_environment(target, settings)
                if isinstance(tracker, ProcessTarget):  # the project's warm driver, if it can
                    argv = warm.route(self.store, target, launch, settings, job_type, env,
                                      spec_text=spec_text, fallback=argv) or argv  # fmt: skip
                record = self.store.put(replace(record, command=tuple(mask_command(argv))))
                if isinstance(tracker, ProcessTarget):
                    # The supervisor removes the file once spark-submit has ended.
                    started = tracker.start(
                        record, argv, env, remove_after=secrets_file, class_archive=archive
                    )
                    secrets_file = None
                else:
                    started = tracker.start(record, argv, env)
            else:
                raise TypeError(f"no way to start a job on {tracker!r}")
        except SubmitError as error:
            self.store.put(
                replace(
                    record,
                    state=JobState.FAILED,
                    ended_at=datetime.now(UTC),
                    error=str(error),
                    command=error.command or record.command,
                )
            )
            raise
        except OSError as error:
            failed = SubmitError(job_id, record.command, f"cannot start the job: {error}")
            self.store.put(
                replace(
                    record, state=JobState.FAILED, ended_at=datetime.now(UTC), error=str(failed)
                )
            )
            raise failed from None
        finally:
            if secrets_file is not None:  # cluster mode: spark-submit has handed them on
                remove_secrets(job_id)
        started = self.store.put(started)
        return Job(started, self.store, tracker)

    def settings(self) -> SparkSettings:
        """What every job is given (gathered from this machine once).

        The Delta jars are resolved here, in this process, before the first job is submitted
        (:func:`feast_spark.spark_conf.jars_conf`), so a job never resolves them itself.

        Raises:
            ConfigError: spark-defaults.conf cannot be found or read, or the jar settings are bad.
            JarDownloadError: The jar cache had to be filled and a jar could not be downloaded.
        """
        if self._settings is None:
            defaults_file = find_defaults_file(required=True)
            self._settings = SparkSettings(
                defaults=read_properties(defaults_file) if defaults_file else {},
                jars=jars_conf(),
                conf=self.spark_conf,
                py_files=(str(environment.package_zip()),),
                python=environment.python_executable(),
            )
        return self._settings

    def spark_submit_program(self) -> str:
        """The spark-submit jobs are started with (the pinned Spark's unless configured)."""
        if self.target.spark_submit != "spark-submit":
            return self.target.spark_submit
        return str(environment.spark_home() / "bin" / "spark-submit")

    def job_environment(self, target: SparkTarget, settings: SparkSettings) -> dict[str, str]:
        """This process's environment, with the job's Python and SPARK_HOME set.

        SPARK_HOME is the one of the spark-submit used, as ./spark-submit.sh does: the pinned
        Spark runs, whatever SPARK_HOME said before.
        """
        env = {k: v for k, v in os.environ.items() if k not in _GATEWAY_VARIABLES}
        env["SPARK_HOME"] = str(Path(target.spark_submit).resolve().parent.parent)
        env.setdefault("PYSPARK_PYTHON", settings.python)
        env.setdefault("PYSPARK_DRIVER_PYTHON", settings.python)
        return env

    def _check_target(self) -> None:
        kind, master = self.target.kind, self.target.master
        expected = {
            "local": ("local", "local[N] or local[*]"),
            "standalone": ("spark://", "spark://host:7077"),
            "yarn": ("yarn", "yarn"),
            "kubernetes": ("k8s://", "k8s://https://host:443"),
        }[kind]
        if not master.startswith(expected[0]):
            raise ConfigError(
                "spark.master",
                master,
                "launcher",
                f"launcher.type '{kind}' needs a master like {expected[1]}",
            )

    def _refresh(self, record: JobRecord) -> JobRecord:
        return Job(record, self.store, self.target_for(record)).refresh()

    def _refreshed(self, record: JobRecord) -> JobRecord:
        if record.state.is_final:
            return record
        try:
            return self._refresh(record)
        except TrackingError:
            return record  # last known state; `jobs describe` shows why it cannot be asked

    def _refuse_overlaps(self, record: JobRecord) -> None:
        if record.job_type not in GUARDED_JOB_TYPES or not record.tables:
            return
        damaged = self.store.unreadable()
        if damaged:
            # It may be a running job writing the same table: refuse rather than guess.
            self.store.delete(record.job_id)
            problem = damaged[0]
            folder = problem.location.rsplit("/", 1)[0]
            raise JobStoreError(
                problem.location,
                f"{problem.reason}; job '{record.job_id}' refused: that job may write the same "
                f"table. Repair the file, or delete the folder {folder} if that job is known to "
                "have ended, then submit again",
            )
        mine = (record.submitted_at, record.job_id)
        for other in self.store.list(job_type=record.job_type, project=record.project):
            if other.job_id == record.job_id or other.state.is_final:
                continue
            shared = sorted(set(other.tables) & set(record.tables))
            if not shared or not overlaps(other.window, record.window):
                continue
            other = self._refreshed(other)
            if other.state.is_final or (other.submitted_at, other.job_id) > mine:
                continue  # ended, or submitted after this one: it is the one refused
            self.store.delete(record.job_id)
            raise JobConflictError(
                record.job_id,
                other.job_id,
                other.state.value,
                shared[0],
                f"{describe_window(record.window)} overlaps {describe_window(other.window)}",
            )


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown user"


def _ended(record: JobRecord) -> datetime:
    """When a job ended, or the latest time known of it when its record does not say."""
    return record.ended_at or record.updated_at or record.submitted_at


def _with_class_archive(
    target: SparkTarget, launch: JobLaunch, settings: SparkSettings
) -> tuple[JobLaunch, ClassArchive | None]:
    """``launch`` with the driver's class-data sharing options (:mod:`.class_archive`)."""
    conf = effective_conf(target, launch, settings)
    # Only the user's own driver options (feature_store.yaml, the job's conf) beat the sized ones.
    user_options = {**settings.conf, **launch.conf}.get(sizing.DRIVER_JAVA_OPTIONS)
    conf = {k: v for k, v in conf.items() if k != sizing.DRIVER_JAVA_OPTIONS}
    if user_options:
        conf[sizing.DRIVER_JAVA_OPTIONS] = user_options
    archive = driver_class_archive(conf, cache_root() / "jvm", target.spark_submit)
    if archive is None:
        return launch, None
    options = " ".join(
        o for o in (launch.sized.get(sizing.DRIVER_JAVA_OPTIONS), archive.java_options) if o
    )
    return replace(launch, sized={**launch.sized, sizing.DRIVER_JAVA_OPTIONS: options}), archive
