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
from leadgate.services.bulk_scoring import bulk_score
from leadgate.services.scoring import StageTable, outcome_of, result_row, score_all
from leadgate.services.sources import Loaded, load_sources, read_outcomes
from leadgate.simulation import main_simulate
from leadgate.store import create_engine, upgrade
from leadgate.store import database_url as resolve_database_url
from leadgate.store.repository import Repository
from leadgate.summary import model_summary, stage_table

app = typer.Typer(
    help="leadgate: decide which leads go to sales, and when.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
model_app = typer.Typer(help="Check and show scoring models.", no_args_is_help=True)
app.add_typer(model_app, name="model")
db_app = typer.Typer(help="The database: create and migrate it.", no_args_is_help=True)
app.add_typer(db_app, name="db")
keys_app = typer.Typer(
    help="API keys: write keys send events, admin keys read.", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")

DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="LEADGATE_DATABASE_URL",
        help="SQLAlchemy URL (default: sqlite:///./leadgate.db).",
    ),
]

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


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else many or word + 's'}"


def _input_file(name: str, path: Path | None) -> None:
    if path is None:
        return
    if path.is_dir():
        raise fail(f"{name} {path}: is a directory, not a file")
    if not path.is_file():
        raise fail(f"{name} {path}: no such file")


OUTPUT_SUFFIXES = (".csv", ".jsonl", ".ndjson", ".json")


def _output_file(name: str, path: Path, suffixes: tuple[str, ...] = OUTPUT_SUFFIXES) -> None:
    """Refuse an output path before any work is done, not after."""
    if str(path) == "-":
        return
    if path.is_dir():
        raise fail(f"{name} {path}: is a directory; give a file name")
    suffix = path.suffixes[-2] if path.suffix == ".gz" and len(path.suffixes) > 1 else path.suffix
    if suffix.lower() not in suffixes:
        raise fail(f"{name} {path}: give a file ending in {', '.join(suffixes)} (optionally .gz)")
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise fail(f"{name} {path}: {parent} is a file, not a folder")


def _mapping(path: Path | None) -> SourceMapping | None:
    if path is None:
        return None
    _input_file("--mapping", path)
    try:
        return load_mapping(path)
    except MappingError as exc:
        err.print(str(exc), highlight=False, markup=False, soft_wrap=True)
        raise fail(f"the mapping {path} is not valid") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"--mapping {path}: cannot read it ({exc})") from None


def _load(leads: Path | None, events: Path | None, mapping: Path | None) -> Loaded:
    if leads is None and events is None:
        raise fail("give --leads, --events or both")
    _input_file("--leads", leads)
    _input_file("--events", events)
    parsed = _mapping(mapping)
    try:
        with err.status("reading...") as status:
            loaded = load_sources(
                leads, events, parsed, lambda n: status.update(f"reading... {n:,} rows")
            )
    except (ValueError, OSError) as exc:
        raise fail(str(exc)) from None
    if leads is not None and loaded.leads_read == 0 and loaded.errors:
        _report_errors(loaded)
        raise fail(f"--leads {leads}: no lead could be read")
    return loaded


def _as_of(at: str | None, loaded: Loaded) -> datetime:
    """--at, else the latest event read, but never later than now."""
    if at is not None:
        try:
            return parse_timestamp(at)
        except ValueError as exc:
            raise fail(f"--at: {exc}") from None
    now = datetime.now(UTC)
    latest = loaded.inputs.latest
    if latest is None:
        return now
    if latest > now:
        future = sum(e.timestamp > now for es in loaded.inputs.events.values() for e in es)
        err.print(
            f"warning: {plural(future, 'event')} dated after now are ignored; "
            "give --at to score at another time",
            highlight=False,
        )
        return now
    return latest


def _report_errors(loaded: Loaded, limit: int = 20) -> None:
    for error in loaded.errors[:limit]:
        err.print(f"skipped {error}", highlight=False, markup=False, soft_wrap=True)
    if len(loaded.errors) > limit:
        err.print(f"... and {len(loaded.errors) - limit:,} more unreadable rows")
    if loaded.duplicate_leads:
        err.print(
            f"note: {plural(loaded.duplicate_leads, 'lead row')} repeated an earlier lead id; "
            "later rows override earlier attributes",
            highlight=False,
        )


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
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="reference (any input) or fast (Segment JSON lines only, "
            "for millions of events; same numbers).",
        ),
    ] = "reference",
) -> None:
    """Score leads from files and write each lead's stage, score and reasons."""
    _output_file("--out", out_file)
    if outcomes is None and (outcome_id or outcome_column):
        raise fail("--outcome-id and --outcome-column need --outcomes FILE")
    _input_file("--outcomes", outcomes)
    scoring_model = _model(model)
    if engine == "fast":
        if leads is not None or mapping is not None or events is None or outcomes is not None:
            raise fail("--engine fast reads --events (Segment JSON lines) alone")
        _input_file("--events", events)
        _score_fast(scoring_model, events, at, out_file)
        return
    if engine != "reference":
        raise fail(f"--engine must be reference or fast, got {engine!r}")
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
        f"scored {plural(written, 'lead')} ({plural(loaded.inputs.event_count, 'event')}) as of "
        f"{as_of:%Y-%m-%d %H:%M} UTC with {scoring_model.name}@{scoring_model.version}; "
        f"{plural(len(loaded.errors), 'unreadable row')}; wrote {out_file}",
        highlight=False,
    )
    err.print(stage_table(table))


