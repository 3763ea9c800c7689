"""One exception hierarchy for feast-spark.

Every error is a :class:`FeastSparkError` and also the builtin that matches its meaning, so callers
can catch either. Each carries the fields its message is built from; messages name the object, the
value and the fix.
"""

from __future__ import annotations

from typing import Any

ENTITY_ROWS = "entity rows"
"""Stands in for a table name in errors about the entity rows of a training set."""


class FeastSparkError(Exception):
    """Root of every error raised by feast-spark on purpose."""


class ConfigError(FeastSparkError, ValueError):
    """A configuration key is unknown, missing or has a bad value.

    Attributes:
        key: Dotted key path, e.g. ``online_store.port``.
        value: The offending value (``None`` when the key is missing).
        source: The file (or environment variable) the value came from.
        reason: What is wrong and how to fix it.

    """

    def __init__(self, key: str, value: Any, source: str, reason: str) -> None:
        self.key = key
        self.value = value
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: key '{key}' = {value!r}: {reason}")


class DefinitionError(FeastSparkError, ValueError):
    """An entity, feature, feature table or source definition is invalid.

    Attributes:
        kind: ``entity``, ``feature``, ``feature table`` or ``source``.
        name: The object's name.
        reason: What is wrong and how to fix it.

    """

    def __init__(self, kind: str, name: str, reason: str) -> None:
        self.kind = kind
        self.name = name
        self.reason = reason
        super().__init__(f"{kind} '{name}': {reason}")


class DefinitionFileError(FeastSparkError, ValueError):
    """A YAML definitions file cannot be parsed or holds an invalid document.

    Attributes:
        path: The file.
        line: 1-based line of the problem, when known.
        reason: What is wrong.

    """

    def __init__(self, path: str, line: int | None, reason: str) -> None:
        self.path = path
        self.line = line
        self.reason = reason
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {reason}")


class NotFoundError(FeastSparkError, LookupError):
    """A named object does not exist.

    Attributes:
        kind: ``entity``, ``feature table``, ``project``, ``job`` or ``feature``.
        name: The name that was looked up.
        project: The project searched, when it applies.

    """

    def __init__(self, kind: str, name: str, project: str | None = None, hint: str = "") -> None:
        self.kind = kind
        self.name = name
        self.project = project
        where = f" in project '{project}'" if project else ""
        super().__init__(f"{kind} '{name}' not found{where}" + (f": {hint}" if hint else ""))

    def __str__(self) -> str:
        # LookupError's str() would quote the message like a dict key.
        return str(self.args[0])


class CompatibilityError(FeastSparkError, ValueError):
    """An update would change something that cannot change (Feast's compatibility rules).

    Attributes:
        kind: ``entity`` or ``feature table``.
        name: The object's name.
        field: The field whose change is refused.
        old: The registered value.
        new: The requested value.

    """

    def __init__(self, kind: str, name: str, field: str, old: Any, new: Any) -> None:
        self.kind = kind
        self.name = name
        self.field = field
        self.old = old
        self.new = new
        super().__init__(
            f"{kind} '{name}': {field} cannot change from {old} to {new}; "
            f"create a new {kind} under another name instead"
        )


class OfflineLayoutError(FeastSparkError, ValueError):
    """An offline table has a layout feast-spark no longer writes; it must be rewritten once.

    Attributes:
        table: The feature table.
        path: Its Delta table.
        layout: What the table has, e.g. ``partitioned by event_date``.
        statement: The Delta SQL statement that rewrites it in the current layout, keeping its
            history and table properties.

    """

    def __init__(self, table: str, path: str, layout: str, statement: str) -> None:
        self.table = table
        self.path = path
        self.layout = layout
        self.statement = statement
        super().__init__(
            f"feature table '{table}': offline table {path} is {layout}, a layout feast-spark no "
            "longer writes; nothing was written. Rewrite it once (history and table properties "
            f"are kept) in a Spark SQL session with Delta, then run again: {statement}"
        )


class RegistryConflictError(FeastSparkError, RuntimeError):
    """Another process kept changing the registry while this one tried to commit.

    Attributes:
        uri: The registry's location.
        attempts: How many times the commit was tried.

    """

    def __init__(self, uri: str, attempts: int) -> None:
        self.uri = uri
        self.attempts = attempts
        super().__init__(
            f"registry '{uri}': changed by another process during each of {attempts} attempts; "
            "retry the command"
        )


