"""``feast-spark quickstart``: a working sample project, run end to end, step by step.

Generates hourly driver statistics for 1,000 drivers over 30 days and daily customer profiles,
writes ``feature_store.yaml`` and the definitions, then applies, ingests into Delta, builds a
training dataset, materializes and reads online values, printing each step with its time and
rows. The folder stays a normal project: edit it and rerun the ordinary commands.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

DRIVERS = 1_000
CUSTOMERS = 5_000
DAYS = 30
ENTITY_ROWS = 2_000

CONFIG = """\
# A feast-spark project made by 'feast-spark quickstart'. Keys: see the README.
project: quickstart
registry: data/registry.json
offline_store:
  path: data/offline            # Delta tables: data/offline/quickstart/<table>
{online_store}
spark:
  master: "local[2]"
  conf:
    spark.sql.shuffle.partitions: "4"
    spark.ui.showConsoleProgress: "false"
launcher:
  type: local
"""

SQLITE = """online_store:
  type: sqlite                  # embedded: one file, local Spark only
  path: data/online_store.db"""

CASSANDRA = """online_store:
  type: cassandra               # conf/cassandra/local-cassandra.sh start
  hosts: [127.0.0.1]
  port: 9042
  keyspace: feast_quickstart
  replication: {class: SimpleStrategy, replication_factor: 1}
  read_consistency: LOCAL_ONE
  write_consistency: LOCAL_QUORUM"""

DEFINITIONS = """\
kind: Entity
name: driver_id
value_type: INT64
description: A driver
---
kind: Entity
name: customer_id
value_type: STRING
description: A customer
---
kind: FeatureTable
name: driver_stats
entities: [driver_id]
features:
  - {name: conv_rate, dtype: DOUBLE}
  - {name: acc_rate, dtype: DOUBLE}
  - {name: avg_daily_trips, dtype: INT64}
max_age: 2d
batch_source:
  type: file
  path: data/source/driver_stats
  file_format: parquet
  event_timestamp_column: event_timestamp
  created_timestamp_column: created
  date_partition_column: event_date
description: Hourly driver statistics
---
kind: FeatureTable
name: customer_profile
entities: [customer_id]
features:
  - {name: lifetime_trips, dtype: INT32}
  - {name: avg_rating, dtype: FLOAT}
  - {name: is_premium, dtype: BOOL}
max_age: 30d
batch_source:
  type: file
  path: data/source/customer_profile.parquet
  file_format: parquet
  event_timestamp_column: updated_at
description: Daily customer profiles
"""


def data_end() -> datetime:
    """The sample data ends at the current hour, so that online values are within max_age."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def write_project(folder: Path, online: str, end: datetime) -> Path:
    """Write ``feature_store.yaml``, ``definitions.yaml`` and the sample data; return the config."""
    (folder / "data" / "source").mkdir(parents=True, exist_ok=True)
    config = folder / "feature_store.yaml"
    config.write_text(CONFIG.format(online_store=CASSANDRA if online == "cassandra" else SQLITE))
    (folder / "definitions.yaml").write_text(DEFINITIONS)
    write_sample_data(folder / "data" / "source", end)
    return config


def write_sample_data(folder: Path, end: datetime, *, seed: int = 7) -> None:
    """Driver stats (hourly, partitioned by day) and customer profiles (daily), realistic-ish."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    hours = DAYS * 24
    start_us = int((end - timedelta(days=DAYS)).timestamp() * 1_000_000)
    hour_us = 3_600_000_000
    drivers = np.repeat(np.arange(1001, 1001 + DRIVERS, dtype=np.int64), hours)
    ts = np.tile(start_us + np.arange(hours, dtype=np.int64) * hour_us, DRIVERS)
    ts += rng.integers(0, 60_000_000, ts.size)  # events land within the hour, microseconds kept
    base = np.repeat(rng.beta(5, 3, DRIVERS), hours)
    driver_table = pa.table(
        {
            "driver_id": drivers,
            "conv_rate": np.clip(base + rng.normal(0, 0.05, ts.size), 0, 1),
            "acc_rate": np.clip(base + rng.normal(0.1, 0.05, ts.size), 0, 1),
            "avg_daily_trips": rng.poisson(np.repeat(rng.uniform(5, 40, DRIVERS), hours)),
            "event_timestamp": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "created": pa.array(ts + 300_000_000, pa.timestamp("us", tz="UTC")),
        }
    )
    days = pa.compute.strftime(driver_table["event_timestamp"], format="%Y-%m-%d")
    pq.write_to_dataset(
        driver_table.append_column("event_date", days),
        folder / "driver_stats",
        partition_cols=["event_date"],
        existing_data_behavior="delete_matching",
    )
    customers = np.repeat([f"c{i:05d}" for i in range(CUSTOMERS)], DAYS)
    day_us = np.tile(start_us + np.arange(DAYS, dtype=np.int64) * 24 * hour_us, CUSTOMERS)
    pq.write_table(
        pa.table(
            {
                "customer_id": customers,
                "lifetime_trips": np.cumsum(
                    rng.poisson(2, (CUSTOMERS, DAYS)), axis=1, dtype=np.int32
                ).ravel(),
                "avg_rating": rng.uniform(3, 5, customers.size).astype(np.float32),
                "is_premium": np.repeat(rng.random(CUSTOMERS) < 0.2, DAYS),
                "updated_at": pa.array(day_us, pa.timestamp("us", tz="UTC")),
            }
        ),
        folder / "customer_profile.parquet",
    )


def sample_entity_rows(end: datetime, count: int = ENTITY_ROWS, *, seed: int = 11) -> Any:
    """(driver, customer, timestamp) rows to build a training set for, as an Arrow table."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    span_us = DAYS * 24 * 3_600_000_000
    end_us = int(end.timestamp() * 1_000_000)
    return pa.table(
        {
            "driver_id": rng.integers(1001, 1001 + DRIVERS, count),
            "customer_id": [f"c{i:05d}" for i in rng.integers(0, CUSTOMERS, count)],
            "event_timestamp": pa.array(
                end_us - rng.integers(0, span_us, count), pa.timestamp("us", tz="UTC")
            ),
            "trip_completed": rng.random(count) < 0.7,
        }
    )


