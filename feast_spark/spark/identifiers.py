"""Column names as Spark SQL identifiers."""

from __future__ import annotations


def quote(name: str) -> str:
    """A column name as a Spark identifier, so that dots and spaces are taken literally.

    Example: ``quote("a.b")`` is ```a.b``` (one column), not field ``b`` of column ``a``.
    """
    return "`" + name.replace("`", "``") + "`"
