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


class DuplicateKeyError(yaml.YAMLError):
    """A mapping sets the same key twice (YAML would silently keep the last one).

    Attributes:
        key: Dotted path of the key, e.g. ``online_store.port`` or ``features[1].name``.
        value: The second value's text.
        line: 1-based line of the second occurrence.
        first_line: 1-based line of the first.
    """

    def __init__(self, key: str, value: Any, line: int, first_line: int) -> None:
        self.key = key
        self.value = value
        self.line = line
        self.first_line = first_line
        super().__init__(f"line {line}: key '{key}' is set twice (first at line {first_line})")


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses a key repeated in one mapping."""

    def construct_document(self, node: yaml.Node) -> Any:
        """Check ``node`` for repeated keys, then build its Python value."""
        check_unique_keys(node)
        return super().construct_document(node)


def check_unique_keys(node: yaml.Node, path: str = "") -> None:
    """Raise :class:`DuplicateKeyError` for the first key repeated in a mapping of ``node``.

    Merge keys (``<<``) are left to YAML: a key given beside them overrides on purpose.
    """
    stack: list[tuple[yaml.Node, str]] = [(node, path)]
    seen_nodes: set[int] = set()
    while stack:
        current, where = stack.pop()
        if id(current) in seen_nodes:  # aliases share nodes
            continue
        seen_nodes.add(id(current))
        if isinstance(current, yaml.MappingNode):
            first: dict[Any, int] = {}
            for key_node, value_node in current.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                dotted = f"{where}.{key}" if where else str(key)
                if key is not None:
                    line = key_node.start_mark.line + 1
                    if key in first:
                        value = (
                            value_node.value if isinstance(value_node, yaml.ScalarNode) else None
                        )
                        raise DuplicateKeyError(dotted, value, line, first[key])
                    first[key] = line
                stack.append((value_node, dotted))
        elif isinstance(current, yaml.SequenceNode):
            stack.extend((item, f"{where}[{i}]") for i, item in enumerate(current.value))


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` that refuses duplicate keys (:class:`DuplicateKeyError`)."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader subclass


def _documents(file: Path) -> Iterable[tuple[int, Any]]:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DefinitionFileError(str(file), None, f"cannot be read: {error}") from None
    loader = UniqueKeyLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            yield node.start_mark.line + 1, loader.construct_document(node)
    except DuplicateKeyError as error:
        raise DefinitionFileError(
            str(file),
            error.line,
            f"key '{error.key}' is set twice (first at line {error.first_line}); keep one",
        ) from None
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
