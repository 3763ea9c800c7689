"""A small project for CLI tests that run real jobs through the local launcher."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

SMALL_SPARK = {
    "spark.driver.memory": "768m",
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "1",
    "spark.default.parallelism": "1",
    "spark.databricks.delta.snapshotPartitions": "1",
}


def write_project(
    folder: Path, table: str, extra_yaml: str = "", online_store: dict[str, Any] | None = None
) -> Path:
    """feature_store.yaml (local launcher) and one INT64 feature ``trips``.

    ``extra_yaml`` is appended to the feature table's document (e.g. its ``stream_source``);
    ``online_store`` is the store's section (default: SQLite in ``folder``).
    """
    config = {
        "project": "demo",
        "registry": str(folder / "registry.json"),
        "offline_store": {"path": str(folder / "offline")},
        "online_store": online_store or {"type": "sqlite", "path": str(folder / "online.db")},
        "spark": {"master": "local[1]", "conf": SMALL_SPARK},
        "launcher": {
            "type": "local",
            "job_store": str(folder / "jobs"),
            "staging_location": str(folder / "staging"),
        },
    }
    (folder / "feature_store.yaml").write_text(yaml.safe_dump(config))
    (folder / "definitions.yaml").write_text(
        "kind: Entity\nname: driver_id\nvalue_type: INT64\n---\n"
        f"kind: FeatureTable\nname: {table}\nentities: [driver_id]\n"
        "features: [{name: trips, dtype: INT64}]\n"
        "batch_source: {type: file, path: unused.parquet, event_timestamp_column: ts}\n"
        + extra_yaml
    )
    return folder
