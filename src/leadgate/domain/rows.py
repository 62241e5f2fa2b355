"""Applying a SourceMapping to one row (a dict of column -> value). Pure; no I/O.

Row functions raise InvalidRow with a reason naming the column and the problem;
the file readers turn that into a RowError with the source and line.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from leadgate.domain.events import (
    PROPERTY_ALIASES,
    Event,
    Lead,
    lookup,
    parse_timestamp,
)
from leadgate.domain.mapping import (
    DEFAULT_LEAD_ID_COLUMNS,
    DEFAULT_MAPPING,
    ColumnSpec,
    EventFields,
    EventSpec,
    InvalidRow,
    SourceMapping,
)

_TRUE = frozenset({"true", "yes", "y", "t", "1"})
_FALSE = frozenset({"false", "no", "n", "f", "0"})


@dataclass(frozen=True, slots=True)
class LeadRow:
    """One lead read from a row, the events derived from its columns, and its outcome.

    ``outcome`` is the value of the mapping's ``outcome`` column (None when the
    mapping has none); it is never part of ``lead.attributes``.
    """

    lead: Lead
    events: tuple[Event, ...] = ()
    outcome: Any = None
    line: int = 0


def read_timestamp(text: str) -> datetime:
    """parse_timestamp, faster for the usual UTC form (``2024-05-01T09:30:00.123Z``).

    Raises ValueError when invalid, also for dates that leave the calendar once
    moved to UTC.
    """
    n = len(text)
    if (
        (n == 24 or n == 20 or n == 27)
        and text[-1] == "Z"
        and text[10] == "T"
        and text[4] == "-" == text[7]
        and text[13] == ":" == text[16]
        and (n == 20 or text[19] == ".")
    ):
        # Fixed separators and length: fromisoformat accepts only ASCII digits in
        # the other places, so it reads exactly what parse_timestamp reads.
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            pass
    return parse_timestamp(text)


def stable_id(data: Any) -> str:
    """A short, stable hash of JSON-able data, used when a source gives no message id."""
    raw = orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return "h:" + hashlib.blake2b(raw, digest_size=12).hexdigest()


def canonical_properties(props: Mapping[str, Any]) -> dict[str, Any]:
    """Properties plus canonical aliases (campaign_id -> campaign); originals are kept.

    An existing canonical property is never overwritten; when several aliases
    name the same canonical property, the first in PROPERTY_ALIASES wins.
    """
    out = dict(props)
    for alias, name in PROPERTY_ALIASES.items():
        if alias in props and name not in out:
            out[name] = props[alias]
    return out


def column_value(row: Mapping[str, Any], column: str) -> Any:
    """The value of ``column``; for nested JSON rows a dotted path also works."""
    return row[column] if column in row else lookup(row, column)


def _is_null(value: Any, nulls: frozenset[str]) -> bool:
    return value is None or (isinstance(value, str) and value.strip() in nulls)


def _map_key(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def cast_value(value: Any, cast: str) -> Any:
    """Cast to int, float, bool or str; raises ValueError saying what the value is not."""
    kind = type(value)
    if kind is str and cast == "int":
        try:
            return int(value)
        except ValueError:
            pass
    if cast == "str":
        if isinstance(value, dict | list):
            raise ValueError(f"not a plain value: {_short(value)}")
        return value if isinstance(value, str) else _map_key(value)
    if cast == "bool":
        if isinstance(value, bool):
            return value
        text = value.strip().lower() if isinstance(value, str) else _map_key(value)
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ValueError(f"not a bool: {_short(value)}")
    wanted = "an int" if cast == "int" else "a number"
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"not {wanted}: {_short(value)}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"not {wanted}: {_short(value)}") from None
    if not math.isfinite(number):
        raise ValueError(f"not a finite number: {_short(value)}")
    if cast == "float":
        return number
    if number != int(number):
        raise ValueError(f"not an int: {_short(value)}")
    return int(value) if isinstance(value, int) else int(number)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def clean_value(value: Any, spec: ColumnSpec, nulls: frozenset[str]) -> Any:
    """Null values -> None, then the value map, then the cast. Raises ValueError."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text in nulls or text in spec.null_values:
            return None
    if spec.map is not None:
        key = _map_key(value).strip()
        if key in spec.map:
            value = spec.map[key]
        elif spec.strict:
            known = ", ".join(repr(k) for k in list(spec.map)[:8])
            raise ValueError(f"{_short(value)} is not one of the mapped values ({known})")
    if value is None or spec.type is None:
        return value
    return cast_value(value, spec.type)


