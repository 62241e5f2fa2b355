"""The `leadgate` command: parse, call a use case, print."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

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
webhooks_app = typer.Typer(
    help="Outbound webhook subscriptions: who gets which lifecycle events.",
    no_args_is_help=True,
)
app.add_typer(webhooks_app, name="webhooks")
outbox_app = typer.Typer(
    help="The outbox: notifications waiting, delivered or dead; re-drive dead ones.",
    no_args_is_help=True,
)
app.add_typer(outbox_app, name="outbox")
team_app = typer.Typer(
    help="The sales team: reps, routing rules and the first-contact SLA.", no_args_is_help=True
)
app.add_typer(team_app, name="team")
handovers_app = typer.Typer(
    help="Handovers to sales: list them and record what happened.", no_args_is_help=True
)
app.add_typer(handovers_app, name="handovers")

DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="LEADGATE_DATABASE_URL",
        help="SQLAlchemy URL (default: sqlite:///./leadgate.db).",
    ),
]

# Piped into a file or a log, tables are laid out 160 columns wide rather than rich's
# 80, so their figures are not cut short; COLUMNS overrides it.
PIPED_WIDTH = 160


def _console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    terminal = stream is not None and stream.isatty()
    width = None if terminal or os.environ.get("COLUMNS") else PIPED_WIDTH
    return Console(stderr=stderr, soft_wrap=True, width=width)


out = _console()
err = _console(stderr=True)


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


def _database_model(path: Path | None, engine: Engine) -> ScoringModel:
    """``--model`` when given; else the database's live (latest published) model, else
    the built-in one (see ``leadgate model publish``)."""
    if path is not None:
        return _model(path)
    from leadgate.services.models import live_version, model_of

    with engine.connect() as conn:
        held = live_version(conn)
    return model_of(held) if held is not None else _model(None)


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
    if events is not None and loaded.inputs.event_count == 0:
        from_events = [e for e in loaded.errors if e.source == str(events)]
        if from_events and not loaded.inputs.leads:
            _report_errors(loaded)
            hint = " (is it a leads file? pass that with --leads)" if leads is None else ""
            raise fail(f"--events {events}: no event could be read{hint}")
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
    chance = scoring_model.calibration
    probability = chance.probability(breakdown.total) if chance is not None else None
    text = explain_text(breakdown, decision, lead_events, probability=probability)
    out.print(text, highlight=False, markup=False)


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
        raise fail(f"cannot upgrade {_shown(url)}: {exc}") from None
    out.print(f"database at the latest schema: {_shown(url)}", highlight=False)


@keys_app.command("create")
def keys_create(
    kind: Annotated[str, typer.Option("--kind", help="write or admin.")],
    database_url: DatabaseOpt = None,
) -> None:
    """Create an API key; the key is printed once, alone on the last line."""
    if kind not in ("write", "admin"):
        raise fail(f"--kind must be write or admin, got {kind!r}")
    engine = _open_engine(database_url)
    try:
        with engine.begin() as conn:
            record, key = Repository(conn).create_api_key(
                "write" if kind == "write" else "admin", datetime.now(UTC)
            )
    except Exception as exc:  # a driver's own error: a refused connection, ...
        raise fail(f"cannot create a key in {_shown(str(engine.url))}: {exc}") from None
    finally:
        engine.dispose()
    out.print(
        f"created {kind} key {record.id} in {_shown(str(engine.url))}; it is shown only now:",
        highlight=False,
    )
    print(key)


@team_app.command("load")
def team_load(
    file: Annotated[Path, typer.Argument(help="The team file (YAML), see docs/team.md.")],
    database_url: DatabaseOpt = None,
    model: ModelOpt = None,
    by: Annotated[str, typer.Option("--by", help="Who loads it (kept with it).")] = "cli",
) -> None:
    """Check a team file and make it the active sales team (rule groups are checked
    against the scoring model's groups)."""
    from leadgate.services.team import load_team

    _input_file("team file", file)
    groups = _model(model).groups
    engine = _open_engine(database_url)
    try:
        with engine.begin() as conn:
            config = load_team(
                conn, file.read_text("utf-8"), str(file), by, datetime.now(UTC), groups
            )
    except SpecError as exc:
        for problem in exc.problems:
            err.print(problem, highlight=False, markup=False)
        raise fail(f"{file}: {plural(len(exc.problems), 'problem')}; nothing loaded") from None
    finally:
        engine.dispose()
    teams = ", ".join(f"{t.name} ({len(t.members)})" for t in config.teams)
    out.print(
        f"loaded {file} into {engine.url.render_as_string(hide_password=True)}: "
        f"{plural(len(config.reps), 'rep')} in teams {teams}; "
        f"{plural(len(config.rules), 'rule')}",
        highlight=False,
    )


@team_app.command("show")
def team_show(database_url: DatabaseOpt = None) -> None:
    """Show the active sales team: routing rules, then each rep as routing sees them."""
    from leadgate.services.team import NoTeam, active_team, active_team_file, reps_view

    url = resolve_database_url(database_url)
    engine = _open_engine(url)
    try:
        with engine.connect() as conn:
            stored, config = active_team_file(conn), active_team(conn)
            reps = reps_view(conn) if config is not None else []
    except Exception as exc:  # a driver's own error: a refused connection, ...
        raise fail(f"cannot read the team from {_shown(url)}: {exc}") from None
    finally:
        engine.dispose()
    if stored is None or config is None:
        raise fail(str(NoTeam()), 1)
    out.print(
        f"team file #{stored.id}, loaded {stored.loaded_at:%Y-%m-%d %H:%M} UTC by "
        f"{stored.loaded_by}; first contact within {_hours(config.first_contact)} of "
        f"working time; then {config.escalation.escalate}; fallback queue "
        f"{config.fallback_queue}",
        highlight=False,
    )
    owner = "on" if config.account_owner else "off"
    out.print(f"account owner first: {owner}; default team: {config.default_team}", highlight=False)
    for index, rule in enumerate(config.rules, 1):
        target = f"team {rule.team}" if rule.team else f"rep {rule.rep}"
        out.print(f"  {index}. {rule.id}: {rule.describe()} -> {target}", highlight=False)
    for rep in reps:
        state = "available" if rep["available"] else "AWAY"
        hours = "; ".join(f"{d} {h}" for d, h in rep["hours"].items())
        changed = f" (changed: {rep['overridden']})" if rep["overridden"] else ""
        out.print(
            f"{rep['id']:<12} {rep['team']:<10} {state:<9} capacity {rep['capacity']:<3} "
            f"{rep['time_zone']:<18} {hours}{changed}",
            highlight=False,
        )


def _hours(value: timedelta) -> str:
    from leadgate.domain.conditions import format_duration

    return format_duration(value)


@app.command("import")
def import_events(
    events: Annotated[
        Path, typer.Option("--events", help="Segment JSON lines (.jsonl or .jsonl.gz).")
    ],
    database_url: DatabaseOpt = None,
    model: ModelOpt = None,
    chunk: Annotated[
        int,
        typer.Option(
            "--chunk", min=1, max=1_000_000, help="Messages per transaction (default 1000)."
        ),
    ] = 1000,
    at: Annotated[
        str | None,
        typer.Option("--at", help="Decision time, ISO 8601 (default: now, as for live events)."),
    ] = None,
) -> None:
    """Bulk import a Segment history into the database, through the live ingest path."""
    # Imported here so the other commands do not load the store and ingest code.
    from sqlalchemy.engine import make_url

    from leadgate.services.bulk_import import ImportFailed
    from leadgate.services.bulk_import import import_events as run_import

    _input_file("--events", events)
    scoring_model = _model(model)
    moment = None
    if at is not None:
        try:
            moment = parse_timestamp(at)
        except ValueError as exc:
            raise fail(f"--at: {exc}") from None
    url = resolve_database_url(database_url)
    shown_url = make_url(url).render_as_string(hide_password=True)
    shown = 0

    def on_error(problem: object) -> None:
        nonlocal shown
        shown += 1
        if shown <= 20:
            err.print(f"skipped {problem}", highlight=False, markup=False, soft_wrap=True)

    engine = _open_engine(url)
    scoring_model = _database_model(model, engine)
    try:
        with err.status("importing...") as status:
            summary = run_import(
                engine,
                scoring_model,
                events,
                chunk=chunk,
                now=moment,
                on_error=on_error,
                on_progress=lambda s: status.update(f"importing... {s.messages:,} messages"),
            )
    except (ImportFailed, ValueError) as exc:
        raise fail(str(exc), code=1) from None
    finally:
        engine.dispose()
    if summary.error_count > 20:
        err.print(f"... and {summary.error_count - 20:,} more unreadable lines", highlight=False)
    stages = ", ".join(f"{stage} {n:,}" for stage, n in summary.stages.items()) or "none"
    if summary.conflicts:
        err.print(
            f"warning: {plural(summary.conflicts, 'message id')} came again with other "
            "content; the first was kept (message ids must be unique per event)",
            highlight=False,
        )
    out.print(
        f"imported {events} into {shown_url} with {scoring_model.name}@{scoring_model.version}: "
        f"{plural(summary.messages, 'message')}, {summary.stored:,} stored, "
        f"{plural(summary.duplicates, 'duplicate')}, {plural(summary.error_count, 'error')}; "
        f"{summary.seconds:.1f} s, {summary.events_per_second:,.0f} events/s\n"
        f"leads per stage: {stages}",
        highlight=False,
    )


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    database_url: DatabaseOpt = None,
    model: ModelOpt = None,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo",
            help="On an empty database, load a simulated agency's last 90 days first; "
            "print a demo write key and admin key.",
        ),
    ] = False,
    demo_leads: Annotated[
        int, typer.Option("--demo-leads", min=10, max=100_000, help="People in the demo.")
    ] = 1500,
    demo_mail_port: Annotated[
        int,
        typer.Option(
            "--demo-mail-port",
            min=1,
            max=65535,
            help="The demo's local SMTP server (when LEADGATE_SMTP_URL is not set).",
        ),
    ] = 8025,
    demo_webhook_port: Annotated[
        int,
        typer.Option(
            "--demo-webhook-port", min=1, max=65535, help="The demo's local webhook receiver."
        ),
    ] = 8026,
    rescore_every: Annotated[
        float,
        typer.Option(
            "--rescore-every",
            min=0,
            help="Seconds between passes that decide every lead again, so stored scores "
            "show their decay (0: off).",
        ),
    ] = 3600.0,
) -> None:
    """Run the HTTP API: Segment-compatible /v1 endpoints, webhooks and the lead API."""
    import uvicorn

    from leadgate.web.app import create_app
    from leadgate.web.settings import Settings

    scoring_model = _model(model)  # refuse a bad model before listening
    url = resolve_database_url(database_url)
    try:
        settings = Settings(database_url=url, model_path=model, rescore_every_seconds=rescore_every)
        application = create_app(settings)
    except Exception as exc:  # a driver's own error: bad URL, refused connection, ...
        raise fail(f"cannot start: {exc}") from None
    live = application.state.service.model
    if model is not None and (live.name, live.version) != (
        scoring_model.name,
        scoring_model.version,
    ):
        err.print(
            f"warning: serving the database's published model {live.name}@{live.version}, "
            f"not {model} (to use it: leadgate model draft {model}, then leadgate model publish)",
            highlight=False,
        )
    base = f"http://{host}:{port}"
    _check_port(host, port)
    sinks: list[Any] = []
    if demo:
        webhook = _demo_sinks(sinks, demo_mail_port, demo_webhook_port)
        _load_demo(application.state.engine, scoring_model, base, demo_leads, webhook)
    out.print(f"leadgate listening on {base} (API docs at {base}/docs)", highlight=False)
    try:
        uvicorn.run(application, host=host, port=port, log_level="warning")
    finally:
        for sink in sinks:
            sink.stop()


