"""leadgate commands: ``learn``, a points model learned from known outcomes.

Reads leads and events from files (outcomes from a column or a file) or, with neither,
the database's leads with outcomes (dispositions and imported outcomes), learns a
scorecard from 70% of them and reports it against the base model on the other 30%.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Column, Table

from leadgate.adapters.model_source import default_model_text
from leadgate.cli import (
    DatabaseOpt,
    EventsOpt,
    LeadsOpt,
    MappingOpt,
    ModelOpt,
    _input_file,
    _load,
    _mapping,
    _model,
    _open_engine,
    _output_file,
    _report_errors,
    app,
    err,
    fail,
    out,
)
from leadgate.domain.conditions import parse_duration
from leadgate.domain.model import ScoringModel
from leadgate.learning.dataset import Example
from leadgate.learning.features import LeakageError
from leadgate.learning.scorecard import Target
from leadgate.services.learning import (
    LearnResult,
    Settings,
    fmt,
    labelled_examples,
    learn,
    unknown_note,
)


def _names(values: list[str] | None) -> list[str]:
    return [n.strip() for v in values or [] for n in v.split(",") if n.strip()]


@app.command("learn")
def learn_command(
    out_file: Annotated[Path, typer.Option("--out", "-o", help="The draft model file (YAML).")],
    leads: LeadsOpt = None,
    events: EventsOpt = None,
    mapping: MappingOpt = None,
    outcome: Annotated[
        str | None,
        typer.Option(
            "--outcome",
            help="The outcome: a column of the leads (e.g. Converted) or a CSV of outcomes "
            "(lead id, outcome or just the good leads, date).",
        ),
    ] = None,
    model: ModelOpt = None,
    target: Annotated[
        str,
        typer.Option(
            "--target",
            help="precision:P (lowest SQL threshold with precision >= P) or top:N "
            "(N handovers a week; needs dated events).",
        ),
    ] = "precision:0.8",
    test_share: Annotated[
        float, typer.Option("--test-share", help="Share of leads held out to measure.")
    ] = 0.3,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split and the folds.")] = 7,
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude",
            help="Attributes known only after the outcome (comma-separated, repeatable): "
            "never learned from, besides the mapping's post_outcome columns.",
        ),
    ] = None,
    attributes: Annotated[
        list[str] | None,
        typer.Option(
            "--attributes",
            help="Learn fit rules from these attributes only (default: all but identifiers).",
        ),
    ] = None,
    penalty: Annotated[str, typer.Option("--penalty", help="l2 (default) or l1.")] = "l2",
    pairs: Annotated[
        int,
        typer.Option("--pairs", min=0, help="Try pairs of the N strongest attribute rules."),
    ] = 25,
    min_support: Annotated[
        int,
        typer.Option("--min-support", min=1, help="Leads needed on each side of a learned rule."),
    ] = 30,
    min_points: Annotated[
        int,
        typer.Option(
            "--min-points",
            min=0,
            help="Leave out learned rules worth fewer points (a shorter file).",
        ),
    ] = 1,
    decide_within: Annotated[
        str | None,
        typer.Option(
            "--decide-within",
            help="Take features at most this long after a lead's first event (e.g. 1d, 7d).",
        ),
    ] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Learn a points model from known outcomes and write it as a draft model file."""
    _output_file("--out", out_file, (".yaml", ".yml"))
    try:
        goal = Target.parse(target)
    except ValueError as exc:
        raise fail(f"--target: {exc}") from None
    if not 0 < test_share < 1:
        raise fail(f"--test-share must be between 0 and 1, got {test_share:g}")
    if penalty not in ("l1", "l2"):
        raise fail(f"--penalty must be l1 or l2, got {penalty!r}")
    within = None
    if decide_within is not None:
        try:
            within = parse_duration(decide_within)
        except ValueError as exc:
            raise fail(f"--decide-within: {exc}") from None
    scoring_model = _model(model)
    base_text = default_model_text() if model is None else model.read_text(encoding="utf-8")
    post_outcome = _names(exclude)
    if leads is None and events is None:
        if outcome is not None or mapping is not None:
            raise fail("--outcome and --mapping go with --leads or --events")
        examples = _database_examples(scoring_model, database_url)
        source = "the database's outcomes (dispositions and imports)"
    else:
        if outcome is None:
            raise fail("give --outcome COLUMN or --outcome FILE")
        parsed = _mapping(mapping)
        if parsed is not None:
            post_outcome += list(parsed.post_outcome)
            named = parsed.outcome.column if parsed.outcome is not None else None
            if named is not None and outcome != named and not Path(outcome).is_file():
                raise fail(f"--outcome {outcome!r}: the mapping's outcome column is {named!r}")
        loaded = _load(leads, events, mapping)
        _report_errors(loaded)
        if Path(outcome).suffix in (".csv", ".gz"):
            _input_file("--outcome", Path(outcome))
        try:
            labelled = labelled_examples(scoring_model, loaded, outcome, post_outcome, within)
        except (ValueError, OSError) as exc:
            raise fail(str(exc)) from None
        if note := unknown_note(labelled.unknown):
            err.print(f"[yellow]warning:[/yellow] {note}", highlight=False)
        examples, post_outcome, source = (
            labelled.examples,
            list(labelled.post_outcome),
            labelled.outcome_from,
        )
        if labelled.days_to_good is not None:
            source += f"; good outcomes came a median {labelled.days_to_good:.0f} days after"
            source += " the first event"
    settings = Settings(
        target=goal,
        test_share=test_share,
        seed=seed,
        penalty=penalty,
        attributes=_names(attributes) or None,
        pairs=pairs,
        min_support=min_support,
        min_points=min_points,
    )
    try:
        with err.status("learning..."):
            result = learn(scoring_model, base_text, examples, settings, post_outcome)
    except LeakageError as exc:
        raise fail(str(exc)) from None
    except ValueError as exc:
        raise fail(str(exc), code=1) from None
    try:
        out_file.write_text(result.text, encoding="utf-8")
    except OSError as exc:
        raise fail(f"--out {out_file}: {exc.strerror or exc}") from None
    _print_report(result, source, out_file)


