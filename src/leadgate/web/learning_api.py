"""Learning from sales (admin key): outcomes in and out, and the rule report.

``POST /api/outcomes`` takes one outcome, a list of them, or ``{"items": [...]}``.
Each item names its lead (``lead_id`` or ``email``), says good or bad (``outcome``:
good/bad, won/lost, yes/no, 1/0, true/false) and when it became known (``at``, from
1990 on), with an optional ``reason`` and ``note`` (text of at most 1,000 characters).
Good items are stored (once per lead, source and date: one that says otherwise
replaces the stored outcome, counted as updated); each bad one is answered with its
index and what is wrong. Items of one request for the same lead and date that
contradict each other are answered with a warning: the last one is kept.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from leadgate.learning.effectiveness import report_document, rule_report
from leadgate.services.outcomes import (
    OutcomeEntry,
    Saved,
    database_examples,
    entry,
    json_kind,
    store_outcomes,
)
from leadgate.services.sources import contradiction, said, shown
from leadgate.store.outcome_store import OUTCOME_SOURCES, OutcomeStore
from leadgate.store.repository import Repository
from leadgate.web.http import ApiError, parse_json, read_body
from leadgate.web.service import Service

ITEM_FIELDS = ("lead_id", "email", "outcome", "at", "reason", "note", "actor")
MAX_ITEMS = 10_000  # and at most the request limit (500 KB), whichever comes first
MAX_ACTOR = 200


def router(service: Service) -> APIRouter:
    api = APIRouter(tags=["learning"])

    @api.post("/api/outcomes")
    async def post_outcomes(request: Request) -> JSONResponse:
        """Store outcomes; 200 when at least one item was stored, updated or already
        there (errors and warnings listed by index), 422 when none was."""
        key = await service.admin(request)
        body = await read_body(request, service.settings.batch_limit_bytes, "one request")
        items = _items(parse_json(body))
        now = datetime.now(UTC)
        default_actor = f"admin key #{key.id}"
        errors: list[dict[str, Any]] = []
        checked: list[tuple[int, OutcomeEntry]] = []
        for index, item in enumerate(items):
            try:
                checked.append((index, _entry(item, now)))
            except ValueError as exc:
                errors.append({"index": index, "error": str(exc)})

        def store(repo: Repository) -> list[Saved]:
            entries = [e for _, e in checked]
            return store_outcomes(repo.conn, entries, "api", default_actor, now)

        saved = await service.in_thread(lambda: service.write(store)) if checked else []
        counts = dict.fromkeys(("imported", "updated", "already", "overridden"), 0)
        warnings: list[dict[str, Any]] = []
        for (index, e), result in zip(checked, saved, strict=True):
            if result.error is not None:
                errors.append({"index": index, "error": result.error})
                continue
            counts[result.status] += 1
            if result.contradicts is not None:
                earlier_index, earlier = checked[result.contradicts]
                message = contradiction(
                    e.who,
                    e.at,
                    said(e.good, e.reason, e.note),
                    f"item {earlier_index}",
                    said(earlier.good, earlier.reason, earlier.note),
                )
                warnings.append({"index": index, "warning": message})
        errors.sort(key=lambda e: int(e["index"]))
        doc = {"received": len(items), **counts, "errors": errors, "warnings": warnings}
        stored = counts["imported"] + counts["updated"] + counts["already"]
        return JSONResponse(doc, 200 if stored else 422)

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
        return JSONResponse({"items": [o.document() for o in rows]})

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
            raise ApiError(
                400, f"items: expected a list of outcomes, got {json_kind(doc)}", parameter="items"
            )
    items = doc if isinstance(doc, list) else [doc]
    if not items:
        raise ApiError(400, "no outcomes given", parameter="body")
    if len(items) > MAX_ITEMS:
        raise ApiError(413, f"at most {MAX_ITEMS:,} outcomes in one request", parameter="body")
    return items


def _entry(item: Any, now: datetime) -> OutcomeEntry:
    if not isinstance(item, dict):
        raise ValueError(f"expected an object, got {json_kind(item)}")
    unknown = sorted(set(item) - set(ITEM_FIELDS))
    if unknown:
        named = ", ".join(shown(u, 40) if len(u) > 40 else u for u in unknown[:5])
        more = f" and {len(unknown) - 5:,} more" if len(unknown) > 5 else ""
        raise ValueError(f"unknown field(s) {named}{more} (known: {', '.join(ITEM_FIELDS)})")
    if item.get("lead_id") is not None and item.get("email") is not None:
        raise ValueError("give lead_id or email, not both")
    name = "lead_id" if item.get("lead_id") is not None else "email"
    who = item.get(name)
    if who is not None and (isinstance(who, bool) or not isinstance(who, str | int)):
        raise ValueError(f"{name}: expected text, got {json_kind(who)}")
    actor = item.get("actor")
    if actor is not None and (not isinstance(actor, str) or len(actor) > MAX_ACTOR):
        raise ValueError(f"actor: expected text of at most {MAX_ACTOR} characters")
    checked = entry(
        who, item.get("outcome"), item.get("at"), now, item.get("reason"), item.get("note")
    )
    return replace(checked, actor=(actor or "").strip() or None)
