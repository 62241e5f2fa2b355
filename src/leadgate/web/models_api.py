"""Scoring model versions (admin key): list, save a draft, backtest it, publish, roll back."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from leadgate.domain.yamldoc import SpecError
from leadgate.services.handover import HANDOVER_POLICIES
from leadgate.services.models import (
    ModelError,
    Published,
    backtest_version,
    label,
    listing,
    publication_document,
    publish,
    rollback,
    save_draft,
    version_document,
)
from leadgate.web.http import ApiError
from leadgate.web.service import Service

MAX_MODEL_TEXT = 1_000_000
Ref = Annotated[str, Path(max_length=300, description="a saved version: VERSION or NAME@VERSION")]


class DraftBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=MAX_MODEL_TEXT, description="the model file (YAML)")


class PublishBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    why: str = Field(min_length=1, max_length=2000)
    handover: str = Field(
        description=f"leads moved only by this change: {', '.join(HANDOVER_POLICIES)}"
    )
    by: str | None = Field(None, max_length=200, description="who (default: the key)")


class RollbackBody(PublishBody):
    handover: str = Field("recent-intent", description=", ".join(HANDOVER_POLICIES))


def _done(done: Published) -> dict[str, Any]:
    r = done.rescored
    return {
        "live": label(done.version),
        "previous": None if done.previous is None else label(done.previous),
        "publication": done.publication,
        "rescored": {
            "leads": r.leads,
            "scores_changed": r.rescored,
            "stage_changes": dict(r.moved),
            "seconds": round(r.seconds, 3),
        },
    }


def router(service: Service) -> APIRouter:
    api = APIRouter(tags=["models"])

    @api.get("/api/models")
    async def list_models(request: Request) -> JSONResponse:
        """Saved versions (the live one marked), every publish and rollback, and the
        model this server scores with right now."""
        await service.admin(request)
        found = await service.in_thread(lambda: listing(service.engine))
        return JSONResponse(
            {
                "live": None if found.live is None else "@".join(found.live),
                "serving": label(service.model),
                "versions": [version_document(v, found.live) for v in found.versions],
                "publications": [publication_document(p) for p in found.publications],
            }
        )

    @api.post("/api/models/drafts", status_code=201)
    async def create_draft(body: DraftBody, request: Request) -> JSONResponse:
        """Save a model file as a draft version (name and version from the file)."""
        await service.admin(request)
        try:
            saved = await service.in_thread(lambda: save_draft(service.engine, body.text, "draft"))
        except SpecError as exc:
            raise ApiError(422, "the model is not valid", problems=exc.problems) from None
        except ModelError as exc:
            raise ApiError(exc.status, str(exc)) from None
        found = await service.in_thread(lambda: listing(service.engine))
        return JSONResponse(version_document(saved, found.live), 201)

    @api.post("/api/models/{ref}/backtest")
    async def backtest_draft(ref: Ref, request: Request) -> JSONResponse:
        """Replay the stored history under a saved version and under the live model."""
        await service.admin(request)
        try:
            result = await service.in_thread(lambda: backtest_version(service.engine, ref))
        except ModelError as exc:
            raise ApiError(exc.status, str(exc)) from None
        return JSONResponse(result)

    @api.post("/api/models/{ref}/publish")
    async def publish_version(ref: Ref, body: PublishBody, request: Request) -> JSONResponse:
        """Make a saved version live; every lead is decided again under it."""
        key = await service.admin(request)
        by = (body.by or "").strip() or f"admin key #{key.id}"
        try:
            done = await service.in_thread(
                lambda: publish(service.engine, ref, by, body.why, body.handover)
            )
        except ModelError as exc:
            raise ApiError(exc.status, str(exc)) from None
        return JSONResponse(_done(done))

    @api.post("/api/models/rollback")
    async def rollback_version(body: RollbackBody, request: Request) -> JSONResponse:
        """Make the version live before the last publish live again."""
        key = await service.admin(request)
        by = (body.by or "").strip() or f"admin key #{key.id}"
        try:
            done = await service.in_thread(
                lambda: rollback(service.engine, by, body.why, body.handover)
            )
        except ModelError as exc:
            raise ApiError(exc.status, str(exc)) from None
        return JSONResponse(_done(done))

    return api