class Steps:
    """Prints numbered steps with their duration."""

    def __init__(self, echo: Callable[[str], None]) -> None:
        self.echo = echo
        self.number = 0
        self.started = time.monotonic()

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        """Run one step, then print how long it took."""
        self.number += 1
        self.echo(f"\n[{self.number}] {title}")
        began = time.monotonic()
        yield
        self.echo(f"    done in {time.monotonic() - began:.1f}s")

    def total(self) -> float:
        """Seconds since the first step."""
        return time.monotonic() - self.started


def run_quickstart(folder: Path, *, online: str, echo: Callable[[str], None]) -> dict[str, Any]:
    """Make the project in ``folder`` and run the whole pipeline on it.

    Returns:
        Figures of the run (rows per step), also printed.
    """
    from feast_spark.client import Client

    steps = Steps(echo)
    end = data_end()
    figures: dict[str, Any] = {}
    with steps.step(f"Write the project and sample data to {folder}"):
        config = write_project(folder, online, end)
        echo(f"    {DRIVERS} drivers x {DAYS * 24} hours, {CUSTOMERS} customers x {DAYS} days")
    client = Client(config)
    try:
        with steps.step("Apply definitions.yaml"):
            for applied in client.apply_files([folder / "definitions.yaml"]):
                echo(f"    {applied.action} {applied.kind} '{applied.name}'")
        with steps.step("Ingest both sources into Delta (two Spark jobs at once)"):
            jobs = [client.ingest("driver_stats"), client.ingest("customer_profile")]
            for job in jobs:
                result = job.result()
                echo(
                    f"    {job.id}: {result.get('rows_written')} rows written, "
                    f"{result.get('rows_rejected')} rejected, Delta version "
                    f"{result.get('delta_version')}"
                )
                figures[f"ingested_{job.record.tables[0]}"] = result.get("rows_written")
        with steps.step(
            f"Build a training dataset for {ENTITY_ROWS} (driver, customer, time) rows"
        ):
            retrieval = client.get_historical_features(
                [
                    "driver_stats:*",
                    "customer_profile:lifetime_trips",
                    "customer_profile:is_premium",
                ],
                sample_entity_rows(end),
            )
            dataset = retrieval.to_pandas().sort_values("event_timestamp")
            figures["training_rows"] = len(dataset)
            echo(f"    {len(dataset)} rows -> {retrieval.output_path}")
            echo(_indent(dataset.head(5).to_string(index=False)))
        with steps.step(f"Materialize the last {DAYS} days to the {online} online store"):
            job = client.materialize(
                ["driver_stats", "customer_profile"], end - timedelta(days=DAYS), end
            )
            result = job.result()
            figures["materialized_rows"] = result.get("rows_written")
            echo(f"    {result.get('rows_written')} rows written (latest value per key)")
        with steps.step("Read online features for three drivers"):
            response = client.get_online_features(
                ["driver_stats:conv_rate", "driver_stats:avg_daily_trips"],
                [{"driver_id": 1001}, {"driver_id": 1002}, {"driver_id": 99999}],
            )
            table = response.to_pandas()
            figures["online_rows"] = len(table)
            echo(_indent(table.to_string(index=False)))
    finally:
        client.close()
    echo(f"\nAll steps done in {steps.total():.0f}s. The project is in {folder}; try:")
    echo(f"    cd {folder} && feast-spark feature-tables list && feast-spark jobs list")
    echo(serve_hint(folder))
    echo(
        "Jobs in seconds instead of a JVM start each: keep a warm driver for the project:\n"
        f"    cd {folder} && feast-spark driver start && feast-spark ingest driver_stats"
    )
    return figures


def serve_hint(folder: Path) -> str:
    """The commands to serve the project over HTTP and ask it for features."""
    body = (
        '{"features": ["driver_stats:conv_rate", "driver_stats:avg_daily_trips"], '
        '"entities": {"driver_id": [1001, 1002, 99999]}}'
    )
    return (
        "Serve it over HTTP (Feast's JSON contract), then ask from another terminal:\n"
        f"    cd {folder} && feast-spark serve --port 6566\n"
        f"    curl -s localhost:6566/get-online-features -d '{body}'"
    )


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines())