class RegistryCorruptError(FeastSparkError, ValueError):
    """The registry file exists but cannot be read (empty, cut short, not a registry document).

    It is never taken for "no registry": nothing writes over it until it is repaired.

    Attributes:
        uri: The registry's location.
        reason: What is wrong with it.
        backup: Where the previous revision is kept (written before each commit).

    """

    def __init__(self, uri: str, reason: str, backup: str) -> None:
        self.uri = uri
        self.reason = reason
        self.backup = backup
        super().__init__(
            f"registry '{uri}' cannot be read ({reason}); nothing was changed: restore it from "
            f"its backup '{backup}' (the previous revision, if one was kept) or your own backup, "
            "or move it "
            "away to start an empty registry"
        )


class SourceSchemaError(FeastSparkError, ValueError):
    """A source's columns do not match the feature table's declaration.

    Attributes:
        table: The feature table.
        column: The source column.
        reason: What is wrong.

    """

    def __init__(self, table: str, column: str, reason: str) -> None:
        self.table = table
        self.column = column
        self.reason = reason
        owner = table if table == ENTITY_ROWS else f"feature table '{table}'"
        super().__init__(f"{owner}: column '{column}' {reason}")


class JobSpecError(FeastSparkError, ValueError):
    """A job spec cannot be read (wrong version, missing or bad field).

    Attributes:
        field: The field, or ``version``.
        reason: What is wrong.

    """

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"job spec: field '{field}': {reason}")


class IncrementalStateError(FeastSparkError, ValueError):
    """A table's incremental materialization state (or a value given for it) is not valid.

    Attributes:
        key: The state's key (``<table>.materialized_until``) or argument.
        value: The value found.
        reason: What is wrong and how to fix it.
    """

    def __init__(self, key: str, value: Any, reason: str) -> None:
        self.key = key
        self.value = value
        self.reason = reason
        super().__init__(f"incremental state {key} = {value!r}: {reason}")


class JobFailedError(FeastSparkError, RuntimeError):
    """A Spark job ended without success.

    Attributes:
        job_id: The job's id.
        state: Its final state.
        message: The job's own error (the driver's exception), or the tail of its log.

    """

    def __init__(self, job_id: str, state: str, message: str) -> None:
        self.job_id = job_id
        self.state = state
        self.message = message
        super().__init__(f"job '{job_id}' {state}: {message}")


class OnlineStoreError(FeastSparkError, ConnectionError):
    """The online store cannot be reached or refused an operation.

    Attributes:
        store: ``cassandra`` or ``sqlite``.
        target: Hosts tried or the file used.
        reason: The driver's error.

    """

    def __init__(self, store: str, target: str, reason: str) -> None:
        self.store = store
        self.target = target
        self.reason = reason
        super().__init__(f"{store} online store at {target}: {reason}")


class ArgumentError(FeastSparkError, ValueError):
    """An argument of a command or call has a bad value.

    Attributes:
        name: The argument, e.g. ``--start``.
        value: The value given.
        reason: What is wrong and how to fix it.
    """

    def __init__(self, name: str, value: Any, reason: str) -> None:
        self.name = name
        self.value = value
        self.reason = reason
        super().__init__(f"{name} {value!r}: {reason}")


class JarDownloadError(FeastSparkError, OSError):
    """A JVM jar feast-spark needs could not be put in the jar cache.

    Attributes:
        jar: The jar's Maven coordinate.
        url: Where it was fetched from (or the cache folder, when that is the problem).
        reason: What went wrong.
    """

    def __init__(self, jar: str, url: str, reason: str) -> None:
        self.jar = jar
        self.url = url
        self.reason = reason
        super().__init__(
            f"cannot fetch {jar} from {url}: {reason}; check the network or set "
            "FEAST_SPARK_MAVEN_REPO to a reachable Maven mirror, or pre-seed the jars on a "
            "connected machine (python -m feast_spark.jars --dest DIR, or "
            "conf/jars/fetch-jars.sh) and set FEAST_SPARK_JARS_DIR=DIR"
        )

    def __str__(self) -> str:
        return str(self.args[0])


