"""``python -m feast_spark.cli``: the ``feast-spark`` command without the console script."""

from feast_spark.cli.main import main

if __name__ == "__main__":  # importing this module (as the import checks do) runs nothing
    main()
