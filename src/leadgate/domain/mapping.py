"""Mapping specs: how a source's columns become lead attributes, outcomes and events.

A mapping is written in YAML (see docs/mapping.md). ``parse_mapping`` validates it
and names the file, line and key of every problem; ``map_lead_row`` and
``map_event_row`` (leadgate.domain.rows) apply it to one row (a dict of
column -> value). No file I/O.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from leadgate.domain.events import canonical_event_type, parse_timestamp
from leadgate.domain.yamldoc import compose, syntax_problem

CAST_TYPES = ("int", "float", "bool", "str")
DEFAULT_LEAD_ID_COLUMNS = ("lead_id", "id")
DEFAULT_MAX_COUNT = 1000
_TYPE_CACHE_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class RowError:
    """A row that could not be read: where it is and what is wrong with it."""

    source: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}"


class InvalidRow(Exception):
    """Raised by the row functions; the reader turns it into a RowError."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class MappingIssue:
    line: int
    key: str
    message: str


class MappingError(Exception):
    """A mapping file that does not validate; lists every problem found."""

    def __init__(self, source: str, issues: list[MappingIssue]) -> None:
        self.source = source
        self.issues = issues
        super().__init__(
            "\n".join(
                f"{source}:{i.line}: {i.key}: {i.message}"
                if i.key
                else f"{source}:{i.line}: {i.message}"
                for i in issues
            )
        )


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """Where one value comes from and how it is cleaned: null values, value map, cast."""

    column: str
    type: str | None = None
    map: Mapping[str, Any] | None = None
    null_values: frozenset[str] = frozenset()
    strict: bool = False


@dataclass(frozen=True, slots=True)
class EventSpec:
    """Events derived from the columns of an attribute-only export."""

    name: str
    type: str | None = None
    type_from: str | None = None
    types: Mapping[str, str] = field(default_factory=dict)
    skip: frozenset[str] = frozenset()
    timestamp: str | None = None
    at: datetime | None = None
    count: str | None = None
    max_count: int = DEFAULT_MAX_COUNT
    properties: Mapping[str, str] = field(default_factory=dict)

    def columns(self) -> list[str]:
        cols = [self.type_from, self.timestamp, self.count, *self.properties.values()]
        return [c for c in cols if c is not None]


@dataclass(frozen=True, slots=True)
class EventFields:
    """Which fields of an event file hold the id, lead id, type, timestamp and properties."""

    id: tuple[str, ...] = ("id", "message_id", "messageId")
    lead_id: str = "lead_id"
    type: str = "type"
    timestamp: str = "timestamp"
    properties: str = "properties"
    names: frozenset[str] = field(init=False, repr=False, compare=False)
    dotted: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = frozenset({*self.id, self.lead_id, self.type, self.timestamp, self.properties})
        object.__setattr__(self, "names", names)
        dotted = any("." in n for n in (self.lead_id, self.type, self.timestamp))
        object.__setattr__(self, "dotted", dotted)


@dataclass(frozen=True, slots=True)
class SourceMapping:
    """A parsed, validated mapping. The default maps ``lead_id``/``id`` and keeps the rest."""

    source: str = "<default>"
    lead_id: str | None = None
    attributes: Mapping[str, ColumnSpec] = field(default_factory=dict)
    keep_other_columns: bool = True
    null_values: frozenset[str] = frozenset({""})
    outcome: ColumnSpec | None = None
    post_outcome: tuple[str, ...] = ()
    events: tuple[EventSpec, ...] = ()
    event_fields: EventFields = field(default_factory=EventFields)
    event_types: Mapping[str, str] = field(default_factory=dict)
    used: frozenset[str] = field(init=False, repr=False, compare=False)
    # Event files repeat a few names millions of times: remember their types.
    _type_cache: dict[str, str] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        """``used``: columns the mapping consumes, never copied as 'other columns'."""
        cols: set[str] = set(self.post_outcome)
        cols.update(s.column for s in self.attributes.values())
        cols.update(c for e in self.events for c in e.columns())
        if self.lead_id:
            cols.add(self.lead_id)
        if self.outcome:
            cols.add(self.outcome.column)
        object.__setattr__(self, "used", frozenset(cols))

    def event_type(self, name: str) -> str:
        """Canonical type for a source event name, through this mapping's alias table."""
        known = self._type_cache.get(name)
        if known is not None:
            return known
        canonical = canonical_event_type(name)
        found = self.event_types.get(canonical, canonical)
        if len(self._type_cache) < _TYPE_CACHE_SIZE:
            self._type_cache[name] = found
        return found


