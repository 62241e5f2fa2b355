"""Use case: gather leads, events and known outcomes from files."""

from __future__ import annotations

import csv
import gzip
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from leadgate.adapters.files import read_events, read_leads
from leadgate.domain.events import Event, parse_timestamp
from leadgate.domain.mapping import RowError, SourceMapping
from leadgate.domain.outcomes import GOOD_TEXT, Outcome, parse_good
from leadgate.domain.segment import Identity, leads_from_identities
from leadgate.services.scoring import Inputs

T = TypeVar("T")
OUTCOME_COLUMNS = ("converted", "Converted", "outcome", "won")
ID_COLUMNS = ("lead_id", "mql_id", "id", "email")


@dataclass
class Loaded:
    inputs: Inputs = field(default_factory=Inputs)
    errors: list[RowError] = field(default_factory=list)
    outcomes: dict[str, bool] = field(default_factory=dict)
    rows_read: int = 0
    leads_read: int = 0
    duplicate_leads: int = 0  # lead rows whose id came before: later rows override


def _guarded(items: Iterable[T], source: Path, loaded: Loaded) -> Iterator[T]:
    """Items of a file; a file that ends early or is corrupt ends with a RowError."""
    try:
        yield from items
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        reason = f"the file ends early or is corrupt after {loaded.rows_read:,} rows ({exc})"
        loaded.errors.append(RowError(str(source), loaded.rows_read + 1, reason))


def _truthy(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    return str(value).strip().lower() in GOOD_TEXT


def load_sources(
    leads: Path | None,
    events: Path | None,
    mapping: SourceMapping | None,
    progress: Callable[[int], None] | None = None,
) -> Loaded:
    """Read every lead and event; unreadable rows are kept as errors, never dropped."""
    loaded = Loaded()
    inputs = loaded.inputs
    identities: list[Identity] = []
    if events is not None:
        for item in _guarded(read_events(events, mapping), events, loaded):
            loaded.rows_read += 1
            if isinstance(item, Event):
                inputs.add_event(item)
            elif isinstance(item, Identity):
                identities.append(item)
            else:
                loaded.errors.append(item)
            if progress is not None and loaded.rows_read % 100_000 == 0:
                progress(loaded.rows_read)
    # Traits: later identify calls win; calls without a time keep file order.
    identities.sort(key=lambda i: (i.timestamp is not None, i.timestamp))
    for lead in leads_from_identities(identities).values():
        inputs.add_lead(lead)
    if leads is not None:
        seen: set[str] = set()
        for row in _guarded(read_leads(leads, mapping), leads, loaded):
            loaded.rows_read += 1
            if isinstance(row, RowError):
                loaded.errors.append(row)
                continue
            loaded.leads_read += 1
            if row.lead.id in seen:
                loaded.duplicate_leads += 1
            seen.add(row.lead.id)
            inputs.add_lead(row.lead)
            for event in row.events:
                inputs.add_event(event)
            if row.outcome is not None:
                loaded.outcomes[row.lead.id] = _truthy(row.outcome)
    return loaded


OUTCOME_AT_COLUMNS = ("converted_at", "outcome_at", "won_date", "won_at", "date", "at")
REASON_COLUMNS = ("reason", "outcome_reason")


def read_outcomes(path: Path, id_column: str | None, value_column: str | None) -> dict[str, bool]:
    """Known outcomes from a CSV as lead id -> converted (see ``read_outcome_records``)."""
    return {k: o.good for k, o in read_outcome_records(path, id_column, value_column).items()}


def read_outcome_records(
    path: Path,
    id_column: str | None = None,
    value_column: str | None = None,
    at_column: str | None = None,
) -> dict[str, Outcome]:
    """Known outcomes from a CSV: the value of an outcome column, or "listed = converted".

    ``id_column`` defaults to the first of lead_id, mql_id, id, email in the
    header; ``value_column`` to the first of converted, outcome, won; with none
    of those, every listed lead counts as converted. ``at_column`` (default: the
    first of converted_at, outcome_at, won_date, won_at, date, at) dates the
    outcome; an empty date is unknown. A reason column is kept when present.
    Errors name the file, the line and the value.
    """
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        column = id_column or next((c for c in ID_COLUMNS if c in header), None)
        if column is None or column not in header:
            wanted = id_column or " or ".join(ID_COLUMNS)
            raise ValueError(f"{path}: no lead id column {wanted} (columns: {', '.join(header)})")
        if value_column is None:
            value_column = next((c for c in OUTCOME_COLUMNS if c in header), None)
        elif value_column not in header:
            raise ValueError(f"{path}: no column {value_column!r} (columns: {', '.join(header)})")
        if at_column is None:
            at_column = next((c for c in OUTCOME_AT_COLUMNS if c in header), None)
        elif at_column not in header:
            raise ValueError(f"{path}: no column {at_column!r} (columns: {', '.join(header)})")
        reason_column = next((c for c in REASON_COLUMNS if c in header), None)
        out: dict[str, Outcome] = {}
        for row in reader:
            lead_id = (row.get(column) or "").strip()
            if not lead_id:
                continue
            where = f"{path}:{reader.line_num}"
            value = (row.get(value_column) or "").strip() if value_column else "1"
            good = parse_good(value or "0", where)  # blank: not converted
            at = None
            if at_column is not None and (text := (row.get(at_column) or "").strip()):
                try:
                    at = parse_timestamp(text)
                except ValueError as exc:
                    raise ValueError(f"{where}: {at_column} {text!r}: {exc}") from None
            reason = (row.get(reason_column) or "").strip() or None if reason_column else None
            out[lead_id] = Outcome(lead_id, good, at, reason, "file")
        return out
