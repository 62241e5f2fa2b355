"""The `leadgate` command: parse, call a use case, print."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress

from leadgate.adapters.files import load_mapping, write_results
from leadgate.adapters.model_source import read_model
from leadgate.domain.events import Lead, parse_timestamp
from leadgate.domain.mapping import MappingError, SourceMapping
from leadgate.domain.model import ScoringModel
from leadgate.domain.scoring import evaluate
from leadgate.domain.stages import decide
from leadgate.domain.stages import explain as explain_text
from leadgate.domain.yamldoc import SpecError
from leadgate.services.scoring import StageTable, outcome_of, result_row, score_all
from leadgate.services.sources import Loaded, load_sources, read_outcomes
from leadgate.simulation import main_simulate
from leadgate.summary import model_summary, stage_table

app = typer.Typer(
    help="leadgate: decide which leads go to sales, and when.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
model_app = typer.Typer(help="Check and show scoring models.", no_args_is_help=True)
app.add_typer(model_app, name="model")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False, markup=True)
    return typer.Exit(code)


@model_app.command("check")
def model_check(
    file: Annotated[Path, typer.Argument(help="The model file (YAML).")],
) -> None:
    """Validate a model file and print a readable summary of it."""
    try:
        model = read_model(file)
    except SpecError as exc:
        for problem in exc.problems:
            err.print(problem, highlight=False, markup=False, soft_wrap=True)
        raise fail(f"{len(exc.problems)} problem(s) in {file}") from None
    out.print(model_summary(model))
    out.print(f"[green]ok[/green]: {file} is a valid model")


@model_app.command("show")
def model_show() -> None:
    """Print the summary of the built-in default model."""
    out.print(model_summary(read_model(None)))


ModelOpt = Annotated[
    Path | None, typer.Option("--model", "-m", help="Scoring model file (default: built-in).")
]
LeadsOpt = Annotated[Path | None, typer.Option("--leads", help="Leads: CSV or JSON lines.")]
EventsOpt = Annotated[
    Path | None, typer.Option("--events", help="Events: CSV, JSON lines or Segment JSON lines.")
]
MappingOpt = Annotated[
    Path | None, typer.Option("--mapping", help="Mapping of the source's columns (YAML).")
]
AtOpt = Annotated[
    str | None,
    typer.Option("--at", help="Scoring time, ISO 8601 (default: the latest event read)."),
]


def _model(path: Path | None) -> ScoringModel:
    try:
        return read_model(path)
    except SpecError as exc:
        for problem in exc.problems:
            err.print(problem, highlight=False, markup=False, soft_wrap=True)
        raise fail(f"the model {path} has {len(exc.problems)} problem(s)") from None


def _mapping(path: Path | None) -> SourceMapping | None:
    if path is None:
        return None
    try:
        return load_mapping(path)
    except FileNotFoundError:
        raise fail(f"{path}: no such mapping file") from None
    except MappingError as exc:
        err.print(str(exc), highlight=False, markup=False, soft_wrap=True)
        raise fail(f"the mapping {path} is not valid") from None


def _load(leads: Path | None, events: Path | None, mapping: Path | None) -> Loaded:
    if leads is None and events is None:
        raise fail("give --leads, --events or both")
    for name, path in (("--leads", leads), ("--events", events)):
        if path is not None and not path.is_file():
            raise fail(f"{name} {path}: no such file")
    parsed = _mapping(mapping)
    try:
        with err.status("reading...") as status:
            return load_sources(
                leads, events, parsed, lambda n: status.update(f"reading... {n:,} rows")
            )
    except (ValueError, OSError) as exc:
        raise fail(str(exc)) from None


def _as_of(at: str | None, loaded: Loaded) -> datetime:
    if at is not None:
        try:
            return parse_timestamp(at)
        except ValueError as exc:
            raise fail(f"--at: {exc}") from None
    return loaded.inputs.latest or datetime.now(UTC)


def _report_errors(loaded: Loaded, limit: int = 20) -> None:
    for error in loaded.errors[:limit]:
        err.print(f"skipped {error}", highlight=False, markup=False, soft_wrap=True)
    if len(loaded.errors) > limit:
        err.print(f"... and {len(loaded.errors) - limit:,} more unreadable rows")


@app.command()
def score(
    out_file: Annotated[Path, typer.Option("--out", "-o", help="Output: .csv or .jsonl.")],
    leads: LeadsOpt = None,
    events: EventsOpt = None,
    model: ModelOpt = None,
    mapping: MappingOpt = None,
    at: AtOpt = None,
    outcomes: Annotated[
        Path | None,
        typer.Option("--outcomes", help="CSV of known outcomes, to show conversion per stage."),
    ] = None,
    outcome_id: Annotated[
        str | None, typer.Option("--outcome-id", help="Lead id column of --outcomes.")
    ] = None,
    outcome_column: Annotated[
        str | None,
        typer.Option(
            "--outcome-column", help="Outcome column of --outcomes (default: listed = converted)."
        ),
    ] = None,
) -> None:
    """Score leads from files and write each lead's stage, score and reasons."""
    scoring_model = _model(model)
    loaded = _load(leads, events, mapping)
    known = loaded.outcomes or None
    if outcomes is not None:
        try:
            known = read_outcomes(outcomes, outcome_id, outcome_column)
        except (ValueError, OSError) as exc:
            raise fail(str(exc)) from None
    as_of = _as_of(at, loaded)
    table = StageTable()

    def rows() -> Iterator[dict[str, object]]:
        for scored in score_all(scoring_model, loaded.inputs, as_of):
            table.add(scored.decision.stage, outcome_of(scored.breakdown.lead_id, known))
            yield result_row(scored, scoring_model)

    try:
        written = write_results(out_file, rows())
    except OSError as exc:
        raise fail(f"--out {out_file}: {exc.strerror or exc}") from None
    _report_errors(loaded)
    err.print(
        f"scored {written:,} leads ({loaded.inputs.event_count:,} events) as of "
        f"{as_of:%Y-%m-%d %H:%M} UTC with {scoring_model.name}@{scoring_model.version}; "
        f"{len(loaded.errors):,} unreadable rows; wrote {out_file}",
        highlight=False,
    )
    err.print(stage_table(table))


