"""SharedStores: a Python worker's Cassandra stores, kept open across its write tasks."""

from __future__ import annotations

from typing import Any

import pytest

from feast_spark.online.stores import SharedStores
from feast_spark.online_store_config import CassandraOnlineStoreConfig, SqliteOnlineStoreConfig


class FakeStore:
    """Records whether it was closed (stands in for a store: pure bookkeeping is tested)."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.closed = False

    def close(self) -> None:
        self.closed = True


def make_stores() -> tuple[SharedStores, list[FakeStore]]:
    opened: list[FakeStore] = []

    def opener(config: Any) -> Any:
        opened.append(FakeStore(config))
        return opened[-1]

    return SharedStores(opener), opened


def test_equal_cassandra_settings_share_one_store_until_it_is_discarded() -> None:
    # given a worker's stores
    stores, opened = make_stores()
    settings = {"type": "cassandra", "hosts": ["127.0.0.1"], "keyspace": "k"}
    # when two tasks ask for the same settings (one as a mapping, one as a config)
    first, shared = stores.get(settings)
    second, _ = stores.get(CassandraOnlineStoreConfig(hosts=("127.0.0.1",), keyspace="k"))
    # then one store serves both and stays open
    assert shared and first is second and len(opened) == 1 and not opened[0].closed
    # when a write through it fails and the task discards it
    stores.discard(first)
    # then it is shut, and the next task gets a new one
    third, _ = stores.get(settings)
    assert opened[0].closed and third is not first and len(opened) == 2


def test_other_settings_get_their_own_store_and_close_all_shuts_every_one() -> None:
    stores, opened = make_stores()
    stores.get({"type": "cassandra", "keyspace": "a"})
    stores.get({"type": "cassandra", "keyspace": "b"})
    assert len(opened) == 2
    stores.close_all()
    assert all(store.closed for store in opened)


def test_sqlite_stores_are_not_kept(tmp_path: Any) -> None:
    stores, opened = make_stores()
    config = SqliteOnlineStoreConfig(path=str(tmp_path / "online.db"))
    first, shared = stores.get(config)
    second, _ = stores.get(config)
    assert not shared and first is not second and len(opened) == 2


def test_bad_settings_are_refused_before_any_store_opens() -> None:
    stores, opened = make_stores()
    with pytest.raises(ValueError, match="hostz"):
        stores.get({"type": "cassandra", "hostz": ["x"]})
    assert opened == []
