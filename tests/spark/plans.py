"""Reading Spark's executed plans in tests: which files a scan really opened."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def scanned_files(frame: DataFrame, path: str) -> int:
    """Files the executed plan of ``frame`` opened under ``path`` (after Delta's data skipping).

    Counts the scans' ``numFiles`` metric, so ``frame`` must have run. The plan is walked node
    by node: with adaptive execution on, a plan with a shuffle hides its scans in query stages,
    so a test that joins runs with it off.
    """
    total = 0
    pending = [frame._jdf.queryExecution().executedPlan()]
    while pending:
        node = pending.pop()
        children = node.children()
        pending += [children.apply(i) for i in range(children.size())]
        if node.nodeName().startswith("Scan") and node.metrics().contains("numFiles"):
            roots = node.relation().location().rootPaths()
            if any(path in str(roots.apply(i)) for i in range(roots.size())):
                total += int(node.metrics().apply("numFiles").value())
    return total
