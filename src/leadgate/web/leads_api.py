"""The lead API for admin keys: read leads and act on them.

``GET /api/leads`` lists, ``GET /api/leads/{id}`` explains one lead,
``POST /api/leads/{id}/stage`` is a person's override, ``GET /api/leads/{id}/export``
and ``DELETE /api/leads/{id}`` serve privacy requests. Every route checks the admin
key before it reads anything, so a refused call learns nothing. Answers that
carry personal data are sent with ``Cache-Control: no-store``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from leadgate.services import leads as uc
from leadgate.store.records import StageChange
from leadgate.web.http import ApiError, parse_json, read_body
from leadgate.web.leads import change_view, erasure_view, lead_view, page_view
from leadgate.web.service import Service

LIST_PARAMETERS = frozenset({"stage", "min_score", "email", "q", "limit", "cursor"})
OVERRIDE_FIELDS = frozenset({"stage", "reason", "actor"})
OVERRIDE_LIMIT_BYTES = 16 * 1024
NO_STORE = {"Cache-Control": "no-store"}


def invalid(exc: uc.InvalidParameter) -> ApiError:
    return ApiError(422, str(exc), parameter=exc.parameter)


def private(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status, headers=NO_STORE)


def _one(request: Request, name: str) -> str | None:
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise ApiError(422, f"{name}: give it once", parameter=name)
    return values[0] if values else None


def router(service: Service) -> APIRouter:
    api = APIRouter(tags=["leads"])

    @api.get("/api/leads")
    async def list_leads(request: Request) -> JSONResponse:
        """Leads by stored score (highest first, then id), filtered, one page at a time."""
        await service.admin(request)
        params = request.query_params
        unknown = sorted(set(params.keys()) - LIST_PARAMETERS)
        if unknown:
            raise ApiError(
                422,
                f"{unknown[0]}: unknown parameter (known: {', '.join(sorted(LIST_PARAMETERS))})",
                parameter=unknown[0],
            )
        try:
            where = uc.lead_filter(
                params.getlist("stage"), _one(request, "min_score"), _one(request, "email"),
                _one(request, "q"),
            )  # fmt: skip
            limit = uc.check_limit(_one(request, "limit") or uc.DEFAULT_LIMIT)
            cursor = _one(request, "cursor")
            page = await service.in_thread(
                lambda: service.read(lambda repo: uc.list_leads(repo, where, limit, cursor))
            )
        except uc.InvalidParameter as exc:
            raise invalid(exc) from None
        return private(page_view(page))

    @api.get("/api/leads/{lead_id:path}/export")
    async def export_lead(lead_id: str, request: Request) -> JSONResponse:
        """Everything held about the lead, for a subject access request."""
        await service.admin(request)
        now = datetime.now(UTC)
        document = await service.in_thread(
            lambda: service.read(lambda repo: uc.export_lead(repo, lead_id, now))
        )
        if document is None:
            raise ApiError(404, f"no lead {lead_id!r}")
        return private(document)

    @api.post("/api/leads/{lead_id:path}/stage")
    async def override_stage(lead_id: str, request: Request) -> JSONResponse:
        """A person moves the lead to a stage, with a reason (the only way back)."""
        key = await service.admin(request)
        body = parse_json(await read_body(request, OVERRIDE_LIMIT_BYTES, "an override"))
        if not isinstance(body, dict):
            raise ApiError(400, 'body must be a JSON object: {"stage": ..., "reason": ...}')
        extra = sorted(set(body) - OVERRIDE_FIELDS)
        if extra:
            raise ApiError(422, f"{extra[0]}: unknown field", parameter=extra[0])
        for name in OVERRIDE_FIELDS:
            if body.get(name) is not None and not isinstance(body[name], str):
                raise ApiError(422, f"{name}: must be a string", parameter=name)
        stage, reason = body.get("stage"), body.get("reason")
        if stage is None:
            raise ApiError(422, "stage: required", parameter="stage")
        actor = body.get("actor") or f"admin key #{key.id}"
        now = datetime.now(UTC)

        def work() -> StageChange:
            return service.write(
                lambda repo: uc.override_stage(
                    repo, service.model, lead_id, stage, reason or "", actor, now
                )
            )

        try:
            change = await service.in_thread(work)
        except uc.InvalidParameter as exc:
            raise invalid(exc) from None
        except uc.LeadNotFound as exc:
            raise ApiError(404, str(exc)) from None
        except uc.StageUnchanged as exc:
            raise ApiError(409, str(exc), stage=exc.stage) from None
        return JSONResponse(change_view(change))

    @api.get("/api/leads/{lead_id:path}")
    async def get_lead(lead_id: str, request: Request) -> JSONResponse:
        """One lead: attributes, score breakdown with explanation, events, stage history."""
        await service.admin(request)
        now = datetime.now(UTC)
        view = await service.in_thread(
            lambda: service.read(lambda repo: lead_view(repo, service.model, lead_id, now))
        )
        if view is None:
            raise ApiError(404, f"no lead {lead_id!r}")
        return private(view)

    @api.delete("/api/leads/{lead_id:path}")
    async def erase_lead(lead_id: str, request: Request) -> JSONResponse:
        """Erase the lead and everything about it; only an erasure record is kept."""
        await service.admin(request)
        now = datetime.now(UTC)
        erasure = await service.in_thread(
            lambda: service.write(lambda repo: uc.erase_lead(repo, lead_id, now))
        )
        if erasure is None:
            raise ApiError(404, f"no lead {lead_id!r} (unknown, or already erased)")
        # After the commit: SQLite's write-ahead log still holds the rows' old pages.
        await service.in_thread(lambda: service.read(lambda repo: repo.truncate_wal()))
        return JSONResponse(erasure_view(erasure))

    return api
