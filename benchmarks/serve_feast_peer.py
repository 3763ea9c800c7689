"""Set up Feast's own feature server on the benchmark's values (run by the peer venv's Python).

Run by ``benchmarks/serve.py`` as ``<peer venv>/bin/python serve_feast_peer.py REPO KEYS EPOCH``;
imports Feast, never feast_spark. Writes a Feast feature repo in REPO (SQLite online store, the
local provider), three feature views ``t0``..``t2`` of ten Float64 features each (``a0``..``a9``,
``b0``.., ``c0``..) keyed by ``driver_id``, applies it, and writes every key's values with
``write_to_online_store``, the same values as the feast-spark stores get (``value()``).
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

PREFIXES = "abc"
FEATURES = 10


def value(table: int, feature: int, key: int) -> float:
    """The benchmark's value of feature ``feature`` of table ``table`` for ``key``."""
    return key / 1000 + table + feature / 10


REPO_FILES = {
    "feature_store.yaml": """project: bench
registry: data/registry.db
provider: local
online_store:
  type: sqlite
  path: data/online_store.db
entity_key_serialization_version: 3
""",
    "features.py": """from datetime import timedelta
from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float64

driver = Entity(name="driver_id", join_keys=["driver_id"], value_type=ValueType.INT64)
source = FileSource(path="data/source.parquet", timestamp_field="event_timestamp")
views = [
    FeatureView(
        name=f"t{t}", entities=[driver], ttl=timedelta(days=30), source=source, online=True,
        schema=[Field(name=f"{p}{i}", dtype=Float64) for i in range(10)],
    )
    for t, p in enumerate("abc")
]
t0, t1, t2 = views
""",
}


def main(repo: Path, keys: int, epoch: float) -> None:
    import pandas as pd
    from feast import FeatureStore

    (repo / "data").mkdir(parents=True, exist_ok=True)
    for name, text in REPO_FILES.items():
        (repo / name).write_text(text)
    stamp = datetime.fromtimestamp(epoch, tz=UTC)
    columns: dict[str, list[object]] = {
        "driver_id": list(range(keys)),
        "event_timestamp": [stamp] * keys,
    }
    for t, prefix in enumerate(PREFIXES):
        for i in range(FEATURES):
            columns[f"{prefix}{i}"] = [value(t, i, k) for k in range(keys)]
    frame = pd.DataFrame(columns)
    frame.to_parquet(repo / "data" / "source.parquet")
    subprocess.run([str(Path(sys.executable).parent / "feast"), "apply"], cwd=repo, check=True)
    store = FeatureStore(repo_path=str(repo))
    for t, prefix in enumerate(PREFIXES):
        names = [f"{prefix}{i}" for i in range(FEATURES)]
        store.write_to_online_store(f"t{t}", frame[["driver_id", "event_timestamp", *names]])
    check = store.get_online_features(features=["t0:a1"], entity_rows=[{"driver_id": 5}])
    print("feast peer ready:", check.to_dict(), "written at", stamp - timedelta(0))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))
