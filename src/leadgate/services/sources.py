"""Use case: gather leads, events and known outcomes from files.

Outcome CSVs are opened as the lead and event files are (``adapters.records.open_bytes``:
gzip by content) and must be UTF-8. Within one file, rows for the same lead and date
that contradict each other are reported and the last one wins: the same rule as an
import into the database (``services.outcomes``).
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from leadgate.adapters.files import read_events, read_leads
from leadgate.adapters.records import open_bytes
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
    # Lead rows whose outcome (the mapping's outcome column) contradicts an earlier
    # row of the same lead: the last one wins (see ``contradiction``).
    outcome_conflicts: list[RowError] = field(default_factory=list)


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
        outcome_lines: dict[str, int] = {}
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
                good = _truthy(row.outcome)
                held = loaded.outcomes.get(row.lead.id)
                if held is not None and held != good:
                    message = contradiction(
                        row.lead.id, None, said(good), outcome_lines[row.lead.id], said(held)
                    )
                    loaded.outcome_conflicts.append(RowError(str(leads), row.line, message))
                loaded.outcomes[row.lead.id] = good
                outcome_lines[row.lead.id] = row.line
    return loaded


# ---------------------------------------------------------------------------
# Outcome files

OUTCOME_AT_COLUMNS = ("converted_at", "outcome_at", "won_date", "won_at", "date", "at")
REASON_COLUMNS = ("reason", "outcome_reason")
SHOWN_CHARS = 100  # values echoed in messages are cut to this many characters


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """``repr`` of a value for a message, cut to ``limit`` characters (saying how long
    it was) so a huge value is never echoed whole."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text):,} characters)"


def said(good: bool, reason: str | None = None, note: str | None = None) -> str:
    """An outcome as a contradiction message names it ("bad (reason 'price')")."""
    parts = [f"reason {shown(reason)}" if reason else "", f"note {shown(note)}" if note else ""]
    details = ", ".join(p for p in parts if p)
    return ("good" if good else "bad") + (f" ({details})" if details else "")


def contradiction(
    lead_id: str, at: datetime | None, now_said: str, earlier: int | str, earlier_said: str
) -> str:
    """The warning for a row (or item) that contradicts an earlier one for the same lead
    and date; ``earlier`` is its line (or a label such as "item 3"). The last one wins,
    in files as in the database."""
    where = f"line {earlier}" if isinstance(earlier, int) else earlier
    date = "" if at is None else f" on {_when(at)}"
    return (
        f"lead {shown(lead_id)}{date}: {now_said} contradicts {where} ({earlier_said});"
        " the last one is kept"
    )


def _when(at: datetime) -> str:
    if at.hour == at.minute == at.second == at.microsecond == 0:
        return at.date().isoformat()
    return at.isoformat()


CsvRows = Iterator[tuple[int, dict[str, str]]]


@contextmanager
def outcome_csv(path: Path) -> Iterator[tuple[list[str], CsvRows]]:
    """An outcomes CSV, opened as the lead and event readers open files (gzip by
    content, so ``.csv.gz`` works): its header and its rows as (line, column -> value),
    line being where the row starts. Blank rows are skipped; a short row lacks its
    last columns.

    Raises ValueError naming the file (and the line) when the file is not UTF-8 text,
    is corrupt or not CSV, or names a column twice.
    """
    with open_bytes(path) as f:
        lines = _Utf8Lines(f, path)
        reader = csv.reader(lines)
        header = _guard(lambda: next(reader, []), path, lines)
        _check_header(path, header)

        def rows() -> CsvRows:
            end = reader.line_num
            while True:
                start = end + 1
                values = _guard(lambda: next(reader, None), path, lines)
                if values is None:
                    return
                end = reader.line_num
                if values:
                    yield start, dict(zip(header, values, strict=False))

        yield header, rows()


class _Utf8Lines:
    """The text lines of a file of bytes; a line that is not UTF-8 raises ValueError
    naming the file, the line and the byte."""

    def __init__(self, f: io.BufferedIOBase, path: Path) -> None:
        self.f, self.path, self.line = f, path, 0

    def __iter__(self) -> Iterator[str]:
        for raw in self.f:
            self.line += 1
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(
                    f"{self.path}:{self.line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at "
                    f"position {exc.start + 1} of the line); the file must be UTF-8: save it "
                    'as "CSV UTF-8", or convert it (e.g. iconv -f latin1 -t utf-8)'
                ) from None
            yield text[1:] if self.line == 1 and text.startswith("\ufeff") else text


def _guard(read: Callable[[], T], path: Path, lines: _Utf8Lines) -> T:
    """``read()``, with a corrupt file or unreadable CSV as a ValueError naming the file."""
    try:
        return read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ValueError(
            f"{path}: the file ends early or is corrupt after line {lines.line:,} ({exc})"
        ) from None
    except csv.Error as exc:
        raise ValueError(f"{path}:{lines.line}: unreadable CSV: {exc}") from None


def _check_header(path: Path, header: list[str]) -> None:
    seen: dict[str, int] = {}
    for number, name in enumerate(header, 1):
        if name in seen and name.strip():
            raise ValueError(
                f"{path}: the column {shown(name)} appears twice (columns {seen[name]} and "
                f"{number}); rename or remove one"
            )
        seen.setdefault(name, number)


