"""Rules for names that become Delta column names, CQL identifiers and file path segments."""

from __future__ import annotations

import re

from feast_spark.columns import RESERVED
from feast_spark.errors import DefinitionError

MAX_NAME_LENGTH = 48
_NAME = re.compile(r"[a-z_][a-z0-9_]*")

#: Columns the stores add to every feature table; no entity or feature may use them.
RESERVED_COLUMNS = frozenset(RESERVED)


def check_name(kind: str, name: object) -> str:
    """Return ``name`` if it is a safe identifier for Delta, CQL and paths, else raise.

    Args:
        kind: What is being named (``entity``, ``feature``, ``feature table``, ``project``).
        name: The proposed name.

    Raises:
        DefinitionError: The name is not a string matching ``[a-z_][a-z0-9_]*`` of at most 48
            characters.

    """
    if not isinstance(name, str) or not name:
        raise DefinitionError(kind, str(name), "a name must be a non-empty string")
    if len(name) > MAX_NAME_LENGTH:
        raise DefinitionError(
            kind,
            name,
            f"name is {len(name)} characters long; at most {MAX_NAME_LENGTH} are allowed",
        )
    if not _NAME.fullmatch(name):
        raise DefinitionError(
            kind,
            name,
            "name must match [a-z_][a-z0-9_]* (lower-case letters, digits and underscores, "
            "not starting with a digit) so that it is a valid Delta column and CQL identifier",
        )
    return name


def check_not_reserved(kind: str, name: str) -> None:
    """Raise if ``name`` is a column the stores add themselves."""
    if name in RESERVED_COLUMNS:
        raise DefinitionError(
            kind,
            name,
            f"'{name}' is reserved for a column the store adds "
            f"({', '.join(sorted(RESERVED_COLUMNS))}); choose another name",
        )
