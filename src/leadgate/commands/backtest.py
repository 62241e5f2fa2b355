"""leadgate commands: ``backtest``. Replay history under a draft model and under the
current one, and show side by side what each would have handed over
(``learning.backtest``, ``learning.replay``)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from leadgate.cli import (
    DatabaseOpt,
    EventsOpt,
    LeadsOpt,
    MappingOpt,
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
from leadgate.domain.events import Event, Lead
from leadgate.domain.model import ScoringModel

ROWS: list[tuple[str, str, str]] = [
    # (label, key, format)
    ("handovers", "handovers", "int"),
    ("handovers per week", "handovers_per_week", "num"),
    ("precision (handovers that turned out good)", "precision", "pct"),
    ("recall (good leads handed over)", "recall", "pct"),
    ("median days, first touch -> handover", "median_days_first_touch_to_handover", "num"),
    ("median days, intent action -> handover", "median_days_intent_to_handover", "num"),
    ("good leads still nurturing when they converted", "good_nurturing_at_conversion", "int"),
    ("good leads handed over after converting", "good_handed_over_after_conversion", "int"),
]


def _cell(value: Any, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "num":
        return f"{value:,.2f}"
    return f"{value:,}"


def comparison_table(result: dict[str, Any]) -> Table:
    current, draft = result["current"], result["draft"]
    table = Table(box=box.SIMPLE, title="backtest", title_justify="left")
    table.add_column("")
    table.add_column(f"current\n{current['model']}", justify="right")
    table.add_column(f"draft\n{draft['model']}", justify="right")
    table.add_row(
        "handover threshold",
        f"{current['handover_stage'].upper()} {current['threshold']:g}",
        f"{draft['handover_stage'].upper()} {draft['threshold']:g}",
    )
    for name, key, kind in ROWS:
        table.add_row(name, _cell(current[key], kind), _cell(draft[key], kind))
    return table


def sweep_table(result: dict[str, Any]) -> Table:
    table = Table(box=box.SIMPLE, title="threshold sweep", title_justify="left")
    for name in ("threshold", "current: per week", "precision", "recall"):
        table.add_column(name, justify="right")
    for name in ("draft: per week", "precision", "recall"):
        table.add_column(name, justify="right")
    for a, b in zip(result["current"]["sweep"], result["draft"]["sweep"], strict=True):
        table.add_row(
            f"{a['threshold']:g}",
            _cell(a["handovers_per_week"], "num"),
            _cell(a["precision"], "pct"),
            _cell(a["recall"], "pct"),
            _cell(b["handovers_per_week"], "num"),
            _cell(b["precision"], "pct"),
            _cell(b["recall"], "pct"),
        )
    return table


def show(result: dict[str, Any], json_out: Path | None, sweep: bool = True) -> None:
    h = result["history"]
    out.print(
        f"history: {h['leads']:,} leads, {h['from'] or '-'} to {h['to'] or '-'}; "
        f"{result['current']['good_leads']:,} good outcomes "
        f"({result['method']} replay)",
        highlight=False,
    )
    if h["outcomes_unmatched"]:
        unmatched = plural(h["outcomes_unmatched"], "outcome names a lead", "outcomes name leads")
        err.print(f"warning: {unmatched} not in the history; left out", highlight=False)
    current = result["current"]
    unlabelled = current["leads"] - current["good_leads"] - current["bad_leads"]
    if unlabelled and current["good_leads"] + current["bad_leads"]:
        err.print(
            f"note: {plural(unlabelled, 'lead')} of {current['leads']:,} had no outcome: "
            "they count as not good (a handover of one lowers precision)",
            highlight=False,
        )
    out.print(comparison_table(result))
    c = result["changes"]
    out.print(
        f"handed over by the draft only: {c['only_draft']:,}; by the current model only: "
        f"{c['only_current']:,}; earlier with the draft: {c['earlier_with_draft']:,}, "
        f"later: {c['later_with_draft']:,}",
        highlight=False,
    )
    if sweep:
        out.print(sweep_table(result))
    if json_out is not None:
        text = json.dumps(result, indent=2) + "\n"
        if str(json_out) == "-":
            out.print(text, highlight=False, markup=False)
        else:
            json_out.write_text(text, encoding="utf-8")
            out.print(f"wrote {json_out}", highlight=False)


JsonOutOpt = Annotated[
    Path | None,
    typer.Option("--json", help="Also write the full result (with the sweep) as JSON here."),
]
ReferenceOpt = Annotated[
    bool,
    typer.Option(
        "--reference", help="Replay with the reference evaluator (slow) instead of DuckDB."
    ),
]


@app.command("backtest")
def backtest(
    model: Annotated[Path, typer.Option("--model", "-m", help="The draft model file.")],
    against: Annotated[
        Path | None,
        typer.Option(
            "--against",
            help="The current model file (default: the database's live model with "
            "--database-url, else the built-in one).",
        ),
    ] = None,
    events: EventsOpt = None,
    leads: LeadsOpt = None,
    mapping: MappingOpt = None,
    outcome: Annotated[
        str | None,
        typer.Option(
            "--outcome",
            help="Outcomes: a CSV (lead id or email, converted or outcome, date) or a column "
            "of the leads file. With --database-url: the stored dispositions and outcomes.",
        ),
    ] = None,
    database_url: DatabaseOpt = None,
    json_out: JsonOutOpt = None,
    reference: ReferenceOpt = False,
) -> None:
    """Replay history under a draft model and the current one: handovers per week,
    precision, recall, timing, and a threshold sweep, side by side."""
    from leadgate.learning.replay import backtest_history

    draft = _model(model)
    current = _model(against) if against is not None else None
    if events is not None or leads is not None:
        if outcome is None:
            raise fail("give --outcome: an outcomes file or a column of the leads file")
        result = _from_files(current, draft, leads, events, mapping, outcome, reference)
    else:
        if database_url is None:
            raise fail("give --events (and --leads) with --outcome, or --database-url")
        from leadgate.services.models import database_history, live_version, model_of

        engine = _open_engine(database_url, must_exist=True)
        try:
            if current is None:
                with engine.connect() as conn:
                    live = live_version(conn)
                current = model_of(live) if live is not None else _model(None)
            with err.status("reading the database..."):
                history = database_history(engine)
        finally:
            engine.dispose()
        _has_history(history[0], history[1])
        with err.status("replaying..."):
            result = backtest_history(current, draft, *history, reference=reference)
    show(result, json_out)


def _has_history(leads: Mapping[str, Lead], events: Mapping[str, Sequence[Event]]) -> None:
    """Refuse to replay nothing (exit 2): a table of dashes would say nothing."""
    held = set(leads) | {k for k, v in events.items() if v}
    if not held:
        raise fail("no history to replay (0 leads)")


def _from_files(
    current: ScoringModel | None,
    draft: ScoringModel,
    leads: Path | None,
    events: Path | None,
    mapping: Path | None,
    outcome: str,
    reference: bool,
) -> dict[str, Any]:
    from leadgate.learning.replay import backtest_history
    from leadgate.services.outcomes import file_outcomes

    _input_file("--events", events)
    loaded = _load(leads, events, mapping)
    if loaded.errors:
        _report_errors(loaded)
    _has_history(loaded.inputs.leads, loaded.inputs.events)
    try:
        found = file_outcomes(outcome, loaded, leads, _mapping(mapping))
    except (ValueError, OSError) as exc:
        raise fail(str(exc)) from None
    for warning in found.warnings[:20]:
        err.print(f"warning: {warning}", highlight=False, markup=False, soft_wrap=True)
    if len(found.warnings) > 20:
        err.print(f"... and {len(found.warnings) - 20:,} more contradicting rows")
    people = loaded.inputs.leads
    if found.column is not None:  # the outcome is never an attribute the models may read
        people = {
            k: Lead(k, {a: v for a, v in lead.attributes.items() if a != found.column})
            for k, lead in people.items()
        }
    with err.status("replaying..."):
        return backtest_history(
            current or _model(None),
            draft,
            people,
            loaded.inputs.events,
            found.outcomes,
            reference=reference,
        )
