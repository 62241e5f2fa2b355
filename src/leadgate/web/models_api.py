"""Scoring model versions (admin key): list, save a draft, backtest it, publish, roll back."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

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
from leadgate.store.records import ApiKey
from leadgate.web.http import ApiError, parse_json, read_body
from leadgate.web.service import Service

B = TypeVar("B", bound=BaseModel)
MAX_MODEL_TEXT = 1_000_000
# A JSON body holding the longest model text, every character escaped (\uXXXX).
MAX_BODY_BYTES = 6 * MAX_MODEL_TEXT + 100_000
POLICIES = ", ".join(HANDOVER_POLICIES)
HANDOVER_HELP = (
    "leads that reach the handover stage only because of this change: `all` hands them "
    "over, `recent-intent` only those with an intent action within the model's intent "
    "window, `none` none (they keep the stage, without a handover)"
)
Ref = Annotated[str, Path(max_length=300, description="a saved version: VERSION or NAME@VERSION")]


class DraftBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(
        max_length=MAX_MODEL_TEXT,
        description="the model file (YAML); its `name:` and `version:` name the draft",
    )


class PublishBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    why: str = Field(min_length=1, max_length=2000)
    handover: str = Field(
        description=f"required, one of {POLICIES}: {HANDOVER_HELP}",
        json_schema_extra={"enum": list(HANDOVER_POLICIES)},
    )
    by: str | None = Field(None, max_length=200, description="who (default: the key)")


class RollbackBody(PublishBody):
    handover: str = Field(
        "recent-intent",
        description=f"one of {POLICIES} (default recent-intent): {HANDOVER_HELP}",
        json_schema_extra={"enum": list(HANDOVER_POLICIES)},
    )


def _documented(body: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of a route that reads its body itself."""
    schema = body.model_json_schema()
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


async def _body(request: Request, model: type[B]) -> B:
    """The request's JSON body checked against ``model``: read only after the key was
    checked, so a request without a valid key is 401/403 whatever its body. An empty
    body is an empty object (each required field reported missing)."""
    raw = await read_body(request, MAX_BODY_BYTES, "a model request")
    doc = parse_json(raw) if raw.strip() else {}
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        errors = []
        for error in exc.errors(include_url=False):
            loc = ("body", *error["loc"])
            if error["loc"][:1] == ("handover",):
                error = {**error, "msg": f"{error['msg']} (one of: {POLICIES})"}
            errors.append({**error, "loc": loc})
        raise RequestValidationError(errors) from None


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
    # The admin key is checked first, before the path and the body (401, then 403):
    # FastAPI solves dependencies before it checks the parameters, and each route
    # reads its body itself, after the key.
    admin = Depends(service.admin)

    @api.get("/api/models")
    async def list_models(_key: ApiKey = admin) -> JSONResponse:
        """Saved versions (the live one marked), every publish and rollback, and the
        model this server scores with right now."""
        found = await service.in_thread(lambda: listing(service.engine))
        return JSONResponse(
            {
                "live": None if found.live is None else "@".join(found.live),
                "serving": label(service.model),
                "versions": [version_document(v, found.live) for v in found.versions],
                "publications": [publication_document(p) for p in found.publications],
            }
        )

    @api.post(
        "/api/models/drafts",
        status_code=201,
        openapi_extra=_documented(DraftBody),
        responses={200: {"description": "the same text was saved before: that version"}},
    )
    async def create_draft(request: Request, _key: ApiKey = admin) -> JSONResponse:
        """Save a model file as a draft version (name and version from the file): 201
        when saved, 200 with the saved version when the same text was saved before."""
        body = await _body(request, DraftBody)
        try:
            draft = await service.in_thread(lambda: save_draft(service.engine, body.text, "draft"))
        except SpecError as exc:
            raise ApiError(422, "the model is not valid", problems=exc.problems) from None
        except ModelError as exc:
            raise ApiError(exc.status, str(exc)) from None
        found = await service.in_thread(lambda: listing(service.engine))
        return JSONResponse(version_document(draft.version, found.live), 201 if draft.new else 200)

    @api.post("/api/models/{ref}/backtest")
    async def backtest_draft(ref: Ref, _key: ApiKey = admin) -> JSONResponse:
        """Replay the stored history under a saved version and under the live model."""
        try:
            result = await service.in_thread(lambda: backtest_version(service.engine, ref))
        except ModelError as exc:
            raise ApiError(exc.status, str(exc)) from None
        return JSONResponse(result)

    @api.post("/api/models/{ref}/publish", openapi_extra=_documented(PublishBody))
    async def publish_version(ref: Ref, request: Request, key: ApiKey = admin) -> JSONResponse:
        """Make a saved version live; every lead is decided again under it. `handover`
        is required: what happens to leads that cross only because of the change."""
        body = await _body(request, PublishBody)
        by = (body.by or "").strip() or f"admin key #{key.id}"
        try:
            done = await service.in_thread(
                lambda: publish(service.engine, ref, by, body.why, body.handover)
            )
        except ModelError as exc:
            raise ApiError(exc.status, str(exc)) from None
        return JSONResponse(_done(done))

    @api.post("/api/models/rollback", openapi_extra=_documented(RollbackBody))
    async def rollback_version(request: Request, key: ApiKey = admin) -> JSONResponse:
        """Make the version live before the last publish live again."""
        body = await _body(request, RollbackBody)
        by = (body.by or "").strip() or f"admin key #{key.id}"
        try:
            done = await service.in_thread(
                lambda: rollback(service.engine, by, body.why, body.handover)
            )
        except ModelError as exc:
            raise ApiError(exc.status, str(exc)) from None
        return JSONResponse(_done(done))

    return api
