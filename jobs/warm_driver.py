"""Warm driver: a long-lived local driver that runs a project's small jobs in one JVM.

    feast-spark driver start      # launches this file through the launcher, like any job

It serves until ``feast-spark driver stop`` (or ``jobs cancel``): see
feast_spark.spark.warm_driver for what it does and feast_spark.launcher.warm for which jobs the
launcher sends it.
"""

from __future__ import annotations

import sys

from feast_spark.spark.warm_driver import main

if __name__ == "__main__":
    sys.exit(main())
