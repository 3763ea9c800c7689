"""``table:feature`` references, as requests for training data and online values spell them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from feast_spark.definitions import FeatureTable
from feast_spark.errors import DefinitionError, NotFoundError


@dataclass(frozen=True)
class FeatureRef:
    """A parsed ``table:feature`` reference.

    Attributes:
        table: The feature table.
        feature: The feature.
    """

    table: str
    feature: str

    def __str__(self) -> str:
        return f"{self.table}:{self.feature}"


def split_refs(refs: Iterable[str] | str) -> list[str]:
    """Accept a list of references or one comma-separated string (``t:a,t:b,u:*``)."""
    items = [refs] if isinstance(refs, str) else list(refs)
    return [part.strip() for item in items for part in str(item).split(",") if part.strip()]


def table_names(refs: Iterable[str] | str) -> list[str]:
    """The tables the references name, in first-seen order."""
    names: list[str] = []
    for ref in split_refs(refs):
        table = ref.partition(":")[0]
        if table and table not in names:
            names.append(table)
    return names


def parse_feature_refs(
    refs: Iterable[str] | str,
    tables: Mapping[str, FeatureTable] | None = None,
    *,
    known_tables: Callable[[], Iterable[FeatureTable]] | None = None,
) -> list[FeatureRef]:
    """Parse ``table:feature`` references, expanding ``table:*`` when ``tables`` is given.

    With ``tables``, every reference is also checked against the definitions. With
    ``known_tables``, a bare feature name (``conv_rate``) is answered with the references that
    would name it (``driver_stats:conv_rate``).

    Raises:
        DefinitionError: A reference is not ``table:feature``, repeats another, or none is given.
        NotFoundError: A table or feature is not among ``tables``.
    """
    parsed: list[FeatureRef] = []
    for ref in split_refs(refs):
        table, sep, feature = ref.partition(":")
        if not sep or not table or not feature or ":" in feature:
            raise DefinitionError("feature reference", ref, _syntax_hint(ref, known_tables))
        if tables is not None and table not in tables:
            raise NotFoundError(
                "feature table", table, hint=f"requested as '{ref}'; known: {', '.join(tables)}"
            )
        if feature == "*" and tables is not None:
            parsed.extend(FeatureRef(table, name) for name in tables[table].feature_names)
            continue
        if tables is not None:
            tables[table].feature(feature)  # raises NotFoundError naming the table's features
        parsed.append(FeatureRef(table, feature))
    seen: set[FeatureRef] = set()
    for item in parsed:
        if item in seen:
            raise DefinitionError(
                "feature reference", str(item), "is requested twice; list each feature once"
            )
        seen.add(item)
    if not parsed:
        raise DefinitionError("feature reference", "", "give at least one 'table:feature'")
    return parsed


def _syntax_hint(ref: str, known_tables: Callable[[], Iterable[FeatureTable]] | None) -> str:
    if ":" in ref or not ref:
        return "use 'table:feature' (e.g. 'driver_stats:conv_rate') or 'table:*'"
    known = list(known_tables()) if known_tables else []
    for table in known:
        if table.name == ref:
            first = table.feature_names[0] if table.feature_names else "feature"
            return f"is a feature table: write '{ref}:{first}' for one feature, '{ref}:*' for all"
    owners = [t.name for t in known if ref in t.feature_names]
    if owners:
        return "name its table: " + " or ".join(f"'{owner}:{ref}'" for owner in owners)
    return (
        f"name its table, as 'table:{ref}' (e.g. 'driver_stats:conv_rate'), or use 'table:*' "
        "for all of a table's features"
    )


def features_by_table(refs: Iterable[FeatureRef]) -> dict[str, tuple[str, ...]]:
    """Group parsed references by table, keeping request order."""
    grouped: dict[str, list[str]] = {}
    for ref in refs:
        grouped.setdefault(ref.table, []).append(ref.feature)
    return {table: tuple(features) for table, features in grouped.items()}
