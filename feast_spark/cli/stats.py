"""``feast-spark stats TABLE``: the feature statistics of a table's last ingests, side by side."""

from __future__ import annotations

from pathlib import Path

import click

from feast_spark.cli.context import CliContext, common_options, handle_errors, output_option
from feast_spark.cli.output import emit_json, emit_table
from feast_spark.statistics import DEFAULT_NULL_THRESHOLD, drift_flags
from feast_spark.statistics_report import feature_names, figure_rows, header_rows, render_html


@click.command("stats")
@click.argument("table")
@click.option(
    "--versions",
    "-k",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="How many of the latest ingests to show.",
)
@click.option(
    "--null-threshold",
    type=click.FloatRange(0.0, 1.0),
    default=DEFAULT_NULL_THRESHOLD,
    show_default=True,
    help="Flag a feature whose null (or NaN/infinite) fraction moved by more than this.",
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False),
    help="Also write a self-contained HTML report (a plot per feature) to this file.",
)
@click.option(
    "--fail-on-drift", is_flag=True, help="Exit 1 when a feature is flagged (for a scheduler)."
)
@common_options
@output_option
@handle_errors
def stats(
    table: str,
    versions: int,
    null_threshold: float,
    html_path: str | None,
    fail_on_drift: bool,
    output: str,
) -> None:
    """Show the statistics of TABLE's last ingests and flag the features that moved.

    Each ingest records, per feature, count, nulls, min, max, mean and approximate quantiles,
    keyed by the Delta version it committed. A feature is flagged when its null fraction (or
    its share of NaN and infinities) moved by more than --null-threshold, or its median left
    the previous ingest's [q25, q75].
    """
    history = CliContext.current().client().feature_statistics(table, versions=versions)
    flags = drift_flags(history, null_threshold)
    if html_path is not None:
        try:
            Path(html_path).write_text(render_html(table, history, flags), encoding="utf-8")
        except OSError as error:
            reason = error.strerror or " ".join(str(error).split())
            raise click.BadParameter(
                f"cannot write {html_path}: {reason}; give a writable file path",
                param_hint="'--html'",
            ) from None
    if output == "json":
        emit_json(
            {
                "table": table,
                "ingests": [s.to_dict() for s in history],
                "flags": [f.to_dict() for f in flags],
            }
        )
    elif not history:
        click.echo(f"{table}: no ingest recorded feature statistics yet")
    else:
        rows = header_rows(history)
        for name in feature_names(history):
            rows += figure_rows(history, name)
        emit_table(["feature", "figure", *[f"v{s.version}" for s in history]], rows)
        for flag in flags:
            click.echo(
                f"FLAG {flag.feature} v{flag.version} (against v{flag.previous_version}): "
                f"{flag.detail}"
            )
    if fail_on_drift and flags:
        raise click.exceptions.Exit(1)
