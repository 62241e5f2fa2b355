"""Handovers for reps and managers (admin key): lists, one handover, and outcomes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from leadgate.domain.lifecycle import NEXT_OUTCOMES, OUTCOMES, REJECT_REASONS
from leadgate.services.handover import HandoverError, handover_document, record_outcome
from leadgate.store.handover_store import HandoverStore
from leadgate.web.http import ApiError
from leadgate.web.service import Service

HandoverId = Annotated[int, Path(ge=1, le=2**63 - 1, description="the handover's number")]


class OutcomeBody(BaseModel):
    """What sales says about a handover."""

    model_config = ConfigDict(extra="forbid")

    outcome: str = Field(description=f"one of: {', '.join(OUTCOMES)}")
    reason: str | None = Field(
        None, description=f"required for rejected: {', '.join(REJECT_REASONS)}"
    )
    note: str | None = Field(None, max_length=2000)
    actor: str | None = Field(None, max_length=200, description="who (default: the key)")


def router(service: Service) -> APIRouter:
    api = APIRouter(tags=["handovers"])

    @api.get("/api/handovers")
    async def list_handovers(
        request: Request,
        rep: str | None = Query(None, description="only this rep's handovers"),
        status: str | None = Query(None, description="comma list, e.g. open,contacted"),
        overdue: bool = Query(False, description="only open handovers past their deadline"),
        limit: int = Query(100, ge=1, le=1000),
    ) -> JSONResponse:
        """Handovers, the longest waiting first: a rep's queue or a manager's view."""
        await service.admin(request)
        statuses = [s.strip() for s in (status or "").split(",") if s.strip()]
        unknown = [s for s in statuses if s not in NEXT_OUTCOMES]
        if unknown:
            known = ", ".join(NEXT_OUTCOMES)
            raise ApiError(422, f"status: unknown {', '.join(unknown)} (known: {known})")
        now = datetime.now(UTC)
        items = await service.in_thread(
            lambda: service.read(
                lambda repo: HandoverStore(repo.conn).listing(
                    rep, statuses, now if overdue else None, limit
                )
            )
        )
        return JSONResponse({"items": [_listed(h, now) for h in items]})

    @api.get("/api/handovers/{handover_id}")
    async def get_handover(handover_id: HandoverId, request: Request) -> JSONResponse:
        await service.admin(request)

        def work(repo: Any) -> dict[str, Any] | None:
            store = HandoverStore(repo.conn)
            handover = store.get(handover_id)
            if handover is None:
                return None
            doc = handover_document(handover)
            doc["breakdown"] = dict(handover.breakdown)
            doc["dispositions"] = [
                {
                    "outcome": d.outcome,
                    "reason": d.reason,
                    "note": d.note,
                    "actor": d.actor,
                    "at": d.at.isoformat(),
                }
                for d in store.dispositions(handover_id)
            ]
            return doc

        found = await service.in_thread(lambda: service.read(work))
        if found is None:
            raise ApiError(404, f"no handover {handover_id}")
        return JSONResponse(found)

    @api.post("/api/handovers/{handover_id}/outcome")
    async def post_outcome(
        handover_id: HandoverId, body: OutcomeBody, request: Request
    ) -> JSONResponse:
        """Record what happened: contacted, accepted, rejected (with a reason),
        opportunity, won or lost. A rejection sends the lead back to nurturing."""
        key = await service.admin(request)
        actor = (body.actor or "").strip() or f"admin key #{key.id}"
        now = datetime.now(UTC)
        try:
            updated = await service.in_thread(
                lambda: service.write(
                    lambda repo: record_outcome(
                        repo.conn, handover_id, body.outcome, body.reason, body.note, actor, now
                    )
                )
            )
        except HandoverError as exc:
            raise ApiError(exc.status, str(exc)) from None
        return JSONResponse(handover_document(updated))

    return api


def _listed(handover: Any, now: datetime) -> dict[str, Any]:
    doc = handover_document(handover)
    doc["overdue"] = (
        handover.status == "open" and handover.due_at is not None and handover.due_at < now
    )
    doc["waiting_hours"] = round((now - handover.created_at).total_seconds() / 3600, 2)
    doc["score"] = handover.breakdown.get("total")
    return doc