DEFAULT_MAPPING = SourceMapping()


# ---------------------------------------------------------------------------
# Parsing and validation

_TOP_KEYS = (
    "description",
    "lead_id",
    "outcome",
    "post_outcome",
    "null_values",
    "attributes",
    "other_columns",
    "events",
    "event_fields",
    "event_types",
)
_COLUMN_KEYS = ("column", "type", "map", "null_values", "strict")
_EVENT_KEYS = (
    "name",
    "type",
    "type_from",
    "types",
    "skip",
    "timestamp",
    "at",
    "count",
    "max_count",
    "properties",
)
_FIELD_KEYS = ("id", "lead_id", "type", "timestamp", "properties")
_NULL_TAG = "tag:yaml.org,2002:null"


class _Checker:
    """Walks the composed YAML tree, collecting issues with line numbers."""

    def __init__(self) -> None:
        self.issues: list[MappingIssue] = []
        self.where: dict[str, Node] = {}
        self._constructor = SafeConstructor()

    def fail(self, node: Node, key: str, message: str) -> None:
        self.issues.append(MappingIssue(node.start_mark.line + 1, key, message))

    def items(
        self, node: Node, key: str, allowed: tuple[str, ...] | None
    ) -> Iterator[tuple[str, Node, Node]]:
        if not isinstance(node, MappingNode):
            self.fail(node, key, "expected a mapping of key: value")
            return
        seen: set[str] = set()
        for knode, vnode in node.value:
            name = knode.value if isinstance(knode, ScalarNode) else ""
            path = f"{key}.{name}" if key else name
            if not isinstance(knode, ScalarNode) or name == "":
                self.fail(knode, key, "keys must be plain text")
            elif name in seen:
                self.fail(knode, path, "duplicate key")
            elif allowed is not None and name not in allowed:
                close = difflib.get_close_matches(name, allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.fail(knode, path, f"unknown key{hint}; expected one of {', '.join(allowed)}")
            else:
                seen.add(name)
                yield name, knode, vnode

    def text(self, node: Node, key: str, what: str = "a column name") -> str | None:
        if not isinstance(node, ScalarNode) or node.tag == _NULL_TAG:
            self.fail(node, key, f"expected {what}")
            return None
        return str(node.value)

    def texts(self, node: Node, key: str) -> list[str]:
        """A list of raw strings; a single scalar counts as a list of one."""
        if isinstance(node, ScalarNode):
            return [str(node.value)]
        if not isinstance(node, SequenceNode):
            self.fail(node, key, "expected a list of values")
            return []
        out = []
        for i, item in enumerate(node.value):
            value = self.text(item, f"{key}[{i}]", "a plain value")
            if value is not None:
                out.append(value)
        return out

    def value(self, node: Node) -> Any:
        return self._constructor.construct_object(node, deep=True)


def parse_mapping(text: str, source: str = "<mapping>") -> SourceMapping:
    """Parse and validate a YAML mapping; raises MappingError listing every problem."""
    try:
        root = compose(text)
    except yaml.YAMLError as exc:
        line, problem = syntax_problem(exc)
        raise MappingError(source, [MappingIssue(line, "", f"invalid YAML: {problem}")]) from None
    if root is None:
        raise MappingError(source, [MappingIssue(1, "", "empty mapping file")])
    check = _Checker()
    out: dict[str, Any] = {"source": source}
    nodes: dict[str, Node] = {}
    for name, _knode, vnode in check.items(root, "", _TOP_KEYS):
        nodes[name] = vnode
    if "lead_id" in nodes:
        out["lead_id"] = check.text(nodes["lead_id"], "lead_id")
    if "null_values" in nodes:
        out["null_values"] = frozenset(check.texts(nodes["null_values"], "null_values")) | {""}
    if "post_outcome" in nodes:
        out["post_outcome"] = tuple(check.texts(nodes["post_outcome"], "post_outcome"))
    if "outcome" in nodes:
        out["outcome"] = _column_spec(check, nodes["outcome"], "outcome")
    if "attributes" in nodes:
        attrs: dict[str, ColumnSpec] = {}
        for name, _k, vnode in check.items(nodes["attributes"], "attributes", None):
            spec = _column_spec(check, vnode, f"attributes.{name}")
            if spec is not None:
                attrs[name] = spec
        out["attributes"] = attrs
        out["keep_other_columns"] = False
    if "other_columns" in nodes:
        choice = check.text(nodes["other_columns"], "other_columns", "keep or drop")
        if choice not in (None, "keep", "drop"):
            check.fail(
                nodes["other_columns"], "other_columns", f"expected keep or drop, not {choice!r}"
            )
        out["keep_other_columns"] = choice == "keep"
    if "events" in nodes:
        out["events"] = _event_specs(check, nodes["events"])
    if "event_fields" in nodes:
        out["event_fields"] = _event_fields(check, nodes["event_fields"])
    if "event_types" in nodes:
        table = {}
        for name, _k, vnode in check.items(nodes["event_types"], "event_types", None):
            target = check.text(vnode, f"event_types.{name}", "an event type")
            if target is not None:
                table[canonical_event_type(name)] = canonical_event_type(target)
        out["event_types"] = table
    if "description" in nodes:
        check.text(nodes["description"], "description", "text")
    mapping = SourceMapping(**out)
    _check_leaks(check, mapping, nodes)
    if check.issues:
        raise MappingError(source, sorted(check.issues, key=lambda i: i.line))
    return mapping


def _column_spec(check: _Checker, node: Node, key: str) -> ColumnSpec | None:
    check.where[key] = node
    if isinstance(node, ScalarNode):
        column = check.text(node, key)
        return ColumnSpec(column) if column is not None else None
    parts: dict[str, Node] = {n: v for n, _k, v in check.items(node, key, _COLUMN_KEYS)}
    if "column" not in parts:
        check.fail(node, key, "missing 'column'")
        return None
    column = check.text(parts["column"], f"{key}.column")
    cast = None
    if "type" in parts:
        cast = check.text(parts["type"], f"{key}.type", "a type")
        if cast is not None and cast not in CAST_TYPES:
            check.fail(
                parts["type"],
                f"{key}.type",
                f"unknown type {cast!r}; expected one of " + ", ".join(CAST_TYPES),
            )
    value_map: dict[str, Any] | None = None
    if "map" in parts:
        value_map = {}
        for raw, _k, vnode in check.items(parts["map"], f"{key}.map", None):
            value_map[raw] = check.value(vnode)
    nulls = (
        frozenset(check.texts(parts["null_values"], f"{key}.null_values"))
        if ("null_values" in parts)
        else frozenset()
    )
    strict = False
    if "strict" in parts:
        strict_value = check.value(parts["strict"])
        if not isinstance(strict_value, bool):
            check.fail(parts["strict"], f"{key}.strict", "expected true or false")
        elif strict_value and value_map is None:
            check.fail(parts["strict"], f"{key}.strict", "strict needs a 'map'")
        strict = strict_value is True
    if column is None:
        return None
    return ColumnSpec(column, cast, value_map, nulls, strict)


def _event_specs(check: _Checker, node: Node) -> tuple[EventSpec, ...]:
    if not isinstance(node, SequenceNode):
        check.fail(node, "events", "expected a list of event definitions")
        return ()
    specs: list[EventSpec] = []
    names: set[str] = set()
    for i, item in enumerate(node.value):
        key = f"events[{i}]"
        check.where[key] = item
        parts = {n: v for n, _k, v in check.items(item, key, _EVENT_KEYS)}
        kw: dict[str, Any] = {}
        for name in ("type", "type_from", "timestamp", "count"):
            if name in parts:
                kw[name] = check.text(parts[name], f"{key}.{name}")
        if ("type" in parts) == ("type_from" in parts):
            check.fail(item, key, "give exactly one of 'type' or 'type_from'")
        if ("timestamp" in parts) == ("at" in parts):
            check.fail(item, key, "give exactly one of 'timestamp' (a column) or 'at'")
        if kw.get("type"):
            kw["type"] = canonical_event_type(kw["type"])
        if "at" in parts:
            raw = check.text(parts["at"], f"{key}.at", "an ISO 8601 timestamp")
            try:
                kw["at"] = parse_timestamp(raw) if raw is not None else None
            except ValueError as exc:
                check.fail(parts["at"], f"{key}.at", str(exc))
        if "types" in parts:
            types = {}
            for raw, _k, vnode in check.items(parts["types"], f"{key}.types", None):
                target = check.text(vnode, f"{key}.types.{raw}", "an event type")
                if target is not None:
                    types[raw] = canonical_event_type(target)
            kw["types"] = types
        if "skip" in parts:
            kw["skip"] = frozenset(check.texts(parts["skip"], f"{key}.skip"))
        if "max_count" in parts:
            limit = check.value(parts["max_count"])
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                check.fail(parts["max_count"], f"{key}.max_count", "expected a positive integer")
            else:
                kw["max_count"] = limit
        if "properties" in parts:
            props = {}
            for prop, _k, vnode in check.items(parts["properties"], f"{key}.properties", None):
                column = check.text(vnode, f"{key}.properties.{prop}")
                if column is not None:
                    props[prop] = column
            kw["properties"] = props
        name = kw.get("type") or canonical_event_type(kw.get("type_from") or f"event{i}")
        if "name" in parts:
            name = check.text(parts["name"], f"{key}.name", "a name") or name
        if name in names:
            check.fail(item, key, f"duplicate event name {name!r}; give each a distinct 'name'")
        names.add(name)
        specs.append(EventSpec(name=name, **kw))
    return tuple(specs)


def _event_fields(check: _Checker, node: Node) -> EventFields:
    kw: dict[str, Any] = {}
    for name, _k, vnode in check.items(node, "event_fields", _FIELD_KEYS):
        column = check.text(vnode, f"event_fields.{name}")
        if column is not None:
            kw[name] = (column,) if name == "id" else column
    return EventFields(**kw)


def _check_leaks(check: _Checker, mapping: SourceMapping, nodes: dict[str, Node]) -> None:
    """Post-outcome and outcome columns must never feed attributes or events."""
    banned = dict.fromkeys(mapping.post_outcome, "post_outcome")
    if mapping.outcome is not None:
        banned[mapping.outcome.column] = "the outcome"
    if mapping.lead_id in banned:
        check.fail(
            nodes["lead_id"], "lead_id", f"column {mapping.lead_id!r} is {banned[mapping.lead_id]}"
        )
    for name, spec in mapping.attributes.items():
        if spec.column in banned:
            check.fail(
                nodes["attributes"],
                f"attributes.{name}",
                f"column {spec.column!r} is {banned[spec.column]} and must not be scored",
            )
    for i, event in enumerate(mapping.events):
        for column in event.columns():
            if column in banned:
                check.fail(
                    nodes["events"],
                    f"events[{i}]",
                    f"column {column!r} is {banned[column]} and must not be scored",
                )
