"""``feast-spark datasets ...``: the records of training datasets, and rebuilding one.

Every ``get-historical-features`` job records its dataset (:mod:`feast_spark.datasets`):

    feast-spark datasets list [--output json]
    feast-spark datasets describe ID [--output json]
    feast-spark datasets rebuild ID --output-path URI [--format parquet|delta] [--no-wait]
    feast-spark datasets delete ID
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from feast_spark.cli.context import CliContext, common_options, handle_errors, output_option
from feast_spark.cli.output import emit_json, emit_table
from feast_spark.cli.wait import run_or_print, wait_options

if TYPE_CHECKING:
    from feast_spark.datasets import DatasetRecord


@click.group("datasets")
@common_options
def datasets() -> None:
    """List, describe and rebuild training datasets (what each read, at which versions)."""


@datasets.command("list")
@common_options
@output_option
@handle_errors
def datasets_list(output: str) -> None:
    """List the project's training datasets, newest first."""
    client = CliContext.current().client()
    records = client.list_datasets()
    for damaged in client.datasets.damaged():  # left out of the list: say so
        click.echo(f"warning: {damaged}", err=True)
    if output == "json":
        emit_json([r.to_dict() for r in records])
        return
    emit_table(
        ["id", "created", "rows", "tables@version", "entities", "output"],
        [
            (
                r.dataset_id,
                r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                r.rows,
                ",".join(f"{t}@{v}" for t, v in sorted(r.table_versions.items())) or "-",
                _entities(r),
                r.output_path,
            )
            for r in records
        ],
    )


@datasets.command("describe")
@click.argument("dataset_id")
@common_options
@output_option
@handle_errors
def datasets_describe(dataset_id: str, output: str) -> None:
    """Show one dataset's record: references, versions read, entity files, definitions."""
    document = CliContext.current().client().get_dataset(dataset_id).to_dict()
    if output == "json":
        emit_json(document)
        return
    import yaml

    click.echo(yaml.safe_dump(document, sort_keys=False, width=100).rstrip())


@datasets.command("rebuild")
@click.argument("dataset_id")
@click.option(
    "--output-path",
    "--output-uri",
    "output_path",
    required=True,
    help="Where to write the rebuilt dataset (a path or URI; it must not exist yet).",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["parquet", "delta"]),
    help="Output format (default: the recorded one).",
)
@wait_options
@common_options
@output_option
@handle_errors
def datasets_rebuild(
    dataset_id: str,
    output_path: str,
    output_format: str | None,
    wait: bool,
    timeout: float | None,
    output: str,
) -> None:
    """Build DATASET_ID again, row for row, from the versions it recorded (Delta time travel)."""
    job = (
        CliContext.current()
        .client()
        .rebuild_dataset(dataset_id, output_path, output_format=output_format)
    )
    run_or_print(job.job, wait, timeout=timeout, output=output)


@datasets.command("delete")
@click.argument("dataset_id")
@common_options
@handle_errors
def datasets_delete(dataset_id: str) -> None:
    """Forget a dataset's record (its files stay; vacuum may then remove what it read)."""
    CliContext.current().client().delete_dataset(dataset_id)
    click.echo(f"dataset {dataset_id} deleted (its files are untouched)")


def _entities(record: DatasetRecord) -> str:
    source = record.entity_source
    if source.kind == "delta":
        version = "?" if source.delta_version is None else source.delta_version
        return f"delta@{version}"
    return f"{len(source.files)} file(s)"
