"""Use case: gather leads, events and known outcomes from files."""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from leadgate.adapters.files import read_events, read_leads
from leadgate.domain.events import Event
from leadgate.domain.mapping import RowError, SourceMapping
from leadgate.domain.segment import Identity, leads_from_identities
from leadgate.services.scoring import Inputs

TRUE_TEXT = {"1", "true", "yes", "y", "won", "good", "converted"}
ID_COLUMNS = ("lead_id", "mql_id", "id", "Prospect ID", "email")


@dataclass
class Loaded:
    inputs: Inputs = field(default_factory=Inputs)
    errors: list[RowError] = field(default_factory=list)
    outcomes: dict[str, bool] = field(default_factory=dict)
    rows_read: int = 0


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
        for item in read_events(events, mapping):
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
        for row in read_leads(leads, mapping):
            loaded.rows_read += 1
            if isinstance(row, RowError):
                loaded.errors.append(row)
                continue
            inputs.add_lead(row.lead)
            for event in row.events:
                inputs.add_event(event)
            if row.outcome is not None:
                loaded.outcomes[row.lead.id] = _truthy(row.outcome)
    return loaded


def read_outcomes(path: Path, id_column: str | None, value_column: str | None) -> dict[str, bool]:
    """Known outcomes from a CSV: each listed lead converted, or the value of a column.

    ``id_column`` defaults to the first of lead_id, mql_id, id, Prospect ID,
    email found in the header.
    """
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        column = id_column or next((c for c in ID_COLUMNS if c in header), None)
        if column is None or column not in header:
            raise ValueError(f"{path}: no lead id column (looked for {id_column or ID_COLUMNS})")
        if value_column is not None and value_column not in header:
            raise ValueError(f"{path}: no column {value_column!r} (columns: {', '.join(header)})")
        out: dict[str, bool] = {}
        for row in reader:
            lead_id = (row.get(column) or "").strip()
            if lead_id:
                out[lead_id] = True if value_column is None else _truthy(row[value_column])
        return out
