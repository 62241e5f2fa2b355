"""Use cases: store outcomes (imported files, the API) and turn every known outcome into
an ``Example`` (a lead as it was known before its outcome).

An outcome names its lead by lead id or email, says good or bad (good/bad, won/lost,
yes/no, 1/0), and must be dated: learning takes only what was known strictly before
that date, so an undated outcome could leak. Each bad row or item is reported with
where it is and what is wrong; the good ones are stored. A re-import stores nothing
twice (one outcome per lead, source and date).

Examples come from two places in the database:

- dispositions: a lead's latest disposition that says good (accepted, opportunity,
  won) or bad (rejected, lost); its features are taken as of the handover it
  answers (events strictly before the handover was created);
- stored outcomes: features strictly before the outcome's date.

When a lead has both, the later one (by when it became known) wins. The lead's
attributes are those it had at that time as far as the store knows: an attribute
whose value was said at or after that time is left out (the earlier value is not
kept), and attributes without a time (from file imports) are kept.

From files (``file_outcomes``): a column of the leads file (the mapping's outcome
column or any other) or an outcomes CSV.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from leadgate.adapters.records import detect_format, records
from leadgate.domain.events import Lead, parse_timestamp, to_utc
from leadgate.domain.mapping import DEFAULT_MAPPING, RowError, SourceMapping
from leadgate.domain.model import ScoringModel
from leadgate.domain.outcomes import Outcome, from_disposition, parse_good
from leadgate.domain.rows import lead_id_column
from leadgate.domain.traits import stamp
from leadgate.learning.dataset import Example, decision_time, example, examples
from leadgate.services.ingest import normalise_email
from leadgate.services.sources import (
    ID_COLUMNS,
    OUTCOME_AT_COLUMNS,
    OUTCOME_COLUMNS,
    REASON_COLUMNS,
    Loaded,
    read_outcome_records,
)
from leadgate.store.outcome_store import OutcomeStore
from leadgate.store.repository import Repository

NOTE_COLUMNS = ("note", "notes", "comment")


@dataclass(frozen=True, slots=True)
class OutcomeEntry:
    """One outcome as given, checked but not yet tied to a lead."""

    who: str  # a lead id or an email address
    good: bool
    at: datetime
    reason: str | None = None
    note: str | None = None


@dataclass
class ImportReport:
    """What an import did: rows read, stored, already there, and the rows refused."""

    read: int = 0
    imported: int = 0
    already: int = 0
    errors: list[RowError] = field(default_factory=list)


def entry(
    who: object,
    outcome: object,
    at: object,
    now: datetime,
    reason: object = None,
    note: object = None,
) -> OutcomeEntry:
    """Check one outcome; ValueError saying what is wrong (without saying where)."""
    problems: list[str] = []
    lead = "" if who is None else str(who).strip()
    if not lead:
        problems.append("no lead id or email")
    good = False
    if outcome is None or (isinstance(outcome, str) and not outcome.strip()):
        problems.append("no outcome (good/bad, won/lost, yes/no, 1/0)")
    else:
        try:
            good = parse_good(outcome, "outcome")
        except ValueError as exc:
            problems.append(str(exc).removeprefix("outcome: "))
    when: datetime | None = None
    if isinstance(at, datetime):
        when = to_utc(at)
    elif at is None or not str(at).strip():
        problems.append("no date (an outcome must say when it became known)")
    else:
        try:
            when = parse_timestamp(str(at))
        except ValueError as exc:
            problems.append(f"date: {exc}")
    if when is not None and when > now:
        problems.append(f"date {when.isoformat()} is in the future")
    if problems or when is None:
        raise ValueError("; ".join(problems))
    return OutcomeEntry(lead, good, when, _text(reason), _text(note))


def _text(value: object) -> str | None:
    if value is None:
        return None
    return str(value).strip() or None


def save_outcomes(
    conn: Connection,
    entries: Sequence[OutcomeEntry],
    source: str,
    actor: str,
    now: datetime,
) -> list[str]:
    """Store checked outcomes; for each: "imported", "already" (that lead, source and
    date are stored) or what is wrong (an unknown lead)."""
    store = OutcomeStore(conn)
    known = store.existing_leads(e.who for e in entries)
    emails = store.emails(m for e in entries if (m := normalise_email(e.who)) is not None)
    results: list[str] = []
    rows: list[dict[str, Any]] = []
    for e in entries:
        email = normalise_email(e.who)
        lead_id = e.who if e.who in known else emails.get(email) if email else None
        if lead_id is None:
            kind = "email" if email else "lead id"
            results.append(f"unknown lead: no lead has the {kind} {e.who!r}")
            continue
        results.append("")
        rows.append(
            {
                "lead_id": lead_id,
                "good": e.good,
                "at": e.at,
                "reason": e.reason,
                "source": source,
                "note": e.note,
                "actor": actor,
                "imported_at": now,
            }
        )
    inserted = iter(store.add_many(rows))
    return [r or ("imported" if next(inserted) else "already") for r in results]


def _column(header: Sequence[str], given: str | None, defaults: Iterable[str], what: str) -> str:
    if given is not None:
        if given not in header:
            raise ValueError(f"no {what} column {given!r} (columns: {', '.join(header)})")
        return given
    found = next((c for c in defaults if c in header), None)
    if found is None:
        wanted = " or ".join(defaults)
        raise ValueError(f"no {what} column ({wanted}; columns: {', '.join(header)})")
    return found


def import_outcomes(
    conn: Connection,
    path: Path,
    now: datetime,
    id_column: str | None = None,
    outcome_column: str | None = None,
    date_column: str | None = None,
    actor: str = "import",
) -> ImportReport:
    """Import an outcomes CSV (lead id or email, outcome, date, reason, note).

    Columns default to the first of lead_id/mql_id/id/email, converted/outcome/won,
    converted_at/outcome_at/won_date/won_at/date/at, reason and note. A header
    without them raises ValueError; each bad row is reported with its line.
    """
    report = ImportReport()
    checked: list[tuple[int, OutcomeEntry]] = []
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = list(reader.fieldnames or [])
        try:
            who_col = _column(header, id_column, (*ID_COLUMNS, "lead", "Email"), "lead id")
            value_col = _column(header, outcome_column, ("outcome", *OUTCOME_COLUMNS), "outcome")
            at_col = _column(header, date_column, OUTCOME_AT_COLUMNS, "date")
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        reason_col = next((c for c in REASON_COLUMNS if c in header), None)
        note_col = next((c for c in NOTE_COLUMNS if c in header), None)
        for row in reader:
            report.read += 1
            try:
                checked.append(
                    (
                        reader.line_num,
                        entry(
                            row.get(who_col),
                            row.get(value_col),
                            row.get(at_col),
                            now,
                            row.get(reason_col) if reason_col else None,
                            row.get(note_col) if note_col else None,
                        ),
                    )
                )
            except ValueError as exc:
                report.errors.append(RowError(str(path), reader.line_num, str(exc)))
    results = save_outcomes(conn, [e for _, e in checked], "import", actor, now)
    for (line, _), result in zip(checked, results, strict=True):
        if result == "imported":
            report.imported += 1
        elif result == "already":
            report.already += 1
        else:
            report.errors.append(RowError(str(path), line, result))
    report.errors.sort(key=lambda e: e.line)
    return report


def attributes_as_of(
    attributes: Mapping[str, Any], times: Mapping[str, str], as_of: datetime
) -> dict[str, Any]:
    """The attributes known strictly before ``as_of``: those said at or after it are
    left out; those without a time (file imports) are kept."""
    cut = stamp(as_of)
    return {k: v for k, v in attributes.items() if (when := times.get(k)) is None or when < cut}


def known_outcomes(conn: Connection) -> dict[str, Outcome]:
    """Each lead's outcome from the database, dated by when its features are taken:
    the handover time for a disposition, the outcome's date for a stored outcome."""
    store = OutcomeStore(conn)
    chosen: dict[str, tuple[datetime, Outcome]] = {}
    for lead_id, d in store.latest_dispositions().items():
        good = from_disposition(d.outcome)
        if good is not None:
            outcome = Outcome(lead_id, good, d.handed_over_at, d.reason, "disposition")
            chosen[lead_id] = (d.at, outcome)
    for lead_id, o in store.latest_per_lead().items():
        held = chosen.get(lead_id)
        if held is None or o.at > held[0]:
            chosen[lead_id] = (o.at, Outcome(lead_id, o.good, o.at, o.reason, o.source))
    return {lead_id: outcome for lead_id, (_, outcome) in chosen.items()}


