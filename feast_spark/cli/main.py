"""The ``feast-spark`` group: the root command with every command module's commands added.

The command modules define their commands with ``@click.command``/``@click.group`` and import
only :mod:`~feast_spark.cli.context` and the helpers; none imports this module (only
:mod:`feast_spark.cli` does), so the CLI has no import loop.
"""

from __future__ import annotations

import sys

import click

from feast_spark.cli.audit import audit
from feast_spark.cli.context import common_options
from feast_spark.cli.datasets import datasets
from feast_spark.cli.definitions import apply, entities, feature_tables, projects
from feast_spark.cli.driver import driver
from feast_spark.cli.jobs import jobs
from feast_spark.cli.offline import offline
from feast_spark.cli.online import online
from feast_spark.cli.pipeline import (
    get_historical_features,
    get_online_features,
    ingest,
    materialize,
    materialize_incremental,
)
from feast_spark.cli.push import push
from feast_spark.cli.quickstart import quickstart
from feast_spark.cli.serve import serve
from feast_spark.cli.stats import stats
from feast_spark.cli.stream import stream


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@common_options
@click.version_option(package_name="feast-spark")
def cli() -> None:
    """feast-spark: a feature store on Apache Spark, Delta Lake and Apache Cassandra."""


for _command in (
    # definitions
    apply,
    entities,
    feature_tables,
    projects,
    # pipeline
    ingest,
    get_historical_features,
    materialize,
    materialize_incremental,
    get_online_features,
    datasets,
    stream,
    push,
    # operations
    audit,
    offline,
    stats,
    online,
    jobs,
    driver,
    serve,
    quickstart,
):
    cli.add_command(_command)


def main() -> None:
    """Console-script entry point."""
    sys.exit(cli.main(prog_name="feast-spark", standalone_mode=True))
