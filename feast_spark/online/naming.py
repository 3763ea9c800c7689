"""Names of online tables and how statements quote them, shared by every online store.

Projects share one keyspace (or SQLite file), so a name must say which project and table it
holds, and two different ``(project, table)`` pairs must never get the same name. The plain form
``<project>__<table>`` is unambiguous only when the project holds no ``__`` and does not end in
``_``: then the first ``__`` of the name is the separator (``p`` + ``x__t`` -> ``p__x__t``). A
project such as ``p__x`` (or ``p_``) would spell the same string as another project's table
(``p__x`` + ``t`` -> ``p__x__t`` too), so such projects get a length-prefixed form,
``<len(project)><project>__<table>`` (``4p__x__t``): it starts with a digit, which no plain name
does (a project starts with a letter or ``_``), and the length says where the project ends.

Names longer than Cassandra's 48 characters become their first 35 characters, ``_`` and 12 hex
digits of the SHA-1 of the full name (which is itself unambiguous), so they stay distinct up to
a 48-bit hash collision.

Compatibility: every name of the old scheme that could not collide (the project has no ``__``
and does not end in ``_``) is unchanged, shortened form included. Tables of the other projects
written before move to the length-prefixed name: materialize them again (their old table may
hold another project's rows too; drop it once no project maps to it).
"""

from __future__ import annotations

import hashlib

#: Cassandra's limit on keyspace and table names.
MAX_TABLE_NAME_LENGTH = 48
_KEPT_PREFIX = MAX_TABLE_NAME_LENGTH - 13  # then "_" and 12 hex digits


def online_table_name(project: str, table: str) -> str:
    """The online table of ``table`` in ``project`` (see the module docstring).

    ``<project>__<table>`` when the project has no ``__`` and does not end in ``_``, else
    ``<len(project)><project>__<table>``; either shortened with a hash beyond 48 characters.
    Distinct pairs get distinct names; the result is a valid Cassandra and SQLite table name
    (word characters; quoted in statements).
    """
    if is_plain_project(project):
        name = f"{project}__{table}"
    else:
        name = f"{len(project)}{project}__{table}"
    if len(name) <= MAX_TABLE_NAME_LENGTH:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:12]
    return f"{name[:_KEPT_PREFIX]}_{digest}"


def is_plain_project(project: str) -> bool:
    """Whether ``project``'s tables use the plain ``<project>__<table>`` form."""
    return "__" not in project and not project.endswith("_")


def quote_identifier(identifier: str) -> str:
    """``identifier`` as a quoted SQLite or CQL identifier (``"name"``, inner quotes doubled).

    Both languages quote identifiers the same way; Spark's backticks are
    :func:`feast_spark.spark.identifiers.quote`.
    """
    return '"' + identifier.replace('"', '""') + '"'
