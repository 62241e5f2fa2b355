"""Use cases: scoring model versions. Draft, backtest, publish, roll back.

A model file is saved as a *draft* under its ``name`` and ``version``; a saved version
is never changed (a different text needs a new version). *Publishing* a version makes
it the live model: who and why are recorded, every lead is decided again under it
(``rescore``), and the leads that reach the handover stage only because of the new
model are handed over as the publisher chooses (``handover.HANDOVER_POLICIES``: all,
only those with an intent action within the intent window, or none), so a publish
never floods sales with stale leads. A *rollback* makes the version that was live
before the last publish live again, recorded the same way.

The live model is the database's latest published one; ``leadgate serve`` registers
the model it starts with as the first published version when there is none, and
``LiveModel`` notices a publish made elsewhere (by the command line, or another
server) within a second.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine

from leadgate.adapters.model_source import default_model_text, read_model
from leadgate.domain.events import Event, Lead
from leadgate.domain.model import ScoringModel
from leadgate.domain.model_file import load_model
from leadgate.domain.outcomes import Outcome
from leadgate.domain.yamldoc import SpecError, parse_yaml
from leadgate.services.handover import HANDOVER_POLICIES
from leadgate.services.rescore import RescoreSummary, rescore
from leadgate.store import transact
from leadgate.store.model_store import ModelStore, Publication
from leadgate.store.records import ModelVersion
from leadgate.store.repository import Repository

log = logging.getLogger("leadgate")
CHECK_EVERY_SECONDS = 1.0
SERVE_ACTOR = "leadgate serve"


class ModelError(Exception):
    """A request about model versions that cannot be done; ``status`` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def model_of(version: ModelVersion) -> ScoringModel:
    return load_model(version.text, f"{version.name}@{version.version}")


def label(version: ModelVersion | ScoringModel) -> str:
    return f"{version.name}@{version.version}"


# -- reading ----------------------------------------------------------------------------


def live_stack(publications: list[Publication]) -> list[tuple[str, str]]:
    """The versions live in turn: a publish pushes, a rollback pops; the last is live."""
    stack: list[tuple[str, str]] = []
    for p in publications:
        if p.action == "publish":
            stack.append((p.name, p.version))
        elif stack:
            stack.pop()
    return stack


def live_version(conn: Connection) -> ModelVersion | None:
    """The live model's saved version, or None when nothing was ever published."""
    stack = live_stack(ModelStore(conn).publications())
    if not stack:
        return None
    return Repository(conn).get_model_version(*stack[-1])


def find(conn: Connection, ref: str) -> ModelVersion:
    """A saved version by ``name@version`` or by ``version`` alone (when unambiguous)."""
    name, _, version = ref.rpartition("@")
    found = ModelStore(conn).with_version(version, name or None)
    if not found:
        raise ModelError(404, f"no saved model version {ref!r} (see: leadgate model list)")
    if len(found) > 1:
        names = ", ".join(label(v) for v in found)
        raise ModelError(409, f"{ref!r} names more than one model ({names}): give name@version")
    return found[0]


@dataclass(frozen=True)
class Listing:
    versions: list[ModelVersion]
    publications: list[Publication]
    live: tuple[str, str] | None


def listing(engine: Engine) -> Listing:
    with engine.connect() as conn:
        store = ModelStore(conn)
        pubs = store.publications()
        stack = live_stack(pubs)
        return Listing(store.versions(), pubs, stack[-1] if stack else None)


def version_document(v: ModelVersion, live: tuple[str, str] | None) -> dict[str, Any]:
    return {
        "name": v.name,
        "version": v.version,
        "status": v.status,
        "live": live == (v.name, v.version),
        "created_at": v.created_at.isoformat(),
        "published_by": v.published_by,
        "why": v.why,
        "published_at": None if v.published_at is None else v.published_at.isoformat(),
    }


def publication_document(p: Publication) -> dict[str, Any]:
    return {
        "id": p.id,
        "model": f"{p.name}@{p.version}",
        "action": p.action,
        "by": p.actor,
        "why": p.why,
        "handover": p.handover,
        "at": p.at.isoformat(),
    }


# -- changing ---------------------------------------------------------------------------


DRAFT_KEYS = {
    "name": "the model's name, e.g. `name: webstudio`",
    "version": 'this version of it, e.g. `version: "2"`',
}


