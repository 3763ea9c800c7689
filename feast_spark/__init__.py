"""feast-spark: a feature store on Apache Spark, Delta Lake and Apache Cassandra.

Importing this package imports neither pyspark nor the Cassandra driver: the launcher and the CLI
run where Spark is not installed, and heavy imports happen inside the functions that need them.
"""

__version__ = "0.1.0"