def _score_fast(model: ScoringModel, events: Path, at: str | None, out_file: Path) -> None:
    moment = None
    if at is not None:
        try:
            moment = parse_timestamp(at)
        except ValueError as exc:
            raise fail(f"--at: {exc}") from None
    table = StageTable()
    try:
        with err.status("loading and scoring in DuckDB..."):
            as_of, rows = bulk_score(model, events, moment)
    except Exception as exc:  # DuckDB reports unreadable input as its own errors
        raise fail(f"--events {events}: {exc}") from None

    def counted() -> Iterator[dict[str, object]]:
        for row in rows:
            table.add(str(row["stage"]), None)
            yield row

    written = write_results(out_file, counted())
    err.print(
        f"scored {plural(written, 'lead')} as of {as_of:%Y-%m-%d %H:%M} UTC with "
        f"{model.name}@{model.version} (fast engine); wrote {out_file}",
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
    leads: Annotated[
        int, typer.Option("--leads", min=1, max=100_000_000, help="Number of people.")
    ] = 1000,
    days: Annotated[int, typer.Option("--days", min=1, max=3650, help="Days of history.")] = 90,
    seed: Annotated[
        int,
        typer.Option("--seed", min=0, max=2**63 - 1, help="Random seed (same seed, same file)."),
    ] = 1,
    events_per_lead: Annotated[
        float,
        typer.Option("--events-per-lead", min=1.0, max=1000.0, help="Average events per person."),
    ] = 20.0,
) -> None:
    """Write a deterministic event history of a B2B agency's website, with ground truth."""
    _output_file("--out", out_file, (".jsonl", ".ndjson"))
    _output_file("--truth", truth, (".csv",))
    if out_file.resolve() == truth.resolve():
        raise fail("--out and --truth must be different files")
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
        f"wrote {plural(summary.events, 'message')} for {plural(summary.leads, 'person', 'people')}"
        f" to {out_file} and the truth to {truth} ({summary.converted:,} bought)\n{mix}",
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


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseOpt = None) -> None:
    """Create the database or bring it to the latest schema."""
    url = resolve_database_url(database_url)
    try:
        upgrade(url)
    except Exception as exc:  # a driver's own error: bad URL, refused connection, ...
        raise fail(f"cannot upgrade {url}: {exc}") from None
    out.print(f"database at the latest schema: {url}", highlight=False)


@keys_app.command("create")
def keys_create(
    kind: Annotated[str, typer.Option("--kind", help="write or admin.")],
    database_url: DatabaseOpt = None,
) -> None:
    """Create an API key; the key is printed once, alone on the last line."""
    if kind not in ("write", "admin"):
        raise fail(f"--kind must be write or admin, got {kind!r}")
    url = resolve_database_url(database_url)
    try:
        upgrade(url)
        engine = create_engine(url)
        with engine.begin() as conn:
            record, key = Repository(conn).create_api_key(
                "write" if kind == "write" else "admin", datetime.now(UTC)
            )
        engine.dispose()
    except Exception as exc:  # a driver's own error: bad URL, refused connection, ...
        raise fail(f"cannot create a key in {url}: {exc}") from None
    out.print(f"created {kind} key {record.id} in {url}; it is shown only now:", highlight=False)
    print(key)


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    database_url: DatabaseOpt = None,
    model: ModelOpt = None,
) -> None:
    """Run the HTTP API: Segment-compatible /v1 endpoints and the lead API."""
    import uvicorn

    from leadgate.web.app import create_app
    from leadgate.web.settings import Settings

    _model(model)  # refuse a bad model before listening
    try:
        application = create_app(Settings(database_url=database_url, model_path=model))
    except Exception as exc:  # a driver's own error: bad URL, refused connection, ...
        raise fail(f"cannot start: {exc}") from None
    out.print(f"leadgate listening on http://{host}:{port} (API docs at /docs)", highlight=False)
    uvicorn.run(application, host=host, port=port, log_level="warning")


def main() -> None:
    try:
        app()
    except BrokenPipeError:
        sys.stderr.close()
