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
from leadgate.domain.events import Event
from leadgate.domain.mapping import RowError, SourceMapping
from leadgate.domain.segment import Identity, leads_from_identities
from leadgate.services.scoring import Inputs

T = TypeVar("T")
TRUE_TEXT = {"1", "true", "yes", "y", "won", "good", "converted"}
FALSE_TEXT = {"0", "false", "no", "n", "lost", "bad", "", "not converted"}
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
    return str(value).strip().lower() in TRUE_TEXT


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


def _outcome(value: str, where: str) -> bool:
    text = value.strip().lower()
    if text in TRUE_TEXT:
        return True
    if text in FALSE_TEXT:
        return False
    raise ValueError(f"{where}: outcome {value!r} is not yes/no (1/0, true/false, won/lost)")


def read_outcomes(path: Path, id_column: str | None, value_column: str | None) -> dict[str, bool]:
    """Known outcomes from a CSV: the value of an outcome column, or "listed = converted".

    ``id_column`` defaults to the first of lead_id, mql_id, id, email in the
    header; ``value_column`` to the first of converted, outcome, won; with none
    of those, every listed lead counts as converted.
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
        out: dict[str, bool] = {}
        for row in reader:
            lead_id = (row.get(column) or "").strip()
            if not lead_id:
                continue
            if value_column is None:
                out[lead_id] = True
            else:
                out[lead_id] = _outcome(row.get(value_column) or "", f"{path}:{reader.line_num}")
        return out
