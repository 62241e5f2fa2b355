"""The lead API for admin keys: read leads and act on them."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from leadgate.web.http import ApiError
from leadgate.web.leads import lead_view
from leadgate.web.service import Service


def router(service: Service) -> APIRouter:
    api = APIRouter(tags=["leads"])

    @api.get("/api/leads/{lead_id}")
    async def get_lead(lead_id: str, request: Request) -> JSONResponse:
        """One lead: attributes, score breakdown with explanation, events, stage history."""
        await service.admin(request)
        now = datetime.now(UTC)
        view = await service.in_thread(
            lambda: service.read(lambda repo: lead_view(repo, service.model, lead_id, now))
        )
        if view is None:
            raise ApiError(404, f"no lead {lead_id!r}")
        return JSONResponse(view)

    return api