def lead_id_column(row: Mapping[str, Any], mapping: SourceMapping) -> str | None:
    """The column holding the lead id: the mapping's, else ``lead_id`` or ``id``."""
    if mapping.lead_id is not None:
        return mapping.lead_id
    return next((c for c in DEFAULT_LEAD_ID_COLUMNS if c in row), None)


def _id_text(value: Any, column: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidRow(f"{column}: lead id must be text or an integer, not {_short(value)}")
    text = str(value)
    if not text.strip():
        raise InvalidRow(f"{column}: empty lead id")
    return text


def header_problems(columns: Sequence[str], mapping: SourceMapping) -> tuple[list[str], bool]:
    """Problems with a CSV header for this mapping, and whether they stop the read."""
    present = set(columns)
    problems = _duplicates(columns)
    if mapping.lead_id is None:
        if not present.intersection(DEFAULT_LEAD_ID_COLUMNS):
            problems.append("missing lead id column (expected 'lead_id' or 'id')")
            return problems, True
    elif mapping.lead_id not in present:
        problems.append(f"missing lead id column {mapping.lead_id!r}")
        return problems, True
    wanted = [(f"attributes.{n}", s.column) for n, s in mapping.attributes.items()]
    if mapping.outcome is not None:
        wanted.append(("outcome", mapping.outcome.column))
    wanted += [(f"event {e.name!r}", c) for e in mapping.events for c in e.columns()]
    problems += [f"{key}: missing column {col!r}" for key, col in wanted if col not in present]
    return problems, False


def event_header_problems(columns: Sequence[str], mapping: SourceMapping) -> tuple[list[str], bool]:
    """Problems with the header of a native event CSV, and whether they stop the read."""
    f = mapping.event_fields
    missing = [
        f"missing event column {getattr(f, key)!r} (event_fields.{key})"
        for key in ("lead_id", "type", "timestamp")
        if getattr(f, key) not in columns
    ]
    return _duplicates(columns) + missing, bool(missing)


def _duplicates(columns: Sequence[str]) -> list[str]:
    return [f"duplicate column {c!r}" for c in sorted({c for c in columns if columns.count(c) > 1})]


def map_lead_row(row: Mapping[str, Any], mapping: SourceMapping, line: int = 0) -> LeadRow:
    """Build a LeadRow from one row; raises InvalidRow naming every bad column."""
    id_column = lead_id_column(row, mapping)
    if id_column is None:
        raise InvalidRow("missing lead id (no 'lead_id' or 'id' field)")
    raw_id = column_value(row, id_column)
    if raw_id is None:
        raise InvalidRow(f"missing lead id column {id_column!r}")
    lead_id = _id_text(raw_id, id_column)
    nulls = mapping.null_values
    problems: list[str] = []
    attributes: dict[str, Any] = {}
    if mapping.keep_other_columns:
        used = mapping.used
        for column, value in row.items():
            if column not in used and column != id_column:
                attributes[column] = None if _is_null(value, nulls) else value
    for name, spec in mapping.attributes.items():
        try:
            attributes[name] = clean_value(column_value(row, spec.column), spec, nulls)
        except ValueError as exc:
            problems.append(f"{spec.column}: {exc}")
    outcome = None
    if mapping.outcome is not None:
        try:
            outcome = clean_value(column_value(row, mapping.outcome.column), mapping.outcome, nulls)
        except ValueError as exc:
            problems.append(f"{mapping.outcome.column}: {exc}")
    events: list[Event] = []
    for event_spec in mapping.events:
        try:
            events.extend(derived_events(row, event_spec, lead_id, mapping))
        except InvalidRow as exc:
            problems.append(exc.reason)
    if problems:
        raise InvalidRow("; ".join(problems))
    return LeadRow(Lead(lead_id, attributes), tuple(events), outcome, line)


def derived_events(
    row: Mapping[str, Any], spec: EventSpec, lead_id: str, mapping: SourceMapping
) -> list[Event]:
    """The events one EventSpec makes from a row (none when its columns are null)."""
    nulls = mapping.null_values
    if spec.type is not None:
        event_type = spec.type
    else:
        raw = column_value(row, spec.type_from or "")
        if _is_null(raw, nulls) or str(raw).strip() in spec.skip:
            return []
        name = str(raw).strip()
        event_type = spec.types.get(name) or mapping.event_type(name)
    when = spec.at
    if spec.timestamp is not None:
        raw_time = column_value(row, spec.timestamp)
        if _is_null(raw_time, nulls):
            return []
        when = _timestamp(raw_time, spec.timestamp)
    assert when is not None
    count = 1
    if spec.count is not None:
        raw_count = column_value(row, spec.count)
        try:
            count = 0 if _is_null(raw_count, nulls) else cast_value(raw_count, "int")
        except ValueError as exc:
            raise InvalidRow(f"{spec.count}: {exc}") from None
        if count < 0 or count > spec.max_count:
            raise InvalidRow(f"{spec.count}: {count} is outside 0..{spec.max_count} (max_count)")
    props = {}
    for prop, column in spec.properties.items():
        value = column_value(row, column)
        if not _is_null(value, nulls):
            props[prop] = value
    props = canonical_properties(props)
    base = f"{lead_id}:{spec.name}"
    if spec.count is None:
        return [Event(base, lead_id, event_type, when, props)]
    return [Event(f"{base}:{k}", lead_id, event_type, when, props) for k in range(1, count + 1)]


def _timestamp(value: Any, field_name: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidRow(f"{field_name}: expected an ISO 8601 timestamp, got {_short(value)}")
    try:
        return read_timestamp(value)
    except ValueError as exc:
        raise InvalidRow(f"{field_name}: {exc}") from None


def map_event_row(row: Mapping[str, Any], mapping: SourceMapping = DEFAULT_MAPPING) -> Event:
    """An Event from one row of a native event file (``id``, ``lead_id``, ``type``, ...).

    Columns other than the declared fields become properties, as does the
    ``properties`` field (a JSON object, or JSON text in a CSV). Without an id
    the event gets a stable hash of the row.
    """
    f = mapping.event_fields
    get = row.get
    lead_id: Any = get(f.lead_id)
    event_type: Any = get(f.type)
    when: Any = get(f.timestamp)
    if f.dotted:
        lead_id, event_type, when = (_field(row, n) for n in (f.lead_id, f.type, f.timestamp))
    plain = type(lead_id) is str and type(event_type) is str and type(when) is str
    if not (plain and when and lead_id.strip() and event_type.strip()):
        lead_id, event_type, when = _checked_fields(lead_id, event_type, when, f)
    try:
        timestamp = read_timestamp(when)
    except ValueError as exc:
        raise InvalidRow(f"{f.timestamp}: {exc}") from None
    event_id: Any = get(f.id[0])
    if type(event_id) is not str or not event_id:
        event_id = _event_id(row, f)
    nested = row.get(f.properties)
    props: dict[str, Any]
    if not row.keys() <= f.names or (nested is not None and type(nested) is not dict):
        props = _extra_properties(row, f, nested)
    else:
        props = nested or {}
    if props and not props.keys().isdisjoint(PROPERTY_ALIASES):
        props = canonical_properties(props)
    return Event(event_id, lead_id, mapping.event_type(event_type), timestamp, props)


def _event_id(row: Mapping[str, Any], f: EventFields) -> str:
    """The first non-empty id field as text, else a stable hash of the row."""
    for id_field in f.id:
        value = row.get(id_field)
        if value is None or value == "":
            continue
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise InvalidRow(f"{id_field}: event id must be text or an integer")
        return str(value)
    return stable_id(row)


def _field(row: Mapping[str, Any], name: str) -> Any:
    value = row.get(name)
    return column_value(row, name) if value is None and "." in name else value


def _checked_fields(
    lead_id: Any, event_type: Any, when: Any, f: EventFields
) -> tuple[str, str, str]:
    if lead_id is None or lead_id == "":
        raise InvalidRow(f"{f.lead_id}: missing lead id")
    lead = _id_text(lead_id, f.lead_id)
    if not isinstance(event_type, str) or not event_type.strip():
        what = "missing" if event_type in (None, "") else f"expected text, got {_short(event_type)}"
        raise InvalidRow(f"{f.type}: {what} event type")
    if when is None or when == "":
        raise InvalidRow(f"{f.timestamp}: missing timestamp")
    if not isinstance(when, str):
        raise InvalidRow(f"{f.timestamp}: expected an ISO 8601 timestamp, got {_short(when)}")
    return lead, event_type, when


def _extra_properties(row: Mapping[str, Any], f: EventFields, nested: Any) -> dict[str, Any]:
    """Columns beyond the declared fields, plus the ``properties`` object (or JSON text)."""
    props = {k: v for k, v in row.items() if k not in f.names and v is not None and v != ""}
    if isinstance(nested, str) and nested.strip():
        try:
            nested = orjson.loads(nested)
        except orjson.JSONDecodeError as exc:
            raise InvalidRow(f"{f.properties}: invalid JSON ({exc})") from None
    if isinstance(nested, dict):
        props.update(nested)
    elif nested not in (None, ""):
        raise InvalidRow(f"{f.properties}: expected a JSON object, got {_short(nested)}")
    return props
