"""Use cases: store outcomes (imported files, the API) and turn every known outcome into
an ``Example`` (a lead as it was known before its outcome).

An outcome names its lead by lead id or email, says good or bad (good/bad, won/lost,
yes/no, 1/0), and must be dated: learning takes only what was known strictly before
that date, so an undated outcome could leak. Each bad row or item is reported with
where it is and what is wrong; the good ones are stored. One outcome per lead, source
and date: a re-import stores nothing twice, and one that says otherwise (outcome,
reason or note) replaces the stored outcome and is counted as updated. Rows (or items)
of one file (or request) for the same lead and date that contradict each other are
reported, and the last one wins: the same rule as for outcome files read directly
(``sources.read_outcome_file``).

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
from leadgate.services.ingest import EARLIEST, normalise_email
from leadgate.services.sources import (
    ID_COLUMNS,
    OUTCOME_AT_COLUMNS,
    OUTCOME_COLUMNS,
    REASON_COLUMNS,
    SHOWN_CHARS,
    Loaded,
    contradiction,
    outcome_csv,
    outcomes_in_history,
    read_outcome_file,
    said,
    shown,
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
    actor: str | None = None  # who says so (None: the caller's default)


@dataclass
class ImportReport:
    """What an import did with each row read: stored new (imported), replaced a stored
    outcome of the same lead, source and date (updated), found it stored as it is
    (already), was overridden by a later row for the same lead and date (overridden),
    or was refused (errors). ``warnings``: rows that contradict an earlier row."""

    read: int = 0
    imported: int = 0
    updated: int = 0
    already: int = 0
    overridden: int = 0
    errors: list[RowError] = field(default_factory=list)
    warnings: list[RowError] = field(default_factory=list)

    @property
    def stored(self) -> int:
        """Rows whose outcome is now stored as they say (imported, updated or already)."""
        return self.imported + self.updated + self.already


@dataclass(frozen=True, slots=True)
class Saved:
    """What became of one entry: ``status`` is imported, updated, already, overridden
    (a later entry for the same lead and date said otherwise, and was kept) or unknown
    (no such lead: ``error`` says so). ``contradicts``: the index of the earlier entry
    for the same lead and date that said otherwise."""

    status: str
    error: str | None = None
    contradicts: int | None = None


def entry(
    who: object,
    outcome: object,
    at: object,
    now: datetime,
    reason: object = None,
    note: object = None,
) -> OutcomeEntry:
    """Check one outcome; ValueError saying what is wrong (without saying where).

    The date must be from 1990 on (as ingest's) and not in the future; a reason or
    note is text (a number is taken as text) of at most ``MAX_TEXT`` characters.
    """
    problems: list[str] = []
    lead = "" if who is None else str(who).strip()
    if not lead:
        problems.append("no lead id or email")
    good = False
    if outcome is None or (isinstance(outcome, str) and not outcome.strip()):
        problems.append("no outcome (good/bad, won/lost, yes/no, 1/0)")
    elif isinstance(outcome, str) and len(outcome) > SHOWN_CHARS:
        problems.append(
            f"outcome {shown(outcome)} is not one of good/bad, won/lost, yes/no, 1/0, true/false"
        )
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
    elif not isinstance(at, str):
        problems.append(f"date: expected ISO 8601 text, got {json_kind(at)}")
    elif len(at) > SHOWN_CHARS:
        problems.append(f"date: not an ISO 8601 timestamp: {shown(at)}")
    else:
        try:
            when = parse_timestamp(at)
        except ValueError as exc:
            problems.append(f"date: {exc}")
    if when is not None and when > now:
        problems.append(f"date {when.isoformat()} is in the future")
    elif when is not None and when < EARLIEST:
        problems.append(f"date {when.isoformat()} is before {EARLIEST.year}")
    texts = {
        name: _text(name, value, problems) for name, value in (("reason", reason), ("note", note))
    }
    if problems or when is None:
        raise ValueError("; ".join(problems))
    return OutcomeEntry(lead, good, when, texts["reason"], texts["note"])


MAX_TEXT = 1000  # characters of a reason or a note


def _text(name: str, value: object, problems: list[str]) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        problems.append(f"{name}: expected text, got {json_kind(value)}")
        return None
    text = str(value).strip()
    if len(text) > MAX_TEXT:
        problems.append(f"{name}: {len(text):,} characters; at most {MAX_TEXT:,}")
        return None
    return text or None


def json_kind(value: object) -> str:
    """What a JSON value is, in JSON's words: null, true or false, a number, text, a list,
    an object."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _content(e: OutcomeEntry) -> tuple[bool, str | None, str | None]:
    return (e.good, e.reason, e.note)


def store_outcomes(
    conn: Connection,
    entries: Sequence[OutcomeEntry],
    source: str,
    actor: str,
    now: datetime,
) -> list[Saved]:
    """Store checked outcomes (``actor``: for entries that name none); what became of
    each (see ``Saved``).

    One outcome per lead, source and date: an entry for a stored one with another
    outcome, reason or note replaces it (updated). Entries of ``entries`` for the same
    lead and date: the last one is stored, the earlier ones are already (they say the
    same) or overridden, and each that says otherwise than the one before it names it
    in ``contradicts`` (the same rule as ``sources.read_outcome_file``).
    """
    store = OutcomeStore(conn)
    known = store.existing_leads(e.who for e in entries)
    emails = store.emails(m for e in entries if (m := normalise_email(e.who)) is not None)
    lead_ids: list[str | None] = []
    for e in entries:
        email = normalise_email(e.who)
        lead_ids.append(e.who if e.who in known else emails.get(email) if email else None)
    last: dict[tuple[str, datetime], int] = {}
    contradicts: dict[int, int] = {}
    for i, (e, lead_id) in enumerate(zip(entries, lead_ids, strict=True)):
        if lead_id is None:
            continue
        earlier = last.get((lead_id, e.at))
        if earlier is not None and _content(entries[earlier]) != _content(e):
            contradicts[i] = earlier
        last[(lead_id, e.at)] = i
    results: list[Saved] = []
    for i, (e, lead_id) in enumerate(zip(entries, lead_ids, strict=True)):
        if lead_id is None:
            kind = "email" if normalise_email(e.who) else "lead id"
            results.append(Saved("unknown", f"unknown lead: no lead has the {kind} {shown(e.who)}"))
            continue
        kept = last[(lead_id, e.at)]
        if kept != i:
            same = _content(entries[kept]) == _content(e)
            results.append(Saved("already" if same else "overridden", None, contradicts.get(i)))
            continue
        row = {
            "lead_id": lead_id,
            "good": e.good,
            "at": e.at,
            "reason": e.reason,
            "source": source,
            "note": e.note,
            "actor": e.actor or actor,
            "imported_at": now,
        }
        results.append(Saved(store.put(row), None, contradicts.get(i)))
    return results


def save_outcomes(
    conn: Connection,
    entries: Sequence[OutcomeEntry],
    source: str,
    actor: str,
    now: datetime,
) -> list[str]:
    """``store_outcomes``, each entry's result as text: its status, or what is wrong."""
    return [s.error or s.status for s in store_outcomes(conn, entries, source, actor, now)]


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
    """Import an outcomes CSV (lead id or email, outcome, date, reason, note), gzip or
    not, UTF-8.

    Columns default to the first of lead_id/mql_id/id/email, converted/outcome/won,
    converted_at/outcome_at/won_date/won_at/date/at, reason and note. A header
    without them (or naming a column twice), or a file that is not UTF-8, raises
    ValueError naming the file; each bad row is reported with its line. Rows for the
    same lead and date that contradict each other are warned about (``warnings``,
    naming the line contradicted): the last one is kept.
    """
    report = ImportReport()
    checked: list[tuple[int, OutcomeEntry]] = []
    with outcome_csv(path) as (header, rows):
        try:
            who_col = _column(header, id_column, (*ID_COLUMNS, "lead", "Email"), "lead id")
            value_col = _column(header, outcome_column, ("outcome", *OUTCOME_COLUMNS), "outcome")
            at_col = _column(header, date_column, OUTCOME_AT_COLUMNS, "date")
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        reason_col = next((c for c in REASON_COLUMNS if c in header), None)
        note_col = next((c for c in NOTE_COLUMNS if c in header), None)
        for line, row in rows:
            report.read += 1
            try:
                checked.append(
                    (
                        line,
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
                report.errors.append(RowError(str(path), line, str(exc)))
    entries = [e for _, e in checked]
    results = store_outcomes(conn, entries, "import", actor, now)
    for (line, e), saved in zip(checked, results, strict=True):
        if saved.error is not None:
            report.errors.append(RowError(str(path), line, saved.error))
            continue
        setattr(report, saved.status, getattr(report, saved.status) + 1)
        if saved.contradicts is not None:
            earlier_line, earlier = checked[saved.contradicts]
            message = contradiction(
                e.who,
                e.at,
                said(*_content(e)),
                earlier_line,
                said(*_content(earlier)),
            )
            report.warnings.append(RowError(str(path), line, message))
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
    # Rows that contradict an earlier row for the same lead (and date): the last wins.
    warnings: list[RowError] = field(default_factory=list)


def file_outcomes(
    outcome: str,
    loaded: Loaded,
    leads: Path | None,
    mapping: SourceMapping | None,
) -> FileOutcomes:
    """``outcome``: an outcomes CSV (a path that exists; gzip or not) or a column of the
    leads file (the mapping's outcome column, read with the leads, or any other column).
    Rows that contradict an earlier one for the same lead (and date) are in ``warnings``;
    the last one wins."""
    path = Path(outcome)
    if path.is_file():
        read = read_outcome_file(path)
        return FileOutcomes(
            read.outcomes,
            unlisted_bad=not read.has_outcome_column,
            warnings=read.contradictions,
        )
    found = FileOutcomes(column=outcome)
    if mapping is not None and mapping.outcome is not None and mapping.outcome.column == outcome:
        found.outcomes = {k: Outcome(k, good) for k, good in loaded.outcomes.items()}
        found.warnings = list(loaded.outcome_conflicts)
        return found
    if leads is None:
        raise ValueError(f"--outcome {outcome}: no such file, and no --leads to find a column in")
    source, seen = str(leads), False
    lines: dict[str, int] = {}
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
            good = parse_good(value, outcome)
        except ValueError as exc:
            found.errors.append(RowError(source, line, str(exc)))
            continue
        held = found.outcomes.get(lead_id)
        if held is not None and held.good != good:
            message = contradiction(lead_id, None, said(good), lines[lead_id], said(held.good))
            found.warnings.append(RowError(source, line, message))
        found.outcomes[lead_id] = Outcome(lead_id, good)
        lines[lead_id] = line
    if not seen:
        raise ValueError(f"--outcome {outcome}: not a file, nor a column of {leads}")
    return found


def file_examples(
    model: ScoringModel, loaded: Loaded, found: FileOutcomes, end: datetime
) -> list[Example]:
    """Examples from files; a leads-file outcome column never reaches the attributes.
    Outcomes of leads the files do not hold are left out (``outcomes_in_history`` names
    them, for a warning)."""
    leads = loaded.inputs.leads
    if found.column is not None:
        leads = {
            k: Lead(k, {a: v for a, v in lead.attributes.items() if a != found.column})
            for k, lead in leads.items()
        }
    known, _ = outcomes_in_history(found.outcomes, loaded.inputs)
    return list(examples(model, leads, loaded.inputs.events, known, end, found.unlisted_bad))
