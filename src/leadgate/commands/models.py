"""leadgate commands: ``model draft|list|backtest|publish|rollback``, the versions of the
scoring model kept in the database (``services.models``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.status import Status

from leadgate.cli import (
    DatabaseOpt,
    _input_file,
    _open_engine,
    err,
    fail,
    model_app,
    out,
)
from leadgate.commands.backtest import JsonOutOpt, ReferenceOpt, show
from leadgate.domain.yamldoc import SpecError
from leadgate.services.handover import HANDOVER_POLICIES
from leadgate.services.models import (
    ModelError,
    Published,
    backtest_version,
    label,
    listing,
)
from leadgate.services.models import publish as publish_version
from leadgate.services.models import rollback as rollback_version
from leadgate.services.models import save_draft as save_model_draft
from leadgate.services.rescore import RescoreSummary

ByOpt = Annotated[str, typer.Option("--by", help="Who does it (kept with the version).")]
WhyOpt = Annotated[str, typer.Option("--why", help="Why (kept with the version).")]
POLICY_HELP = (
    "Leads that reach the handover stage only because of this change: all (hand them "
    "all over), recent-intent (only those with an intent action within the model's "
    "intent window) or none (they keep the stage, without a handover)."
)


@model_app.command("draft")
def model_draft(
    file: Annotated[Path, typer.Argument(help="The model file (YAML) to save as a draft.")],
    database_url: DatabaseOpt = None,
) -> None:
    """Save a model file as a draft version (its `name:` and `version:`, both required,
    come from the file); the same file again is the same draft."""
    _input_file("FILE", file)
    engine = _open_engine(database_url)
    try:
        draft = save_model_draft(engine, file.read_text(encoding="utf-8"), str(file))
    except SpecError as exc:
        for problem in exc.problems:
            err.print(problem, highlight=False, markup=False, soft_wrap=True)
        raise fail(f"{len(exc.problems)} problem(s) in {file}") from None
    except ModelError as exc:
        raise fail(str(exc)) from None
    finally:
        engine.dispose()
    saved = draft.version
    done = "saved" if draft.new else "already saved (the same text)"
    out.print(
        f"{done} {label(saved)} ({saved.status}); next: leadgate model backtest {saved.version}",
        highlight=False,
        markup=False,
    )


@model_app.command("list")
def model_list(database_url: DatabaseOpt = None) -> None:
    """The saved versions (the live one marked) and every publish and rollback."""
    engine = _open_engine(database_url, must_exist=True)
    try:
        found = listing(engine)
    finally:
        engine.dispose()
    if not found.versions:
        out.print("no saved model versions (save one: leadgate model draft FILE)")
        return
    width = max(len(label(v)) for v in found.versions)
    out.print("versions:")
    for v in found.versions:
        live = " (live)" if found.live == (v.name, v.version) else ""
        when = f", published {v.published_at:%Y-%m-%d %H:%M}" if v.published_at else ""
        out.print(
            f"  {label(v).ljust(width)}  {v.status:<9} saved {v.created_at:%Y-%m-%d %H:%M}"
            f"{when}{live}",
            highlight=False,
            markup=False,
        )
    if found.publications:
        out.print("publications:")
        for p in found.publications:
            policy = f" (handover: {p.handover})" if p.handover else ""
            out.print(
                f"  #{p.id} {p.at:%Y-%m-%d %H:%M} {p.action} {p.name}@{p.version} "
                f"by {p.actor}: {p.why}{policy}",
                highlight=False,
                markup=False,
            )


@model_app.command("backtest")
def model_backtest(
    version: Annotated[str, typer.Argument(help="A saved version: VERSION or NAME@VERSION.")],
    database_url: DatabaseOpt = None,
    json_out: JsonOutOpt = None,
    reference: ReferenceOpt = False,
) -> None:
    """Replay the database's history under a saved version and under the live model."""
    engine = _open_engine(database_url, must_exist=True)
    try:
        with err.status("replaying the stored history..."):
            result = backtest_version(engine, version, reference=reference)
    except ModelError as exc:
        raise fail(str(exc)) from None
    finally:
        engine.dispose()
    show(result, json_out)


def _report(done: Published, verb: str) -> None:
    moved = ", ".join(f"{n:,} to {s}" for s, n in sorted(done.rescored.moved.items()))
    before = f" (was {label(done.previous)})" if done.previous is not None else ""
    out.print(
        f"{verb} {label(done.version)}{before}; rescored {done.rescored.leads:,} leads in "
        f"{done.rescored.seconds:.1f} s: {done.rescored.rescored:,} scores changed; "
        f"stage changes: {moved or 'none'}",
        highlight=False,
    )


def _progress(status: Status) -> Callable[[RescoreSummary], None]:
    def update(summary: RescoreSummary) -> None:
        status.update(f"rescoring... {summary.leads:,} leads")

    return update


@model_app.command("publish")
def model_publish(
    version: Annotated[str, typer.Argument(help="A saved version: VERSION or NAME@VERSION.")],
    by: ByOpt,
    why: WhyOpt,
    handover: Annotated[str, typer.Option("--handover", help=f"Required. {POLICY_HELP}")],
    database_url: DatabaseOpt = None,
) -> None:
    """Make a saved version the live model and decide every lead again under it."""
    if handover not in HANDOVER_POLICIES:
        raise fail(f"--handover: one of {', '.join(HANDOVER_POLICIES)}, not {handover!r}")
    engine = _open_engine(database_url, must_exist=True)
    try:
        with err.status("publishing...") as status:
            done = publish_version(
                engine, version, by, why, handover, on_progress=_progress(status)
            )
    except ModelError as exc:
        raise fail(str(exc)) from None
    finally:
        engine.dispose()
    _report(done, "published")


@model_app.command("rollback")
def model_rollback(
    by: ByOpt,
    why: WhyOpt,
    handover: Annotated[str, typer.Option("--handover", help=POLICY_HELP)] = "recent-intent",
    database_url: DatabaseOpt = None,
) -> None:
    """Make the version live before the last publish live again; decide every lead again."""
    if handover not in HANDOVER_POLICIES:
        raise fail(f"--handover: one of {', '.join(HANDOVER_POLICIES)}, not {handover!r}")
    engine = _open_engine(database_url, must_exist=True)
    try:
        with err.status("rolling back...") as status:
            done = rollback_version(engine, by, why, handover, on_progress=_progress(status))
    except ModelError as exc:
        raise fail(str(exc)) from None
    finally:
        engine.dispose()
    _report(done, "rolled back to")
