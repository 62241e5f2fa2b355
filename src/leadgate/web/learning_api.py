"""Learning from sales (admin key): outcomes in and out, and the rule report.

``POST /api/outcomes`` takes one outcome, a list of them, or ``{"items": [...]}``.
Each item names its lead (``lead_id`` or ``email``), says good or bad (``outcome``:
good/bad, won/lost, yes/no, 1/0, true/false) and when it became known (``at``), with
an optional ``reason`` and ``note``. Good items are stored (once per lead, source and
date); each bad one is answered with its index and what is wrong.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from leadgate.learning.effectiveness import report_document, rule_report
from leadgate.services.outcomes import OutcomeEntry, database_examples, entry, save_outcomes
from leadgate.store.outcome_store import OUTCOME_SOURCES, OutcomeStore, StoredOutcome
from leadgate.store.repository import Repository
from leadgate.web.http import ApiError, parse_json, read_body
from leadgate.web.service import Service

ITEM_FIELDS = ("lead_id", "email", "outcome", "at", "reason", "note", "actor")
MAX_ITEMS = 10_000


def router(service: Service) -> APIRouter:
    api = APIRouter(tags=["learning"])

    @api.post("/api/outcomes")
    async def post_outcomes(request: Request) -> JSONResponse:
        """Store outcomes; 200 when at least one item was good (errors listed by index),
        422 when none was."""
        key = await service.admin(request)
        body = await read_body(request, service.settings.batch_limit_bytes, "one request")
        items = _items(parse_json(body))
        now = datetime.now(UTC)
        default_actor = f"admin key #{key.id}"
        errors: list[dict[str, Any]] = []
        checked: list[tuple[int, str, OutcomeEntry]] = []
        for index, item in enumerate(items):
            try:
                actor, checked_entry = _entry(item, now, default_actor)
            except ValueError as exc:
                errors.append({"index": index, "error": str(exc)})
                continue
            checked.append((index, actor, checked_entry))

        def store(repo: Repository) -> dict[int, str]:
            """Each checked item's result, by its index: imported, already, or an error."""
            results: dict[int, str] = {}
            for actor in sorted({a for _, a, _ in checked}):
                mine = [(i, e) for i, a, e in checked if a == actor]
                done = save_outcomes(repo.conn, [e for _, e in mine], "api", actor, now)
                results.update((i, r) for (i, _), r in zip(mine, done, strict=True))
            return results

        statuses = await service.in_thread(lambda: service.write(store)) if checked else {}
        errors += [
            {"index": i, "error": r}
            for i, r in statuses.items()
            if r not in ("imported", "already")
        ]
        errors.sort(key=lambda e: int(e["index"]))
        imported = sum(r == "imported" for r in statuses.values())
        already = sum(r == "already" for r in statuses.values())
        doc = {"received": len(items), "imported": imported, "already": already, "errors": errors}
        return JSONResponse(doc, 200 if imported + already else 422)

    @api.get("/api/outcomes")
    async def list_outcomes(
        request: Request,
        lead_id: str | None = Query(None, description="only this lead's outcomes"),
        source: str | None = Query(None, description="import or api"),
        limit: int = Query(100, ge=1, le=1000),
    ) -> JSONResponse:
        """Imported and posted outcomes, the latest first."""
        await service.admin(request)
        if source is not None and source not in OUTCOME_SOURCES:
            raise ApiError(422, f"source: {source!r} is not one of {', '.join(OUTCOME_SOURCES)}")
        rows = await service.in_thread(
            lambda: service.read(
                lambda repo: OutcomeStore(repo.conn).listing(lead_id, source, limit)
            )
        )
        return JSONResponse({"items": [_document(o) for o in rows]})

    @api.get("/api/rules/report")
    async def rules_report(request: Request) -> JSONResponse:
        """Each rule of the live model against the known outcomes (dispositions and
        stored outcomes), the rules whose points disagree most with the evidence first."""
        await service.admin(request)
        model, now = service.model, datetime.now(UTC)
        examples = await service.in_thread(
            lambda: service.read(lambda repo: database_examples(repo.conn, model, now))
        )
        doc = report_document(rule_report(examples, model))
        return JSONResponse({"model": f"{model.name}@{model.version}", **doc})

    return api


def _items(doc: Any) -> list[Any]:
    if isinstance(doc, dict) and "items" in doc:
        doc = doc["items"]
        if not isinstance(doc, list):
            raise ApiError(400, "items: expected a list of outcomes", parameter="items")
    items = doc if isinstance(doc, list) else [doc]
    if not items:
        raise ApiError(400, "no outcomes given", parameter="body")
    if len(items) > MAX_ITEMS:
        raise ApiError(413, f"at most {MAX_ITEMS:,} outcomes in one request", parameter="body")
    return items


def _entry(item: Any, now: datetime, default_actor: str) -> tuple[str, OutcomeEntry]:
    if not isinstance(item, dict):
        raise ValueError(f"expected an object, got {type(item).__name__}")
    unknown = sorted(set(item) - set(ITEM_FIELDS))
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(unknown)} (known: {', '.join(ITEM_FIELDS)})")
    if item.get("lead_id") is not None and item.get("email") is not None:
        raise ValueError("give lead_id or email, not both")
    who = item.get("lead_id") if item.get("lead_id") is not None else item.get("email")
    if who is not None and not isinstance(who, str | int):
        raise ValueError(f"lead_id/email: expected text, got {type(who).__name__}")
    actor = item.get("actor")
    if actor is not None and (not isinstance(actor, str) or len(actor) > 200):
        raise ValueError("actor: expected text of at most 200 characters")
    checked = entry(
        who, item.get("outcome"), item.get("at"), now, item.get("reason"), item.get("note")
    )
    return (actor or "").strip() or default_actor, checked


def _document(o: StoredOutcome) -> dict[str, Any]:
    return {
        "id": o.id,
        "lead_id": o.lead_id,
        "good": o.good,
        "at": o.at.isoformat(),
        "reason": o.reason,
        "source": o.source,
        "note": o.note,
        "actor": o.actor,
        "imported_at": o.imported_at.isoformat(),
    }
