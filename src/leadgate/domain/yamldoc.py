"""YAML documents that remember where each value came from, for errors that name a line."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple[str | int, ...]


class SpecError(ValueError):
    """One or more problems in a specification file, each with file and line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass
class YamlDoc:
    """Plain Python data from a YAML text, plus the line of every mapping key and item."""

    data: Any
    source: str
    lines: dict[Path, int] = field(default_factory=dict)

    def line(self, path: Path) -> int:
        """The line of ``path``, or of its nearest ancestor that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), 1)

    def where(self, path: Path) -> str:
        return f"{self.source}:{self.line(path)}"


def syntax_problem(exc: yaml.YAMLError) -> tuple[int, str]:
    """The line and the words of a YAML syntax error."""
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else 1
    return line, getattr(exc, "problem", None) or str(exc)


TOO_DEEP = "the document is nested too deeply to read"


def compose(text: str) -> yaml.Node | None:
    """``yaml.compose`` with the safe loader; nesting too deep for the parser (it
    recurses) is a YAMLError like any other problem of the text."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise yaml.YAMLError(TOO_DEEP) from None


def parse_yaml(text: str, source: str) -> YamlDoc:
    """Parse one YAML document; syntax errors become a SpecError naming the line."""
    try:
        node = compose(text)
    except yaml.YAMLError as exc:
        line, problem = syntax_problem(exc)
        raise SpecError([f"{source}:{line}: YAML syntax error: {problem}"]) from None
    doc = YamlDoc(data=None, source=source)
    if node is None:
        doc.data = {}
        return doc
    try:
        doc.data = _convert(node, (), doc.lines, source)
    except RecursionError:
        raise SpecError([f"{source}:1: YAML syntax error: {TOO_DEEP}"]) from None
    return doc


def _convert(node: yaml.Node, path: Path, lines: dict[Path, int], source: str) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node, source)
            if not isinstance(key, Hashable):
                line = key_node.start_mark.line + 1
                raise SpecError([f"{source}:{line}: a key must be a plain value, got {key!r}"])
            child = (*path, str(key))
            if key in out:
                lines[child] = key_node.start_mark.line + 1
                line = key_node.start_mark.line + 1
                raise SpecError([f"{source}:{line}: duplicate key {key!r}"])
            out[key] = _convert(value_node, child, lines, source)
            lines[child] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*path, i), lines, source) for i, item in enumerate(node.value)]
    return _scalar(node, source)


def _scalar(node: yaml.Node, source: str) -> Any:
    """The value of a node; values YAML cannot build (``2024-02-30``) name their line."""
    try:
        return yaml.SafeLoader("").construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, OverflowError) as exc:
        line = node.start_mark.line + 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError([f"{source}:{line}: bad value: {problem}"]) from None
