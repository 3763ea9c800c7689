"""The ``feast-spark`` command (console script ``feast_spark.cli:main``).

- :mod:`.context`: the context every command shares (``CliContext``, with typed access to the
  client and the launcher), the common options and the mapping of errors to exit codes.
- :mod:`.types`, :mod:`.output`, :mod:`.wait`: option types, printing, following a job.
- one module per command group: :mod:`.definitions` (apply, entities, feature-tables,
  projects), :mod:`.pipeline` (ingest, retrieval, materialization, online reads),
  :mod:`.offline`, :mod:`.online`, :mod:`.jobs`, :mod:`.serve`, :mod:`.quickstart`.
- :mod:`.main`: the root group, assembled from the modules above.
"""

from feast_spark.cli.main import cli, main

__all__ = ["cli", "main"]