def _check_port(host: str, port: int) -> None:
    """Refuse, before loading anything, an address that cannot be listened on."""
    import socket

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise fail(f"cannot listen on {host}:{port} ({exc.strerror or exc}); try --port") from None


DEMO_WEBHOOK_SECRET = "demo-webhook-secret"


def _demo_sinks(sinks: list[Any], mail_port: int, webhook_port: int) -> tuple[str, str]:
    """Start the demo's mail catcher (unless LEADGATE_SMTP_URL names a server) and
    webhook inbox; the inbox's (url, secret)."""
    import os

    from leadgate.notify.demo_sinks import MailCatcher, WebhookInbox

    folder = Path("out/demo")
    try:
        if not os.environ.get("LEADGATE_SMTP_URL"):
            mail = MailCatcher(folder / "mail", port=mail_port).start()
            sinks.append(mail)
            os.environ["LEADGATE_SMTP_URL"] = mail.url  # read by the outbox worker
            out.print(
                f"emails to reps: {folder / 'mail'}/*.eml (a local SMTP server, {mail.url})",
                highlight=False,
            )
        inbox = WebhookInbox(folder / "webhooks.jsonl", DEMO_WEBHOOK_SECRET, port=webhook_port)
        sinks.append(inbox.start())
    except OSError as exc:
        for sink in sinks:
            sink.stop()
        raise fail(
            f"cannot start the demo's local mail or webhook server ({exc}); "
            "choose free ports with --demo-mail-port and --demo-webhook-port"
        ) from None
    out.print(
        f"signed webhooks: {folder / 'webhooks.jsonl'} (a local receiver, {inbox.url})",
        highlight=False,
    )
    return inbox.url, DEMO_WEBHOOK_SECRET


