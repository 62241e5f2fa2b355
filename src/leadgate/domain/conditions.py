"""Conditions on event properties and lead attributes, checked when a model is loaded.

A condition spec maps a field to a test::

    {path: {glob: '/pricing*'}}           # one operator
    {form: {in: [contact-sales, rfp]}}     # membership
    {company_size: {gte: 10, lt: 500}}     # several operators: all must hold
    {form: newsletter}                     # a plain value means equals
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from fnmatch import translate
from typing import Any

from leadgate.domain.events import lookup, lookup_path

OPERATORS = (
    "equals",
    "not_equals",
    "in",
    "not_in",
    "glob",
    "matches",
    "contains",
    "gt",
    "gte",
    "lt",
    "lte",
    "exists",
    "in_list",
    "not_in_list",
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: object) -> timedelta:
    """``90s``, ``45m``, ``12h``, ``30d``, ``2w`` -> timedelta; ValueError otherwise."""
    match = _DURATION.match(str(value)) if isinstance(value, str | int) else None
    if not match or isinstance(value, bool):
        raise ValueError(
            f"bad duration {value!r} (use a number and a unit: 90s, 45m, 12h, 30d, 2w)"
        )
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"bad duration {value!r}: must be more than zero")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit in ("w", "d", "h", "m"):
        size = _UNIT_SECONDS[unit]
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def as_number(value: Any) -> float | None:
    """A float for numbers and numeric strings; None for anything else."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _equal(actual: Any, expected: Any) -> bool:
    if actual is None:
        return expected is None
    if isinstance(expected, bool) or isinstance(actual, bool):
        return _as_bool(actual) == expected if isinstance(expected, bool) else actual == expected
    number = as_number(expected)
    if number is not None and not isinstance(expected, str):
        return as_number(actual) == number
    return str(actual) == str(expected)


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "yes", "1", "y"}:
        return True
    if text in {"false", "no", "0", "n", ""}:
        return False
    return None


def _compare(op: str, limit: float) -> Callable[[Any], bool]:
    def test(actual: Any) -> bool:
        number = as_number(actual)
        if number is None:
            return False
        if op == "gt":
            return number > limit
        if op == "gte":
            return number >= limit
        if op == "lt":
            return number < limit
        return number <= limit

    return test


@dataclass(frozen=True, slots=True)
class Condition:
    """One field and one operator; ``describe()`` reads like the model file."""

    field: str
    op: str
    value: Any
    test: Callable[[Any], bool]
    path: tuple[str, ...] = ()  # ``field`` split on dots, once (matching is hot)

    def __post_init__(self) -> None:
        if not self.path:
            object.__setattr__(self, "path", tuple(self.field.split(".")))

    def holds(self, data: Mapping[str, Any]) -> bool:
        if len(self.path) == 1:
            value = data.get(self.field) if type(data) is dict else lookup(data, self.field)
            return self.test(value)
        return self.test(lookup_path(data, self.path))

    def describe(self) -> str:
        if self.op in ("in_list", "not_in_list", "matches"):
            return f"{self.field} {self.op} {self.value}"
        return f"{self.field} {self.op} {self.value!r}"


def _texts(value: Any) -> list[str]:
    if isinstance(value, list | tuple | set | frozenset):
        return [str(v) for v in value]
    return [str(value)]


def build_condition(
    field: str, op: str, value: Any, lists: Mapping[str, frozenset[str]]
) -> Condition:
    """A checked Condition; ValueError says what is wrong with the operator or value."""
    test: Callable[[Any], bool]
    if op == "equals":
        expected = value
        test = lambda a: _equal(a, expected)  # noqa: E731
    elif op == "not_equals":
        expected = value
        test = lambda a: not _equal(a, expected)  # noqa: E731
    elif op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            raise ValueError(f"'{op}' needs a non-empty list, got {value!r}")
        options = list(value)

        def inside(a: Any) -> bool:
            return any(_equal(a, o) for o in options)

        test = inside if op == "in" else (lambda a: a is not None and not inside(a))
    elif op == "glob":
        # fnmatchcase's own regexes, compiled once: one search per value, not per pattern
        globbed = re.compile("|".join(f"(?:{translate(p)})" for p in _texts(value)))
        test = lambda a: a is not None and globbed.match(str(a)) is not None  # noqa: E731
    elif op == "matches":
        try:
            regex = re.compile(str(value))
        except re.error as exc:
            raise ValueError(f"regex {value!r} does not compile: {exc}") from None
        test = lambda a: a is not None and regex.search(str(a)) is not None  # noqa: E731
    elif op == "contains":
        needle = str(value).lower()
        test = lambda a: a is not None and needle in str(a).lower()  # noqa: E731
    elif op in ("gt", "gte", "lt", "lte"):
        limit = as_number(value)
        if limit is None or isinstance(value, str):
            raise ValueError(f"'{op}' needs a number, got {value!r}")
        test = _compare(op, limit)
    elif op == "exists":
        if not isinstance(value, bool):
            raise ValueError(f"'exists' needs true or false, got {value!r}")
        want = value
        test = lambda a: (a is not None and a != "") == want  # noqa: E731
    elif op in ("in_list", "not_in_list"):
        if not isinstance(value, str) or value not in lists:
            known = ", ".join(sorted(lists)) or "none"
            raise ValueError(f"unknown list {value!r} (known lists: {known})")
        members = lists[value]

        def member(a: Any) -> bool:
            return a is not None and str(a).strip().lower() in members

        test = member if op == "in_list" else (lambda a: a is not None and not member(a))
    else:
        raise ValueError(f"unknown operator {op!r} (known: {', '.join(OPERATORS)})")
    return Condition(field=field, op=op, value=value, test=test)


def build_conditions(
    spec: Any, lists: Mapping[str, frozenset[str]]
) -> list[tuple[str, str, Condition | str]]:
    """Conditions from a ``where`` mapping.

    Returns ``(field, op, Condition or error message)`` for each test, so the
    caller can name the line of each bad one.
    """
    out: list[tuple[str, str, Condition | str]] = []
    if not isinstance(spec, Mapping):
        return [("", "", f"'where' must be a mapping of field to test, got {spec!r}")]
    for field, test in spec.items():
        if isinstance(test, Mapping):
            if not test:
                out.append((str(field), "", f"field {field!r} has an empty test"))
            items = list(test.items())
        elif isinstance(test, list):
            items = [("in", test)]
        else:
            items = [("equals", test)]
        for op, value in items:
            try:
                out.append(
                    (str(field), str(op), build_condition(str(field), str(op), value, lists))
                )
            except ValueError as exc:
                out.append((str(field), str(op), f"field {field!r}: {exc}"))
    return out