def database_examples(conn: Connection, model: ScoringModel, now: datetime) -> list[Example]:
    """One example per stored lead with a known outcome (see the module docstring),
    sorted by lead id, scored by ``model`` as of the moment its features are taken."""
    outcomes = known_outcomes(conn)
    repo = Repository(conn)
    facts = repo.lead_facts(outcomes)
    events = repo.load_events_of(facts)
    out: list[Example] = []
    for lead_id in sorted(facts):
        outcome = outcomes[lead_id]
        fact = facts[lead_id]
        as_of = decision_time(outcome, now)
        lead = Lead(lead_id, attributes_as_of(fact.attributes, fact.attribute_times, as_of))
        out.append(example(model, lead, events.get(lead_id, ()), outcome, now))
    return out


@dataclass
class FileOutcomes:
    """Outcomes read from files, and what could not be read."""

    outcomes: dict[str, Outcome] = field(default_factory=dict)
    errors: list[RowError] = field(default_factory=list)
    unlisted_bad: bool = False  # an outcomes file that lists only the good leads
    column: str | None = None  # the leads file's column the outcomes came from


def file_outcomes(
    outcome: str,
    loaded: Loaded,
    leads: Path | None,
    mapping: SourceMapping | None,
) -> FileOutcomes:
    """``outcome``: an outcomes CSV (a path that exists) or a column of the leads file
    (the mapping's outcome column, read with the leads, or any other column)."""
    path = Path(outcome)
    if path.is_file():
        records_ = read_outcome_records(path)
        with path.open(newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f), [])
        listed_only = not any(c in header for c in OUTCOME_COLUMNS)
        return FileOutcomes(records_, unlisted_bad=listed_only)
    found = FileOutcomes(column=outcome)
    if mapping is not None and mapping.outcome is not None and mapping.outcome.column == outcome:
        found.outcomes = {k: Outcome(k, good) for k, good in loaded.outcomes.items()}
        return found
    if leads is None:
        raise ValueError(f"--outcome {outcome}: no such file, and no --leads to find a column in")
    source, seen = str(leads), False
    for item in records(leads, detect_format(leads), source):
        if isinstance(item, RowError):
            found.errors.append(item)
            continue
        line, _, row = item
        id_column = lead_id_column(row, mapping or DEFAULT_MAPPING)
        if id_column is None or outcome not in row:
            missing = "a lead id" if id_column is None else f"the column {outcome!r}"
            found.errors.append(RowError(source, line, f"no {missing}"))
            continue
        seen = True
        raw_id, value = row.get(id_column), row.get(outcome)
        lead_id = "" if raw_id is None else str(raw_id)  # as the lead reader reads it
        if not lead_id.strip():
            continue
        try:
            found.outcomes[lead_id] = Outcome(lead_id, parse_good(value, outcome))
        except ValueError as exc:
            found.errors.append(RowError(source, line, str(exc)))
    if not seen:
        raise ValueError(f"--outcome {outcome}: not a file, nor a column of {leads}")
    return found


def file_examples(
    model: ScoringModel, loaded: Loaded, found: FileOutcomes, end: datetime
) -> list[Example]:
    """Examples from files; a leads-file outcome column never reaches the attributes."""
    leads = loaded.inputs.leads
    if found.column is not None:
        leads = {
            k: Lead(k, {a: v for a, v in lead.attributes.items() if a != found.column})
            for k, lead in leads.items()
        }
    return list(
        examples(model, leads, loaded.inputs.events, found.outcomes, end, found.unlisted_bad)
    )