def _load_demo(
    engine: Engine,
    scoring_model: ScoringModel,
    base: str,
    people: int,
    webhook: tuple[str, str] | None = None,
) -> None:
    from leadgate.services.demo import load_demo

    with err.status(f"loading the demo: {people:,} simulated people...") as status:
        summary = load_demo(
            engine,
            scoring_model,
            Path("out/demo"),
            leads=people,
            webhook=webhook,
            on_progress=lambda s: status.update(
                f"loading the demo: {s.messages:,} messages imported"
            ),
        )
    stages = ", ".join(f"{stage} {n:,}" for stage, n in summary.stages.items())
    if summary.loaded and summary.imported is not None:
        out.print(
            f"demo loaded: {summary.imported.messages:,} messages in "
            f"{summary.imported.seconds:.1f} s; leads per stage: {stages}",
            highlight=False,
        )
    else:
        out.print(f"the database already holds leads ({stages}); nothing loaded", highlight=False)
    out.print(f"demo write key (send events):  {summary.write_key}", highlight=False)
    out.print(f"demo admin key (read leads):   {summary.admin_key}", highlight=False)
    for stage, lead_id in summary.example_leads.items():
        out.print(
            f"  a lead in {stage}: curl -H 'Authorization: Bearer {summary.admin_key}' "
            f"{base}/api/leads/{lead_id}",
            highlight=False,
            soft_wrap=True,
        )