def read_outcomes(path: Path, id_column: str | None, value_column: str | None) -> dict[str, bool]:
    """Known outcomes from a CSV as lead id -> converted (see ``read_outcome_file``)."""
    return {k: o.good for k, o in read_outcome_records(path, id_column, value_column).items()}


def read_outcome_records(
    path: Path,
    id_column: str | None = None,
    value_column: str | None = None,
    at_column: str | None = None,
) -> dict[str, Outcome]:
    """The outcomes of ``read_outcome_file``, without its warnings."""
    return read_outcome_file(path, id_column, value_column, at_column).outcomes


@dataclass
class OutcomeFile:
    """What an outcomes CSV says: each lead's outcome, and the rows that contradicted an
    earlier row for the same lead and date (as warnings: the last row was kept)."""

    outcomes: dict[str, Outcome] = field(default_factory=dict)
    contradictions: list[RowError] = field(default_factory=list)
    has_outcome_column: bool = True  # False: every listed lead counts as converted


def read_outcome_file(
    path: Path,
    id_column: str | None = None,
    value_column: str | None = None,
    at_column: str | None = None,
) -> OutcomeFile:
    """Known outcomes from a CSV (gzip or not): the value of an outcome column, or
    "listed = converted".

    ``id_column`` defaults to the first of lead_id, mql_id, id, email in the
    header; ``value_column`` to the first of converted, outcome, won; with none
    of those, every listed lead counts as converted. ``at_column`` (default: the
    first of converted_at, outcome_at, won_date, won_at, date, at) dates the
    outcome; an empty date is unknown. A reason column is kept when present.

    A lead listed more than once keeps its latest outcome (by date; an undated one
    counts as the earliest), as the database does. Rows for the same lead and date
    that differ (outcome or reason) are reported in ``contradictions`` with the line
    they contradict; the last of them wins, as a re-import into the database does.
    Errors (ValueError) name the file, the line and the value.
    """
    found = OutcomeFile()
    with outcome_csv(path) as (header, rows):
        column = id_column or next((c for c in ID_COLUMNS if c in header), None)
        if column is None or column not in header:
            wanted = id_column or " or ".join(ID_COLUMNS)
            raise ValueError(f"{path}: no lead id column {wanted} (columns: {', '.join(header)})")
        if value_column is None:
            value_column = next((c for c in OUTCOME_COLUMNS if c in header), None)
        elif value_column not in header:
            raise ValueError(f"{path}: no column {value_column!r} (columns: {', '.join(header)})")
        found.has_outcome_column = value_column is not None
        if at_column is None:
            at_column = next((c for c in OUTCOME_AT_COLUMNS if c in header), None)
        elif at_column not in header:
            raise ValueError(f"{path}: no column {at_column!r} (columns: {', '.join(header)})")
        reason_column = next((c for c in REASON_COLUMNS if c in header), None)
        last: dict[tuple[str, datetime | None], tuple[int, Outcome]] = {}
        for line, row in rows:
            lead_id = (row.get(column) or "").strip()
            if not lead_id:
                continue
            where = f"{path}:{line}"
            value = (row.get(value_column) or "").strip() if value_column else "1"
            good = parse_good(value or "0", where)  # blank: not converted
            at = None
            if at_column is not None and (text := (row.get(at_column) or "").strip()):
                try:
                    at = parse_timestamp(text)
                except ValueError as exc:
                    raise ValueError(f"{where}: {at_column} {shown(text)}: {exc}") from None
            reason = (row.get(reason_column) or "").strip() or None if reason_column else None
            outcome = Outcome(lead_id, good, at, reason, "file")
            earlier = last.get((lead_id, at))
            if earlier is not None and (earlier[1].good, earlier[1].reason) != (good, reason):
                message = contradiction(
                    lead_id,
                    at,
                    said(good, reason),
                    earlier[0],
                    said(earlier[1].good, earlier[1].reason),
                )
                found.contradictions.append(RowError(str(path), line, message))
            last[(lead_id, at)] = (line, outcome)
            held = found.outcomes.get(lead_id)
            if held is None or held.at == at or _later(at, held.at):
                found.outcomes[lead_id] = outcome
    return found


def _later(a: datetime | None, b: datetime | None) -> bool:
    """Whether ``a`` comes after ``b``, an undated outcome counting as the earliest."""
    if a is None:
        return False
    return b is None or a > b


def outcomes_in_history(
    outcomes: Mapping[str, Outcome], inputs: Inputs
) -> tuple[dict[str, Outcome], list[str]]:
    """The outcomes of leads the history holds (a lead row or an event), and the sorted
    ids of the leads it does not hold, for a warning: an outcome for a lead with no
    history says nothing about the rules, and must not be counted."""
    known: dict[str, Outcome] = {}
    unknown: list[str] = []
    for lead_id, outcome in outcomes.items():
        if lead_id in inputs.leads or lead_id in inputs.events:
            known[lead_id] = outcome
        else:
            unknown.append(lead_id)
    return known, sorted(unknown)
