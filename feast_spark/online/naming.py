"""Names of online tables, shared by every online store."""

from __future__ import annotations

import hashlib

#: Cassandra's limit on keyspace and table names.
MAX_TABLE_NAME_LENGTH = 48


def online_table_name(project: str, table: str) -> str:
    """``<project>__<table>``, or a stable shortened form when that exceeds 48 characters.

    Projects share one keyspace (or SQLite file), so the project is part of the name.
    """
    name = f"{project}__{table}"
    if len(name) <= MAX_TABLE_NAME_LENGTH:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:12]
    return f"{name[: MAX_TABLE_NAME_LENGTH - 13]}_{digest}"