@app.command()
def rescore(
    database_url: DatabaseOpt = None,
    model: ModelOpt = None,
    at: Annotated[
        str | None, typer.Option("--at", help="Decision time, ISO 8601 (default: now).")
    ] = None,
) -> None:
    """Decide every stored lead again (after a model change, or to bring decay up to date).

    Leads only move forward; scores and the ledger are brought up to date."""
    from leadgate.services.rescore import rescore as run_rescore

    scoring_model = _model(model)
    moment = None
    if at is not None:
        try:
            moment = parse_timestamp(at)
        except ValueError as exc:
            raise fail(f"--at: {exc}") from None
    engine = _open_engine(database_url, must_exist=True)
    scoring_model = _database_model(model, engine)
    try:
        with err.status("rescoring...") as status:
            summary = run_rescore(
                engine,
                scoring_model,
                moment,
                on_progress=lambda s: status.update(f"rescoring... {s.leads:,} leads"),
            )
    finally:
        engine.dispose()
    moved = ", ".join(f"{n:,} to {stage}" for stage, n in sorted(summary.moved.items()))
    out.print(
        f"rescored {summary.leads:,} leads with {scoring_model.name}@{scoring_model.version} "
        f"in {summary.seconds:.1f} s: {summary.rescored:,} scores changed; "
        f"stage changes: {moved or 'none'}",
        highlight=False,
    )