@dataclass(frozen=True)
class Draft:
    """A saved draft, and whether this call saved it (False: the same text was saved)."""

    version: ModelVersion
    new: bool


def _missing_keys(text: str, source: str) -> list[str]:
    """A problem for each of ``name:`` and ``version:`` the model text lacks: a saved
    version is known by them (a file only scored may go without)."""
    data = parse_yaml(text, source).data
    if not isinstance(data, dict):
        return []
    return [
        f"{source}:1: a draft needs `{key}:` ({what}), and the model has none"
        for key, what in DRAFT_KEYS.items()
        if data.get(key) is None or not str(data[key]).strip()
    ]


def save_draft(engine: Engine, text: str, source: str, at: datetime | None = None) -> Draft:
    """Save a model file as a draft; the same text saved again is the same draft (``new``
    False). Raises SpecError for an invalid model or one without ``name:`` or
    ``version:``, ModelError when its version is taken by another text."""
    try:
        model = load_model(text, source)
    except SpecError as exc:
        raise SpecError(exc.problems + _missing_keys(text, source)) from None
    missing = _missing_keys(text, source)
    if missing:
        raise SpecError(missing)
    moment = at or datetime.now(UTC)

    def work(conn: Connection) -> Draft:
        repo = Repository(conn)
        held = repo.get_model_version(model.name, model.version)
        if held is not None:
            if held.text != text:
                raise ModelError(
                    409,
                    f"{label(model)} is already saved with another text: "
                    "give the changed model a new `version:`",
                )
            return Draft(held, new=False)
        repo.save_model_draft(model.name, model.version, text, moment)
        saved = repo.get_model_version(model.name, model.version)
        assert saved is not None
        return Draft(saved, new=True)

    return transact(engine, work)


def _check(by: str, why: str, handover: str) -> None:
    if not by.strip():
        raise ModelError(422, "say who publishes (--by)")
    if not why.strip():
        raise ModelError(422, "say why (--why)")
    if handover not in HANDOVER_POLICIES:
        raise ModelError(422, f"handover: one of {', '.join(HANDOVER_POLICIES)}, not {handover!r}")


@dataclass(frozen=True)
class Published:
    version: ModelVersion
    previous: ModelVersion | None
    publication: int
    rescored: RescoreSummary


def publish(
    engine: Engine,
    ref: str,
    by: str,
    why: str,
    handover: str,
    at: datetime | None = None,
    on_progress: Callable[[RescoreSummary], None] | None = None,
) -> Published:
    """Make a saved version live, then decide every lead again under it. On a database
    where nothing was published yet, the built-in model (the one every command uses
    without ``--model``) is recorded as the first published version, to roll back to."""
    _check(by, why, handover)
    moment = at or datetime.now(UTC)
    with engine.connect() as conn:
        find(conn, ref)  # an unknown version is refused before anything is written
        first = ModelStore(conn).last_publication() is None
    if first:
        ensure_live(engine, read_model(None), default_model_text(), moment, "leadgate")

    def work(conn: Connection) -> tuple[ModelVersion, ModelVersion | None, int]:
        store = ModelStore(conn)
        store.lock_publications()
        chosen = find(conn, ref)
        model_of(chosen)  # refuse a saved text that no longer loads
        previous = live_version(conn)
        if previous is not None and (previous.name, previous.version) == (
            chosen.name,
            chosen.version,
        ):
            raise ModelError(409, f"{label(chosen)} is already the live model")
        if chosen.status == "draft":
            Repository(conn).publish_model(chosen.name, chosen.version, by, why, moment)
        else:
            store.mark_published(chosen.name, chosen.version, by, why, moment)
        number = store.record(chosen, "publish", by, why, handover, moment)
        now_live = Repository(conn).get_model_version(chosen.name, chosen.version)
        assert now_live is not None
        return now_live, previous, number

    chosen, previous, number = transact(engine, work)
    summary = rescore(
        engine, model_of(chosen), moment, on_progress=on_progress, handover_policy=handover
    )
    return Published(chosen, previous, number, summary)


