"""The FastAPI application: Segment-compatible ingestion and the lead API.

``create_app(settings)`` is the composition root: it builds the engine and loads
the model; nothing is built at import. Every request that writes runs in one
transaction, committed before the response.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from leadgate.adapters.model_source import read_model
from leadgate.domain.model import ScoringModel
from leadgate.services.ingest import IngestResult, ingest
from leadgate.store import create_engine, database_url, upgrade
from leadgate.store.records import ApiKey
from leadgate.store.repository import Repository
from leadgate.web.leads import lead_view
from leadgate.web.settings import Settings

T = TypeVar("T")
SEGMENT_CALLS = ("track", "identify", "page", "screen", "group", "alias")


class ApiError(Exception):
    """An error answered as ``{"error": message, ...}`` with an HTTP status."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


def _kb(limit: int) -> str:
    return f"{limit // 1024} KB" if limit % 1024 == 0 else f"{limit} bytes"


def _too_large(limit: int, what: str) -> ApiError:
    return ApiError(
        413, f"{what} is larger than the {_kb(limit)} limit", limit_bytes=limit, limit=what
    )


def basic_user(header: str | None) -> str | None:
    """The user name of an HTTP Basic ``Authorization`` header (Segment's write key)."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[0] or None


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


async def read_body(request: Request, limit: int, what: str) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes
    (after gzip decoding, when the client compressed it)."""
    length = request.headers.get("content-length", "")
    gzipped = request.headers.get("content-encoding", "").lower() == "gzip"
    if length.isdigit() and int(length) > limit and not gzipped:
        raise _too_large(limit, what)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit, what)
    if not gzipped:
        return bytes(body)
    inflater = zlib.decompressobj(wbits=31)
    try:
        data = inflater.decompress(bytes(body), limit + 1)
    except zlib.error as exc:
        raise ApiError(400, f"body is not valid gzip ({exc})") from None
    if len(data) > limit:
        raise _too_large(limit, what)
    return data


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"body is not valid JSON ({exc})") from None


def _ingest_response(result: IngestResult, index_map: list[int]) -> dict[str, Any]:
    return {
        "success": True,
        "accepted": result.accepted,
        "stored": result.stored,
        "duplicates": result.duplicates,
        "errors": [{"index": index_map[e.index], "reason": e.reason} for e in result.errors],
    }


def create_app(settings: Settings | None = None) -> FastAPI:
    """The application for ``settings``: engine and model are built here, once."""
    settings = settings or Settings()
    url = database_url(settings.database_url)
    if settings.migrate:
        upgrade(url)
    engine: Engine = create_engine(url)
    model: ScoringModel = read_model(settings.model_path)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(title="leadgate", version="0.1.0", lifespan=lifespan)
    app.state.engine = engine
    app.state.model = model
    app.state.settings = settings

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": 'Basic realm="leadgate"'} if exc.status == 401 else None
        return JSONResponse({"error": exc.message, **exc.extra}, exc.status, headers=headers)

    def read(work: Callable[[Repository], T]) -> T:
        with engine.connect() as conn:
            return work(Repository(conn))

    def write(work: Callable[[Repository], T]) -> T:
        with engine.begin() as conn:
            return work(Repository(conn))

    async def authorise(key: str | None, kind: str) -> ApiKey:
        if key is None:
            raise ApiError(401, "missing API key")
        record: ApiKey | None = await run_in_threadpool(read, lambda repo: repo.verify_api_key(key))
        if record is None:
            raise ApiError(401, "unknown or revoked API key")
        if record.kind != kind:
            raise ApiError(403, f"this endpoint needs a {kind} key")
        return record

    async def take_in(messages: list[Any], index_map: list[int]) -> dict[str, Any]:
        result = await run_in_threadpool(write, lambda repo: ingest(repo, model, messages))
        return _ingest_response(result, index_map)

    async def single(request: Request, call: str) -> JSONResponse:
        await authorise(basic_user(request.headers.get("authorization")), "write")
        limit = settings.message_limit_bytes
        msg = parse_json(await read_body(request, limit, "one message"))
        if not isinstance(msg, dict):
            raise ApiError(400, "body must be a JSON object (one Segment message)")
        msg["type"] = call
        body = await take_in([msg], [0])
        if body["errors"]:
            raise ApiError(400, f"invalid message: {body['errors'][0]['reason']}", **body)
        return JSONResponse(body)

    def single_call(call: str) -> Callable[[Request], Awaitable[JSONResponse]]:
        async def endpoint(request: Request) -> JSONResponse:
            return await single(request, call)

        return endpoint

    for call in ("track", "identify", "page", "screen", "group", "alias"):
        app.add_api_route(
            f"/v1/{call}",
            single_call(call),
            methods=["POST"],
            name=call,
            summary=f"A Segment {call} call",
        )

    @app.post("/v1/batch")
    async def batch(request: Request) -> JSONResponse:
        """A Segment batch: valid items are taken in, invalid ones reported by index."""
        await authorise(basic_user(request.headers.get("authorization")), "write")
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
                reason = f"message is larger than the {_kb(limit)} limit for one message"
                oversized.append({"index": index, "reason": reason})
                continue
            if isinstance(item, dict) and isinstance(context, dict):
                item.setdefault("context", context)
            messages.append(item)
            index_map.append(index)
        body = await take_in(messages, index_map)
        body["errors"] = sorted(body["errors"] + oversized, key=lambda e: int(e["index"]))
        return JSONResponse(body)

    @app.get("/api/leads/{lead_id}")
    async def get_lead(lead_id: str, request: Request) -> JSONResponse:
        """One lead: attributes, score breakdown with explanation, events, stage history."""
        await authorise(bearer_token(request.headers.get("authorization")), "admin")
        now = datetime.now(UTC)
        view = await run_in_threadpool(read, lambda repo: lead_view(repo, model, lead_id, now))
        if view is None:
            raise ApiError(404, f"no lead {lead_id!r}")
        return JSONResponse(view)

    return app
