"""leadgate commands: ``outcomes import|list`` and ``rules report``.

Outcomes say which leads turned out good; ``rules report`` shows, rule by rule, how
well the model's points agree with them (``learning.effectiveness``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from leadgate.cli import (
    AtOpt,
    DatabaseOpt,
    EventsOpt,
    LeadsOpt,
    MappingOpt,
    ModelOpt,
    _as_of,
    _input_file,
    _load,
    _mapping,
    _model,
    _open_engine,
    _report_errors,
    app,
    err,
    fail,
    out,
    plural,
)
from leadgate.domain.mapping import RowError
from leadgate.domain.model import ScoringModel
from leadgate.domain.outcomes import Outcome
from leadgate.learning.dataset import Example
from leadgate.learning.effectiveness import RuleEffect, RuleReport, report_document, rule_report
from leadgate.services.sources import Loaded

outcomes_app = typer.Typer(
    help="Sales outcomes (good or bad, and when): import and list them.", no_args_is_help=True
)
app.add_typer(outcomes_app, name="outcomes")
rules_app = typer.Typer(
    help="The model's rules against sales outcomes: which points the evidence supports.",
    no_args_is_help=True,
)
app.add_typer(rules_app, name="rules")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ERRORS_SHOWN = 20


@outcomes_app.command("import")
def outcomes_import(
    file: Annotated[Path, typer.Argument(help="Outcomes CSV: lead id or email, outcome, date.")],
    id_column: Annotated[
        str | None,
        typer.Option(
            "--id-column", help="Column with the lead id or email (default: lead_id, id, email)."
        ),
    ] = None,
    outcome_column: Annotated[
        str | None,
        typer.Option(
            "--outcome-column",
            help="Column with good/bad, won/lost, yes/no or 1/0 (default: outcome, converted).",
        ),
    ] = None,
    date_column: Annotated[
        str | None,
        typer.Option(
            "--date-column", help="Column with when it became known (default: date, at, ...)."
        ),
    ] = None,
    by: Annotated[str, typer.Option("--by", help="Who imports them.")] = "cli",
    database_url: DatabaseOpt = None,
) -> None:
    """Import outcomes; bad rows and unknown leads are reported, the rest stored once.

    A row for a stored lead, source and date that says otherwise replaces the stored
    outcome (updated); rows of the file for the same lead and date that contradict each
    other are warned about, and the last one is kept. Exits 2 when rows were read and
    none could be stored."""
    from leadgate.services.outcomes import import_outcomes
    from leadgate.store import transact

    _input_file("FILE", file)
    engine = _open_engine(database_url, must_exist=True)
    now = datetime.now(UTC)
    try:
        report = transact(
            engine,
            lambda conn: import_outcomes(
                conn, file, now, id_column, outcome_column, date_column, by
            ),
        )
    except (ValueError, OSError) as exc:
        raise fail(str(exc)) from None
    finally:
        engine.dispose()
    _print_rows("warning:", report.warnings, "contradicting rows")
    _print_rows("refused", report.errors, "refused rows")
    overridden = f"{report.overridden:,} overridden by a later row, " if report.overridden else ""
    out.print(
        f"imported {plural(report.imported, 'outcome')} from {plural(report.read, 'row')}"
        f" ({report.updated:,} updated, {report.already:,} already there, {overridden}"
        f"{plural(len(report.errors), 'row')} refused)",
        highlight=False,
    )
    if report.read and not report.stored:
        raise fail(f"no outcome of {file} could be stored: every row was refused")


def _print_rows(prefix: str, rows: Sequence[RowError], what: str) -> None:
    for row in rows[:ERRORS_SHOWN]:
        err.print(f"{prefix} {row}", highlight=False, markup=False, soft_wrap=True)
    if len(rows) > ERRORS_SHOWN:
        err.print(f"... and {len(rows) - ERRORS_SHOWN:,} more {what}", highlight=False)


@outcomes_app.command("list")
def outcomes_list(
    lead: Annotated[str | None, typer.Option("--lead", help="Only this lead's.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100_000)] = 100,
    as_json: JsonOpt = False,
    database_url: DatabaseOpt = None,
) -> None:
    """Imported and posted outcomes, the latest first."""
    from leadgate.services.outcomes import known_outcomes
    from leadgate.store.outcome_store import OutcomeStore

    engine = _open_engine(database_url, must_exist=True)
    try:
        with engine.connect() as conn:
            rows = OutcomeStore(conn).listing(lead, None, limit)
            known = len(known_outcomes(conn))
    finally:
        engine.dispose()
    if as_json:
        items = [o.document() for o in rows]
        typer.echo(json.dumps({"items": items, "leads_with_outcome": known}, indent=2))
        return
    if not rows:
        out.print("no outcomes stored", highlight=False)
    for o in rows:
        why = f" ({o.reason})" if o.reason else ""
        out.print(
            f"{o.at:%Y-%m-%d %H:%M} lead {o.lead_id}: {'good' if o.good else 'bad'}{why}"
            f" [{o.source} by {o.actor}]",
            highlight=False,
            markup=False,
        )
    out.print(
        f"{plural(known, 'lead')} with a known outcome (dispositions and outcomes)",
        highlight=False,
    )


@rules_app.command("report")
def rules_report(
    leads: LeadsOpt = None,
    events: EventsOpt = None,
    mapping: MappingOpt = None,
    model: ModelOpt = None,
    outcome: Annotated[
        str | None,
        typer.Option(
            "--outcome",
            help="With files: a column of the leads file (e.g. the mapping's outcome column) "
            "or an outcomes CSV.",
        ),
    ] = None,
    at: AtOpt = None,
    as_json: JsonOpt = False,
    database_url: DatabaseOpt = None,
) -> None:
    """How each rule's points agree with sales outcomes, the most disagreeing first.

    From files (--leads/--events with --outcome), or else from the database
    (dispositions and imported outcomes)."""
    scoring_model = _model(model)
    if leads is not None or events is not None:
        if outcome is None:
            raise fail("--outcome COLUMN_OR_FILE is needed with --leads or --events")
        examples = _file_examples(scoring_model, leads, events, mapping, outcome, at)
    else:
        if outcome is not None or mapping is not None:
            raise fail("--outcome and --mapping go with --leads or --events")
        examples = _database_examples(scoring_model, database_url)
    if not examples:
        raise fail("no lead with a known outcome", code=1)
    report = rule_report(examples, scoring_model)
    if as_json:
        typer.echo(json.dumps(report_document(report), indent=2))
        return
    out.print(_table(report))
    out.print(
        "lift: share good with the rule / share good without it. suggested: the evidence "
        "(log odds ratio, shrunk for small counts) on the model's points scale.",
        highlight=False,
    )


def _file_examples(
    scoring_model: ScoringModel,
    leads: Path | None,
    events: Path | None,
    mapping: Path | None,
    outcome: str,
    at: str | None,
) -> list[Example]:
    from leadgate.services.outcomes import file_examples, file_outcomes

    loaded = _load(leads, events, mapping)
    try:
        found = file_outcomes(outcome, loaded, leads, _mapping(mapping))
    except (ValueError, OSError) as exc:
        raise fail(str(exc)) from None
    loaded.errors.extend(found.errors)
    _report_errors(loaded)
    _print_rows("warning:", found.warnings, "contradicting rows")
    found.outcomes = _in_history(found.outcomes, loaded)
    if found.unlisted_bad:
        err.print(
            f"note: {outcome} has no outcome column: its leads count as good, the others as bad",
            highlight=False,
        )
    end = _as_of(at, loaded)
    if at is None:  # dated outcomes after the last event are scored at their own date
        dates = [o.at for o in found.outcomes.values() if o.at is not None]
        end = max([end, *(d for d in dates if d <= datetime.now(UTC))])
    with err.status("scoring..."):
        return file_examples(scoring_model, loaded, found, end)


def _in_history(outcomes: Mapping[str, Outcome], loaded: Loaded) -> dict[str, Outcome]:
    """The outcomes of leads the files hold; a warning names the others (left out)."""
    from leadgate.services.sources import outcomes_in_history, shown

    known, unknown = outcomes_in_history(outcomes, loaded.inputs)
    if unknown:
        some = ", ".join(shown(u, 40) for u in unknown[:3])
        more = ", ..." if len(unknown) > 3 else ""
        err.print(
            f"warning: {plural(len(unknown), 'outcome names a lead', 'outcomes name leads')} "
            f"not in the history ({some}{more}); left out",
            highlight=False,
            markup=False,
        )
    return known


def _database_examples(scoring_model: ScoringModel, database_url: str | None) -> list[Example]:
    from leadgate.services.outcomes import database_examples

    engine = _open_engine(database_url, must_exist=True)
    try:
        with engine.connect() as conn, err.status("scoring..."):
            return database_examples(conn, scoring_model, datetime.now(UTC))
    finally:
        engine.dispose()


def _share(share: float | None, interval: tuple[float, float] | None) -> str:
    if share is None or interval is None:
        return "-"
    return f"{share:.0%} ({interval[0]:.0%}-{interval[1]:.0%})"


def _lift(e: RuleEffect) -> str:
    shown = "-" if e.lift is None else f"{e.lift:.2f}"
    if e.lift_ci is None:
        return shown
    return f"{shown} ({e.lift_ci[0]:.2f}-{e.lift_ci[1]:.2f})"


def _points(value: float) -> str:
    return f"{value:+g}"


def _table(report: RuleReport) -> Table:
    share = f" ({report.share_good:.1%} good)" if report.share_good is not None else ""
    table = Table(
        title=f"{plural(report.examples, 'lead')} with an outcome, {report.good:,} good{share}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("rule", no_wrap=True)
    table.add_column("points", justify="right")
    table.add_column("fired", justify="right")
    table.add_column("good with", justify="right")
    table.add_column("good without", justify="right")
    table.add_column("lift (95%)", justify="right")
    table.add_column("suggested", justify="right")
    for e in report.rules:
        suggested = "-" if e.suggested_points is None else _points(e.suggested_points)
        table.add_row(
            e.rule_id if e.kind != "fit" else f"{e.rule_id} (fit)",
            _points(e.points),
            f"{e.n_with:,}",
            _share(e.share_with, e.share_with_ci),
            _share(e.share_without, e.share_without_ci),
            _lift(e),
            suggested,
        )
    return table
