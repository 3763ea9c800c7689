"""Read definitions from YAML files: one or more documents, each with a ``kind``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from feast_spark.definitions.entity import Entity
from feast_spark.definitions.feature_table import FeatureTable
from feast_spark.errors import DefinitionError, DefinitionFileError

_KINDS: dict[str, Callable[[dict[str, Any]], Entity | FeatureTable]] = {
    "Entity": Entity.from_dict,
    "FeatureTable": FeatureTable.from_dict,
}
_SUFFIXES = (".yaml", ".yml")


def definition_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand files and folders (their ``*.yaml``/``*.yml``, sorted) into a list of files.

    Raises:
        DefinitionFileError: A path does not exist, or a folder has no YAML file.
    """
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix in _SUFFIXES and p.is_file())
            if not found:
                raise DefinitionFileError(str(path), None, "folder holds no .yaml or .yml file")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise DefinitionFileError(str(path), None, "no such file or folder")
    return files


def load_definitions(paths: Iterable[str | Path]) -> list[Entity | FeatureTable]:
    """Parse every definition document in ``paths`` (files or folders).

    Relative source paths inside a FeatureTable stay as written; they are resolved by the jobs.

    Raises:
        DefinitionFileError: A YAML syntax error, an unknown ``kind``, an invalid definition, or
            the same object defined twice; the message names the file and line.
    """
    objects: list[Entity | FeatureTable] = []
    seen: dict[tuple[str, str], str] = {}
    for file in definition_files(paths):
        for line, data in _documents(file):
            obj = _build(file, line, data)
            key = (type(obj).__name__, obj.name)
            if key in seen:
                raise DefinitionFileError(
                    str(file), line, f"{key[0]} '{obj.name}' is already defined at {seen[key]}"
                )
            seen[key] = f"{file}:{line}"
            objects.append(obj)
    return objects


def _documents(file: Path) -> Iterable[tuple[int, Any]]:
    loader = yaml.SafeLoader(file.read_text())
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            yield node.start_mark.line + 1, loader.construct_document(node)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise DefinitionFileError(
            str(file), line, f"YAML syntax error: {yaml_problem(error)}"
        ) from None
    finally:
        loader.dispose()


def _build(file: Path, line: int, data: Any) -> Entity | FeatureTable:
    if not isinstance(data, dict):
        raise DefinitionFileError(str(file), line, "a definition must be a mapping with a 'kind'")
    kind = data.get("kind")
    if kind not in _KINDS:
        raise DefinitionFileError(
            str(file), line, f"kind {kind!r} is unknown; use one of {', '.join(_KINDS)}"
        )
    body = {k: v for k, v in data.items() if k != "kind"}
    try:
        return _KINDS[kind](body)
    except DefinitionError as error:
        raise DefinitionFileError(str(file), line, str(error)) from None


def yaml_problem(error: yaml.YAMLError) -> str:
    """One line saying where and what a YAML error is (PyYAML's own text spans lines)."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    context = getattr(error, "context", None)
    context_mark = getattr(error, "context_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    started = (
        f" ({context} at line {context_mark.line + 1})"
        if context and context_mark is not None
        else ""
    )
    return f"{where}{problem}{started}"
