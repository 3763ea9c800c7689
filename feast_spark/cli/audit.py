"""``feast-spark audit TABLE``: is what the online store serves what the offline table says?

Runs the audit job (:mod:`feast_spark.spark.audit`), waits for it, prints its report and exits
1 when anything differs (0 when consistent), so a scheduler can alert on the exit status. An
audit that cannot run (store unreachable, no offline table) also exits 1, with its error.
"""

from __future__ import annotations

from typing import Any

import click

from feast_spark.audit import KINDS, AuditReport
from feast_spark.cli.context import CliContext, common_options, handle_errors, output_option
from feast_spark.cli.output import emit_json, emit_table
from feast_spark.cli.wait import ProgressPrinter
from feast_spark.errors import ArgumentError, JobFailedError
from feast_spark.launcher import Job

_HINT = {
    "missing_online": "materialize the table (its latest offline rows never reached the store)",
    "online_only": "the online store holds keys the offline table lacks (delete them: "
    "feast-spark online delete)",
    "differs": "materialize again; a stored value newer than offline's means rows were "
    "written online by something else",
}


@click.command("audit")
@click.argument("table")
@click.option(
    "--sample",
    type=click.IntRange(min=1),
    default=None,
    help="Audit this many random offline keys (keys online only are then not looked for).",
)
@click.option(
    "--all",
    "all_keys",
    is_flag=True,
    help="Audit every key, and enumerate the online table for keys offline lacks (default).",
)
@click.option(
    "--examples",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="Examples shown per kind of finding.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Give up waiting after this many seconds (the job keeps running).",
)
@common_options
@output_option
@handle_errors
def audit(
    table: str,
    sample: int | None,
    all_keys: bool,
    examples: int,
    timeout: float | None,
    output: str,
) -> None:
    """Compare TABLE's online rows with its offline latest row per key; exit 1 if any differ.

    The offline latest row is the one materialize would write now: latest event time, then
    created time; rows dated beyond now plus future_event_time_allowance skipped; a key whose
    retention (2 x max_age) has ended is expected to be absent.
    """
    if sample is not None and all_keys:
        raise ArgumentError("--sample", str(sample), "cannot be combined with --all; pick one")
    job = CliContext.current().client().audit(table, sample, examples=examples)
    report = AuditReport.from_dict(_wait(job, timeout)["details"])
    if output == "json":
        emit_json(report.to_dict())
    else:
        print_report(report)
    if not report.consistent:
        raise click.exceptions.Exit(1)


def _wait(job: Job, timeout: float | None) -> dict[str, Any]:
    """Follow ``job`` on stderr to its end; its result record (cancelled on Ctrl-C)."""
    click.echo(f"job {job.id} submitted; following it (Ctrl-C cancels it)", err=True)
    printer = ProgressPrinter(job.id)
    try:
        job.wait(timeout, on_progress=printer)
    except KeyboardInterrupt:
        printer.close()
        state = job.cancel()
        raise JobFailedError(job.id, state.value, "interrupted; the job was cancelled") from None
    printer.close()
    return job.result()


def print_report(report: AuditReport) -> None:
    """The report as a summary table, the differing cells, then examples per kind."""
    scope = "all keys" if report.sample is None else f"a sample of {report.sample} keys"
    click.echo(
        f"audit of {report.table} (online table {report.online_table} in {report.store}) at "
        f"{report.audited_at.isoformat()}: {scope}, {report.keys_checked} checked"
    )
    click.echo("")
    rows: list[tuple[str, object]] = [(kind, report.counts.get(kind, 0)) for kind in KINDS]
    if report.sample is not None:
        rows[KINDS.index("online_only")] = ("online_only", "not looked for (sample)")
    emit_table(["finding", "keys"], rows)
    if report.cells:
        click.echo("")
        emit_table(["cell", "keys differing"], sorted(report.cells.items()))
    shown = [(kind, e) for kind in KINDS for e in report.examples.get(kind, ())]
    if shown:
        click.echo("")
        emit_table(
            ["finding", "key", "cells", "offline", "online"],
            [
                (kind, _brief(e.get("key")), ",".join(e.get("cells") or []) or "-",
                 _brief(e.get("offline")), _brief(e.get("online")))
                for kind, e in shown
            ],
        )  # fmt: skip
    click.echo("")
    if report.consistent:
        click.echo("consistent")
    else:
        for kind in KINDS:
            if report.counts.get(kind, 0):
                click.echo(f"{kind}: {_HINT[kind]}")
        click.echo("INCONSISTENT (exit status 1)")


def _brief(document: Any) -> str:
    """``a=1 b=2`` for a mapping, ``-`` for none."""
    if not document:
        return "-"
    return " ".join(f"{k}={v}" for k, v in document.items())