def _outbox_engine(database_url: str | None) -> Engine:
    return _open_engine(database_url)


@app.command()
def worker(
    database_url: DatabaseOpt = None,
    interval: Annotated[
        float, typer.Option("--interval", min=0.01, help="Seconds between polls when idle.")
    ] = 0.5,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, max=1000, help="Sends at once.")
    ] = 32,
    batch: Annotated[
        int, typer.Option("--batch", min=1, max=10_000, help="Claimed at once.")
    ] = 100,
    model: ModelOpt = None,
) -> None:
    """Deliver the outbox (webhooks, email, chat) until stopped (Ctrl-C or SIGTERM); every
    minute chase overdue handovers (a reminder, then an escalation) and delete messages
    delivered more than 30 days ago.

    Any number may run against PostgreSQL: each message is claimed by one worker."""
    import signal
    import threading

    from leadgate.notify.worker import DeliveryReport, WorkerConfig, default_worker_id, run_worker
    from leadgate.services.models import LiveModel
    from leadgate.services.upkeep import upkeep

    _model(model)  # refuse a bad model file before starting

    try:
        config = WorkerConfig(concurrency=concurrency)
    except ValueError as exc:  # a bad LEADGATE_SMTP_URL
        raise fail(str(exc)) from None
    engine = _outbox_engine(database_url)
    # --model, or the database's live model, following publishes while the worker runs
    live = LiveModel(engine, _database_model(model, engine))
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    worker_id = default_worker_id()
    smtp = f"{config.smtp.host}:{config.smtp.port}" if config.smtp else "none (emails wait)"
    err.print(f"worker {worker_id} delivering; SMTP server: {smtp}", highlight=False)

    def report(r: DeliveryReport) -> None:
        if r.retrying or r.dead:
            err.print(
                f"{r.claimed} claimed: {r.delivered} delivered, {r.retrying} to retry, "
                f"{r.dead} dead; last error {r.errors[-1] if r.errors else '-'}",
                highlight=False,
            )

    try:
        total = run_worker(
            engine,
            stop,
            interval,
            config,
            worker_id,
            batch,
            report,
            periodic=lambda: upkeep(engine, live.get()),
        )
    finally:
        engine.dispose()
    out.print(
        f"worker stopped: {total.delivered:,} delivered, {total.retrying:,} to retry, "
        f"{total.dead:,} dead",
        highlight=False,
    )


@webhooks_app.command("add")
def webhooks_add(
    url: Annotated[str, typer.Argument(help="Where to POST (http:// or https://).")],
    secret: Annotated[str, typer.Option("--secret", help="Signs each delivery (HMAC-SHA256).")],
    events: Annotated[
        str, typer.Option("--events", help="Comma-separated, e.g. lead.sql,handover.assigned.")
    ],
    database_url: DatabaseOpt = None,
) -> None:
    """Subscribe a URL to lifecycle events; prints the subscription id."""
    from leadgate.services import outbox as uc

    engine = _outbox_engine(database_url)
    try:
        with engine.begin() as conn:
            sub = uc.add_subscription(conn, url, secret, events.split(","), datetime.now(UTC))
    except uc.InvalidSubscription as exc:
        raise fail(str(exc)) from None
    finally:
        engine.dispose()
    out.print(f"subscription {sub.id}: {sub.url} <- {', '.join(sub.events)}", highlight=False)


@webhooks_app.command("list")
def webhooks_list(database_url: DatabaseOpt = None) -> None:
    """The active subscriptions (id, URL, events); secrets are not shown."""
    from leadgate.services import outbox as uc

    engine = _outbox_engine(database_url)
    try:
        with engine.connect() as conn:
            subs = uc.list_subscriptions(conn)
    finally:
        engine.dispose()
    for sub in subs:
        print(f"{sub.id}\t{sub.url}\t{','.join(sub.events)}")
    if not subs:
        err.print("no webhook subscriptions", highlight=False)


