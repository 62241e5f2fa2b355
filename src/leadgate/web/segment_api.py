"""Segment-compatible ingestion: ``/v1/track|identify|page|screen|group|alias|batch``,
with the write key as the Basic user name, so unmodified Segment clients work."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from leadgate.services.ingest import IngestResult
from leadgate.web.http import ApiError, kb, parse_json, read_body
from leadgate.web.service import Service

SEGMENT_CALLS = ("track", "identify", "page", "screen", "group", "alias")


def ingest_response(result: IngestResult, index_map: list[int] | None = None) -> dict[str, Any]:
    """The answer to an ingest request; error indexes are mapped back to the request's."""

    def index(i: int) -> int:
        return index_map[i] if index_map is not None else i

    return {
        "success": True,
        "accepted": result.accepted,
        "stored": result.stored,
        "duplicates": result.duplicates,
        "conflicts": [
            {"id": i, "reason": "message id already stored with other content; kept the first"}
            for i in result.conflicts
        ],
        "errors": [{"index": index(e.index), "reason": e.reason} for e in result.errors],
    }


def router(service: Service) -> APIRouter:
    api = APIRouter(tags=["segment"])
    settings = service.settings

    async def single(request: Request, call: str) -> JSONResponse:
        await service.writer(request)
        limit = settings.message_limit_bytes
        msg = parse_json(await read_body(request, limit, "one message"))
        if not isinstance(msg, dict):
            raise ApiError(400, "body must be a JSON object (one Segment message)")
        msg["type"] = call
        body = ingest_response(await service.take_in([msg]))
        if body["errors"]:
            raise ApiError(
                400, f"invalid message: {body['errors'][0]['reason']}", **{**body, "success": False}
            )
        return JSONResponse(body)

    def single_call(call: str) -> Callable[[Request], Awaitable[JSONResponse]]:
        async def endpoint(request: Request) -> JSONResponse:
            return await single(request, call)

        return endpoint

    for call in SEGMENT_CALLS:
        api.add_api_route(
            f"/v1/{call}",
            single_call(call),
            methods=["POST"],
            name=call,
            summary=f"A Segment {call} call",
        )

    @api.post("/v1/batch")
    async def batch(request: Request) -> JSONResponse:
        """A Segment batch: valid items are taken in, invalid ones reported by index."""
        await service.writer(request)
        doc = parse_json(await read_body(request, settings.batch_limit_bytes, "one batch"))
        items = doc.get("batch") if isinstance(doc, dict) else None
        if not isinstance(items, list):
            raise ApiError(400, 'body must be a JSON object with a "batch" list')
        context = doc.get("context")
        messages: list[Any] = []
        index_map: list[int] = []
        oversized: list[dict[str, Any]] = []
        limit = settings.message_limit_bytes
        for index, item in enumerate(items):
            if len(orjson.dumps(item)) > limit:
                reason = f"message is larger than the {kb(limit)} limit for one message"
                oversized.append({"index": index, "reason": reason})
                continue
            if isinstance(item, dict) and isinstance(context, dict):
                item.setdefault("context", context)
            messages.append(item)
            index_map.append(index)
        body = ingest_response(await service.take_in(messages), index_map)
        body["errors"] = sorted(body["errors"] + oversized, key=lambda e: int(e["index"]))
        return JSONResponse(body)

    return api
