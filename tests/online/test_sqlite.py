"""The SQLite online store's connection (online.sqlite)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from feast_spark.config import SqliteOnlineStoreConfig
from feast_spark.online import sqlite as sqlite_store


class _LockedOnce:
    """A connection whose first WAL switch fails as SQLite's does while another process opens."""

    failures = 0

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def execute(self, statement: str, *args: Any) -> Any:
        if statement.startswith("PRAGMA journal_mode") and _LockedOnce.failures < 2:
            _LockedOnce.failures += 1
            raise sqlite3.OperationalError("database is locked")
        return self._connection.execute(statement, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


def test_an_open_that_finds_the_file_locked_is_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a file whose WAL switch fails twice at once with "database is locked" (SQLite does
    # not wait on its busy timeout while another process opens or closes the file)
    connect = sqlite3.connect
    monkeypatch.setattr(
        sqlite_store.sqlite3, "connect", lambda *a, **k: _LockedOnce(connect(*a, **k))
    )

    # when the store opens it
    store = sqlite_store.SqliteOnlineStore(SqliteOnlineStoreConfig(path=str(tmp_path / "o.db")))

    # then the open was tried again and the store works
    try:
        assert _LockedOnce.failures == 2
        assert store._connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        store.close()


def test_other_open_errors_are_not_retried(tmp_path: Path) -> None:
    # given a path whose folder is a file
    (tmp_path / "file").write_text("x")

    # then opening fails at once with the store's error
    with pytest.raises(sqlite_store.OnlineStoreError, match="cannot open"):
        sqlite_store.SqliteOnlineStore(
            SqliteOnlineStoreConfig(path=str(tmp_path / "file" / "o.db"))
        )


def test_a_read_if_free_reads_at_once_and_gives_way_to_a_thread_using_the_connection(
    tmp_path: Path,
) -> None:
    # given a SQLite store holding one row
    import pyarrow as pa

    from feast_spark.definitions import Entity, Feature, FeatureTable, FileSource
    from feast_spark.online.base import OnlineTableSchema, ReadRequest

    table = FeatureTable(
        "stats",
        ["id"],
        [Feature("rate", "DOUBLE")],
        FileSource(path="/x", event_timestamp_column="t"),
    )
    schema = OnlineTableSchema.of("p", table, [Entity("id", "INT64")])
    store = sqlite_store.SqliteOnlineStore(SqliteOnlineStoreConfig(path=str(tmp_path / "o.db")))
    store.ensure_table(schema)
    rows = {
        "id": [7],
        "rate": [0.5],
        "event_timestamp": pa.array([10**15], pa.timestamp("us", "UTC")),
    }
    store.write_batch(schema, pa.RecordBatch.from_pydict(rows))
    requests = [ReadRequest(schema, ("rate",), ((7,), (8,)))]

    # when the connection is free, then it reads what read() reads
    answers = store.read_if_free(requests)
    assert answers == store.read(requests)
    assert answers is not None and [r and r.values for r in answers[0].rows] == [(0.5,), None]
    # when another thread holds the connection, then it does not wait for it
    with store._lock:
        assert store.read_if_free(requests) is None
    store.close()