@app.command()
def explain(
    lead_id: Annotated[str, typer.Argument(help="The lead's id.")],
    leads: LeadsOpt = None,
    events: EventsOpt = None,
    model: ModelOpt = None,
    mapping: MappingOpt = None,
    at: AtOpt = None,
) -> None:
    """Print one lead's score breakdown, the events behind each rule, and its stage."""
    scoring_model = _model(model)
    loaded = _load(leads, events, mapping)
    if lead_id not in loaded.inputs.leads and lead_id not in loaded.inputs.events:
        raise fail(f"no lead {lead_id!r} in the input", code=1)
    lead = loaded.inputs.leads.get(lead_id) or Lead(lead_id, {})
    lead_events = loaded.inputs.events.get(lead_id, [])
    breakdown = evaluate(scoring_model, lead, lead_events, _as_of(at, loaded))
    decision = decide(breakdown, scoring_model)
    out.print(explain_text(breakdown, decision, lead_events), highlight=False, markup=False)


@app.command()
def simulate(
    out_file: Annotated[
        Path, typer.Option("--out", "-o", help="Events file (Segment JSON lines; .gz compresses).")
    ],
    truth: Annotated[Path, typer.Option("--truth", help="Ground-truth CSV: who bought.")],
    leads: Annotated[int, typer.Option("--leads", min=1, help="Number of people.")] = 1000,
    days: Annotated[int, typer.Option("--days", min=1, help="Days of history.")] = 90,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same file).")] = 1,
    events_per_lead: Annotated[
        float, typer.Option("--events-per-lead", min=1.0, help="Average events per person.")
    ] = 20.0,
) -> None:
    """Write a deterministic event history of a B2B agency's website, with ground truth."""
    with Progress(console=err, transient=True) as bar:
        task = bar.add_task("simulating", total=leads)
        try:
            summary = main_simulate(
                leads,
                days,
                seed,
                out_file,
                truth,
                events_per_lead=events_per_lead,
                on_progress=lambda done: bar.update(task, completed=done),
            )
        except OSError as exc:
            raise fail(f"{exc.filename}: {exc.strerror}") from None
    mix = ", ".join(f"{name} {n:,}" for name, n in sorted(summary.personas.items()))
    err.print(
        f"wrote {summary.events:,} events for {summary.leads:,} people to {out_file} "
        f"and the truth to {truth} ({summary.converted:,} bought)\n{mix}",
        highlight=False,
    )


@app.command()
def demo(
    workdir: Annotated[
        Path, typer.Option("--workdir", help="Where to write the demo files.")
    ] = Path("out/demo"),
    leads: Annotated[int, typer.Option("--leads", min=10)] = 3000,
) -> None:
    """Simulate an agency's leads, score them with the built-in model and show the result."""
    workdir.mkdir(parents=True, exist_ok=True)
    events_path, truth_path = workdir / "events.jsonl.gz", workdir / "truth.csv"
    scored_path = workdir / "scored.csv"
    simulate(events_path, truth_path, leads=leads, days=90, seed=7, events_per_lead=20.0)
    score(
        scored_path,
        events=events_path,
        outcomes=truth_path,
        outcome_id="lead_id",
        outcome_column="converted",
    )
    scoring_model = _model(None)
    loaded = load_sources(None, events_path, None)
    as_of = _as_of(None, loaded)
    shown: set[str] = set()
    for scored in score_all(scoring_model, loaded.inputs, as_of):
        stage = scored.decision.stage
        if stage in shown:
            continue
        shown.add(stage)
        lead_events = loaded.inputs.events.get(scored.breakdown.lead_id, [])
        out.rule(f"a lead in stage {stage}")
        out.print(
            explain_text(scored.breakdown, scored.decision, lead_events, per_rule=3),
            highlight=False,
            markup=False,
        )
    out.rule()
    out.print(
        f"Scored leads: {scored_path}   Events: {events_path}   Truth: {truth_path}\n"
        f"Explain any lead:  .venv/bin/leadgate explain LEAD_ID --events {events_path}",
        highlight=False,
    )


def main() -> None:
    try:
        app()
    except BrokenPipeError:
        sys.stderr.close()