def rollback(
    engine: Engine,
    by: str,
    why: str,
    handover: str = "recent-intent",
    at: datetime | None = None,
    on_progress: Callable[[RescoreSummary], None] | None = None,
) -> Published:
    """Make the version live before the last publish live again; decide every lead again."""
    _check(by, why, handover)
    moment = at or datetime.now(UTC)

    def work(conn: Connection) -> tuple[ModelVersion, ModelVersion | None, int]:
        store = ModelStore(conn)
        store.lock_publications()
        stack = live_stack(store.publications())
        if len(stack) < 2:
            raise ModelError(409, "no earlier published version to roll back to")
        repo = Repository(conn)
        back = repo.get_model_version(*stack[-2])
        current = repo.get_model_version(*stack[-1])
        assert back is not None
        number = store.record(back, "rollback", by, why, handover, moment)
        return back, current, number

    back, current, number = transact(engine, work)
    summary = rescore(
        engine, model_of(back), moment, on_progress=on_progress, handover_policy=handover
    )
    return Published(back, current, number, summary)


def ensure_live(
    engine: Engine,
    model: ScoringModel,
    text: str,
    at: datetime | None = None,
    actor: str = SERVE_ACTOR,
) -> ScoringModel:
    """The live model; with none published yet, ``model`` (from ``text``) is saved and
    recorded as the first published version (no rescore: nothing changes)."""
    moment = at or datetime.now(UTC)

    def work(conn: Connection) -> ScoringModel:
        store = ModelStore(conn)
        store.lock_publications()
        held = live_version(conn)
        if held is not None:
            return model_of(held)
        repo = Repository(conn)
        saved = repo.get_model_version(model.name, model.version)
        why = f"the model in use before any publish ({model.source})"
        if saved is None:
            repo.save_model_draft(model.name, model.version, text, moment)
        saved = repo.get_model_version(model.name, model.version)
        assert saved is not None
        if saved.status == "draft":
            repo.publish_model(model.name, model.version, actor, why, moment)
        store.record(saved, "publish", actor, why, None, moment)
        return model_of(saved)

    return transact(engine, work)


class LiveModel:
    """The live model for a running service: the database is asked at most once every
    ``every`` seconds whether a publish or rollback happened (one indexed max())."""

    def __init__(self, engine: Engine, model: ScoringModel, every: float = CHECK_EVERY_SECONDS):
        self.engine = engine
        self.every = every
        self._model = model
        self._seen: int | None = None
        self._checked = float("-inf")
        self._lock = threading.Lock()

    def get(self) -> ScoringModel:
        if time.monotonic() - self._checked < self.every:
            return self._model
        with self._lock:
            if time.monotonic() - self._checked >= self.every:
                self._refresh()
        return self._model

    def _refresh(self) -> None:
        try:
            with self.engine.connect() as conn:
                latest = ModelStore(conn).last_publication()
                if latest is not None and latest != self._seen:
                    held = live_version(conn)
                    if held is not None:
                        self._model = model_of(held)
                    self._seen = latest
        except Exception:  # the database is away: keep serving the model we have
            log.exception("could not check the published model; keeping %s", label(self._model))
        self._checked = time.monotonic()


# -- backtests on the database's history ------------------------------------------------


def database_history(
    engine: Engine,
) -> tuple[dict[str, Lead], dict[str, list[Event]], dict[str, Outcome]]:
    """Every stored lead, its events, and the outcomes known (dispositions and imports)."""
    from leadgate.services.outcomes import known_outcomes

    leads: dict[str, Lead] = {}
    events: dict[str, list[Event]] = {}
    with engine.connect() as conn:
        repo = Repository(conn)
        after = ""
        while ids := repo.lead_ids_after(after, 2000):
            leads.update({k: lead for k, (lead, _, _) in repo.load_lead_states(ids).items()})
            events.update(repo.load_events_of(ids))
            after = ids[-1]
        outcomes = known_outcomes(conn)
    return leads, events, outcomes


def backtest_version(
    engine: Engine,
    ref: str,
    against: ScoringModel | None = None,
    reference: bool = False,
) -> dict[str, Any]:
    """A saved version against the live model (or ``against``) on the stored history."""
    from leadgate.learning.replay import backtest_history

    with engine.connect() as conn:
        draft = model_of(find(conn, ref))
        live = live_version(conn)
    current = against or (model_of(live) if live is not None else read_model(None))
    leads, events, outcomes = database_history(engine)
    return backtest_history(current, draft, leads, events, outcomes, reference=reference)