@webhooks_app.command("remove")
def webhooks_remove(
    subscription_id: Annotated[int, typer.Argument(help="The subscription's id.")],
    database_url: DatabaseOpt = None,
) -> None:
    """Stop deliveries to a subscription (undelivered messages to it die)."""
    from leadgate.services import outbox as uc

    engine = _outbox_engine(database_url)
    try:
        with engine.begin() as conn:
            removed = uc.remove_subscription(conn, subscription_id)
    finally:
        engine.dispose()
    if not removed:
        raise fail(f"no active webhook subscription {subscription_id}", 1)
    out.print(f"subscription {subscription_id} removed", highlight=False)


@outbox_app.command("list")
def outbox_list(
    status: Annotated[
        str | None, typer.Option("--status", help="pending, delivered or dead.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100_000)] = 100,
    database_url: DatabaseOpt = None,
) -> None:
    """Messages by id: id, status, channel, event, attempts, idempotency key, last error;
    then the count per status on stderr."""
    from leadgate.store.outbox_store import STATUSES, OutboxStore

    if status is not None and status not in STATUSES:
        raise fail(f"--status must be one of {', '.join(STATUSES)}, got {status!r}")
    engine = _outbox_engine(database_url)
    try:
        with engine.connect() as conn:
            store = OutboxStore(conn)
            messages = store.messages(status, limit)
            counts = store.counts()
    finally:
        engine.dispose()
    for m in messages:
        print(
            f"{m.id}\t{m.status}\t{m.channel}\t{m.event}\t{m.attempts}\t"
            f"{m.idempotency_key}\t{m.last_error or ''}"
        )
    err.print(", ".join(f"{s} {n:,}" for s, n in counts.items()), highlight=False)


@outbox_app.command("redrive")
def outbox_redrive(
    ids: Annotated[list[int] | None, typer.Argument(help="Dead messages to send again.")] = None,
    all_dead: Annotated[bool, typer.Option("--all-dead", help="Every dead message.")] = False,
    database_url: DatabaseOpt = None,
) -> None:
    """Put dead messages back to pending, due now, with the same idempotency key."""
    from leadgate.store.outbox_store import OutboxStore

    if bool(ids) == all_dead:
        raise fail("give message ids or --all-dead (one of the two)")
    engine = _outbox_engine(database_url)
    try:
        with engine.begin() as conn:
            n = OutboxStore(conn).redrive(None if all_dead else ids, datetime.now(UTC))
    finally:
        engine.dispose()
    out.print(f"{plural(n, 'dead message')} back to pending", highlight=False)


@outbox_app.command("purge")
def outbox_purge(
    older_than: Annotated[
        str, typer.Option("--older-than", help="Delivered at least this long ago (e.g. 7d).")
    ] = "30d",
    database_url: DatabaseOpt = None,
) -> None:
    """Delete delivered messages (workers do this every minute for those over 30 days);
    pending and dead messages are never deleted."""
    from leadgate.domain.conditions import parse_duration
    from leadgate.store.outbox_store import OutboxStore

    try:
        age = parse_duration(older_than)
    except ValueError as exc:
        raise fail(f"--older-than: {exc}") from None
    engine = _outbox_engine(database_url)
    try:
        with engine.begin() as conn:
            n = OutboxStore(conn).purge_delivered(datetime.now(UTC) - age)
    finally:
        engine.dispose()
    out.print(f"deleted {plural(n, 'delivered message')} older than {older_than}", highlight=False)


def _shown(url: str) -> str:
    """A database URL fit to print: its password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: nothing in it to hide
        return url


def _open_engine(database_url: str | None, must_exist: bool = False) -> Engine:
    """The migrated database; ``must_exist``: a SQLite file that is not there is a
    mistyped URL, not a new database (for commands that only read or change leads)."""
    url = resolve_database_url(database_url)
    parsed = make_url(url)
    shown = parsed.render_as_string(hide_password=True)
    if must_exist and parsed.get_backend_name() == "sqlite":
        path = parsed.database or ""
        if path not in ("", ":memory:") and not Path(path).is_file():
            raise fail(f"no database at {path} (check --database-url or LEADGATE_DATABASE_URL)")
    try:
        upgrade(url)
        return create_engine(url)
    except Exception as exc:  # a driver's own error: bad URL, refused connection, ...
        raise fail(f"cannot open {shown}: {exc}") from None


@handovers_app.command("list")
def handovers_list(
    database_url: DatabaseOpt = None,
    rep: Annotated[str | None, typer.Option("--rep", help="Only this rep's.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="Comma list: open,contacted,accepted,...")
    ] = None,
    overdue: Annotated[bool, typer.Option("--overdue", help="Only those past due.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 100,
) -> None:
    """Handovers, the longest waiting first."""
    from leadgate.domain.lifecycle import NEXT_OUTCOMES
    from leadgate.store.handover_store import HandoverStore

    statuses = [x.strip() for x in (status or "").split(",") if x.strip()]
    unknown = [x for x in statuses if x not in NEXT_OUTCOMES]
    if unknown:
        raise fail(f"--status: unknown {', '.join(unknown)} (known: {', '.join(NEXT_OUTCOMES)})")
    engine = _open_engine(database_url, must_exist=True)
    now = datetime.now(UTC)
    try:
        with engine.connect() as conn:
            rows = HandoverStore(conn).listing(rep, statuses, now if overdue else None, limit)
    finally:
        engine.dispose()
    if not rows:
        out.print("no handovers", highlight=False)
    for h in rows:
        late = " OVERDUE" if h.status == "open" and h.due_at and h.due_at < now else ""
        due = f"due {h.due_at:%Y-%m-%d %H:%M} UTC" if h.due_at else "no deadline"
        who = h.rep_id or f"queue {h.queue}"
        out.print(
            f"#{h.id} lead {h.lead_id} -> {who}: {h.status}, {due}{late} "
            f"(score {h.breakdown.get('total', 0):.1f}, since {h.created_at:%Y-%m-%d %H:%M})",
            highlight=False,
            markup=False,
        )


@handovers_app.command("outcome")
def handovers_outcome(
    handover_id: Annotated[
        int, typer.Argument(min=1, max=2**63 - 1, help="The handover's number (#N in the list).")
    ],
    outcome: Annotated[
        str,
        typer.Option("--outcome", help="contacted, accepted, rejected, opportunity, won or lost."),
    ],
    reason: Annotated[
        str | None,
        typer.Option(
            "--reason",
            help="For rejected: not_a_fit, not_ready, no_budget, spam, competitor, "
            "wrong_contact or other.",
        ),
    ] = None,
    note: Annotated[str | None, typer.Option("--note", help="Free text.")] = None,
    by: Annotated[str, typer.Option("--by", help="Who says so.")] = "cli",
    database_url: DatabaseOpt = None,
) -> None:
    """Record what happened with a handover (a rejection sends the lead back to nurturing)."""
    from leadgate.services.handover import HandoverError, record_outcome
    from leadgate.store import transact

    engine = _open_engine(database_url, must_exist=True)
    now = datetime.now(UTC)
    try:
        updated = transact(
            engine,
            lambda conn: record_outcome(conn, handover_id, outcome, reason, note, by, now),
        )
    except HandoverError as exc:
        raise fail(str(exc)) from None
    finally:
        engine.dispose()
    out.print(
        f"handover #{updated.id} (lead {updated.lead_id}) is now {updated.status}",
        highlight=False,
    )


def main() -> None:
    try:
        app()
    except BrokenPipeError:
        sys.stderr.close()


# Command groups kept in their own modules register on ``app`` and ``model_app``.
import leadgate.commands.backtest  # noqa: E402
import leadgate.commands.learn  # noqa: E402
import leadgate.commands.models  # noqa: E402
import leadgate.commands.outcomes  # noqa: E402,F401