def _database_examples(scoring_model: ScoringModel, database_url: str | None) -> list[Example]:
    from leadgate.services.outcomes import database_examples

    engine = _open_engine(database_url, must_exist=True)
    try:
        with engine.connect() as conn, err.status("reading outcomes..."):
            return database_examples(conn, scoring_model, datetime.now(UTC))
    finally:
        engine.dispose()


def _print_report(result: LearnResult, source: str, out_file: Path) -> None:
    r = result
    out.print(
        f"outcomes: {source}; train {r.train:,} leads ({r.train_good:,} good), "
        f"held out {r.test:,} ({r.test_good:,} good)",
        highlight=False,
    )
    fs = r.features
    out.print(
        f"features: {len(fs.features)} ({sum(f.kind == 'candidate' for f in fs.features)} "
        f"proposed from attributes); {r.regression.penalty.upper()} strength C="
        f"{r.regression.strength:g} chosen by cross-validation",
        highlight=False,
    )
    if fs.refused:
        out.print(f"never used (post-outcome): {', '.join(fs.refused)}", highlight=False)
    for name, why in fs.skipped.items():
        out.print(f"not used: {name}: {why}", highlight=False)
    cal = r.calibration
    below = r.choice.mql_below_floor
    floored = "" if below is None else f" (raised from {below:.0f}: never below 0)"
    out.print(
        f"draft: {len(r.draft.rules)} rules, {len(r.draft.fit)} fit rules "
        f"({r.rules_written} learned); MQL at {r.draft.thresholds.mql:g}{floored}, SQL at "
        f"{r.draft.thresholds.sql:g} ({r.choice.note}); probability = 1 / (1 + exp(-("
        f"{cal.slope:.4g} * score + {cal.intercept:.4g})))",
        highlight=False,
    )
    table = Table(
        Column("model", no_wrap=True),
        "AUC",
        "acc.",
        "SQL",
        "SQL prec.",
        "SQL rec.",
        "MQL+ prec.",
        "MQL+ rec.",
        box=box.SIMPLE,
        title="On the held-out leads (acc.: probability >= 0.5)",
    )
    for m in r.metrics:
        table.add_row(
            m.name,
            fmt(m.auc, False),
            fmt(m.accuracy),
            f"{m.sql_handovers:,}",
            fmt(m.sql_precision),
            fmt(m.sql_recall),
            fmt(m.mql_precision),
            fmt(m.mql_recall),
        )
    out.print(table)
    out.print(
        "base: the --model; learned: the draft (integer points, scored by the evaluator); "
        "logistic: the unrounded regression it came from",
        highlight=False,
    )
    for what, v in (
        ("leads scoring at least the base SQL threshold", r.volume),
        ("SQL handovers (with an intent action)", r.handovers),
    ):
        gain = f" ({v.gain * 100:+.1f} points)" if v.gain is not None else ""
        out.print(
            f"{what}, at the base model's volume: base {v.base_handovers:,}, precision "
            f"{fmt(v.base_precision)}; learned {v.learned_handovers:,}, precision "
            f"{fmt(v.learned_precision)}{gain}",
            highlight=False,
        )
    strongest = sorted([*r.draft.rules, *r.draft.fit], key=lambda rule: -abs(rule.points))[:10]
    out.print(
        "strongest rules: " + ", ".join(f"{x.id} {x.points:+g}" for x in strongest),
        highlight=False,
    )
    for warning in r.warnings:
        out.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    out.print(f"[green]wrote[/green] {out_file} (check it: leadgate model check {out_file})")