class AddressInUseError(FeastSparkError, OSError):
    """A server cannot listen where it was told to (not a usage error: the port is taken).

    Attributes:
        address: ``host:port``.
        reason: The operating system's reason.
    """

    def __init__(self, host: str, port: int, reason: str) -> None:
        self.address = f"{host}:{port}"
        self.reason = reason
        super().__init__(
            f"--port {port}: cannot listen on {self.address}: {reason}; pick another --port "
            "(or feature_server.port) or stop what uses it"
        )

    def __str__(self) -> str:
        return str(self.args[0])


class DatasetGoneError(FeastSparkError, FileNotFoundError):
    """A training dataset cannot be rebuilt: something it read is gone or changed.

    Attributes:
        dataset: The dataset id.
        what: What is gone (a vacuumed Delta version, a changed or deleted entity file).
        fix: How to keep it next time (or restore it now).

    """

    def __init__(self, dataset: str, what: str, fix: str) -> None:
        self.dataset = dataset
        self.what = what
        self.fix = fix
        super().__init__(f"dataset '{dataset}' cannot be rebuilt: {what}; {fix}")


class VacuumRefusedError(FeastSparkError, RuntimeError):
    """A vacuum would delete files of an offline table version that a kept dataset read.

    Attributes:
        table: The feature table.
        version: The Delta version the dataset needs.
        datasets: The datasets that read it.

    """

    def __init__(self, table: str, version: int, datasets: list[str]) -> None:
        self.table = table
        self.version = version
        self.datasets = datasets
        names = ", ".join(datasets)
        super().__init__(
            f"offline table '{table}': vacuum refused: it would delete files of version {version},"
            f" which dataset(s) {names} read; delete those records first (feast-spark datasets "
            "delete ID) or vacuum with --force (they can then no longer be rebuilt)"
        )


class StatisticsReadError(FeastSparkError, OSError):
    """The statistics of an offline table exist but cannot be read, or a file is damaged.

    Attributes:
        path: The statistics folder or file.
        reason: What went wrong.
        damaged: The file was read but holds no statistics record (cut short, edited).
    """

    def __init__(self, path: str, reason: str, *, damaged: bool = False) -> None:
        self.path = path
        self.reason = reason
        self.damaged = damaged
        if damaged:  # read, but not a statistics record: a write cut short, or an edited file
            message = (
                f"feature statistics file '{path}' is damaged ({reason}); delete it (only that "
                "ingest's statistics are lost; the offline table is not affected) or restore it"
            )
        else:
            message = (
                f"feature statistics '{path}': {reason}; check the offline store's path and "
                "credentials"
            )
        super().__init__(message)

    def __str__(self) -> str:
        return str(self.args[0])


class DatasetRecordError(FeastSparkError, ValueError):
    """A training dataset record exists but is damaged (not JSON, or not a record).

    Attributes:
        path: The record file.
        dataset_id: Its dataset id.
        reason: What is wrong with it.
    """

    def __init__(
        self, path: str, dataset_id: str, reason: str, *, vacuum_of: str | None = None
    ) -> None:
        self.path = path
        self.dataset_id = dataset_id
        self.reason = reason
        delete = f"feast-spark datasets delete {dataset_id}"
        if vacuum_of is None:
            message = (
                f"dataset record {path} is damaged ({reason}); it can be neither listed nor "
                f"rebuilt: delete it ({delete}) or restore it"
            )
        else:  # the versions it read are unknown: any file may be one of them
            message = (
                f"offline table '{vacuum_of}': vacuum refused: dataset record {path} is damaged "
                f"({reason}), so the versions it read are unknown; delete it ({delete}), "
                "restore it, or vacuum with --force"
            )
        super().__init__(message)

    def __str__(self) -> str:
        return str(self.args[0])


class NothingToPushError(FeastSparkError, ValueError):
    """A push was given no rows: refused, so that an empty batch never passes for a success.

    Attributes:
        table: The feature table.
        where: The rows given (a path, or ``the rows given``).

    """

    def __init__(self, table: str, where: str) -> None:
        self.table = table
        self.where = where
        super().__init__(
            f"push to feature table '{table}': {where} holds no rows; nothing was pushed "
            "(give at least one row)"
        )
