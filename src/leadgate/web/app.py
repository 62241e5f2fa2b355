"""The FastAPI application: the composition root.

``create_app(settings)`` builds the engine, loads the model and mounts the
routers; nothing is built at import. Every request that writes runs in one
transaction, committed before the response.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from leadgate.adapters.model_source import default_model_text, read_model
from leadgate.notify.worker import start_worker_thread
from leadgate.services.models import LiveModel, ensure_live
from leadgate.services.rescore import rescore
from leadgate.services.upkeep import upkeep
from leadgate.store import create_engine, database_url, upgrade
from leadgate.web import (
    browser_api,
    handovers_api,
    inbound_api,
    leads_api,
    learning_api,
    models_api,
    segment_api,
    team_api,
    webhooks_api,
)
from leadgate.web.http import ApiError, basic_user
from leadgate.web.service import Service
from leadgate.web.settings import Settings

__all__ = ["basic_user", "create_app"]

# The in-process worker looks for new notifications this often when idle (a cheap
# indexed query): a handover's webhook leaves within about this long of its commit.
WORKER_POLL_SECONDS = 0.1


def create_app(settings: Settings | None = None) -> FastAPI:
    """The application for ``settings``: engine and model are built here, once."""
    settings = settings or Settings()
    url = database_url(settings.database_url)
    if settings.migrate:
        upgrade(url)
    engine = create_engine(url)
    # The database's latest published model; the --model file (or the built-in one)
    # becomes the first published version of a database that has none.
    started = read_model(settings.model_path)
    path = settings.model_path
    text = default_model_text() if path is None else path.read_text(encoding="utf-8")
    live = LiveModel(engine, ensure_live(engine, started, text))
    service = Service(engine, live, settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        every = settings.rescore_every_seconds
        task = asyncio.create_task(_rescore_periodically(service, every)) if every else None
        # One outbox worker in process (the embedded default); more run as `leadgate worker`.
        stop_worker = (
            start_worker_thread(
                service.engine,
                interval=WORKER_POLL_SECONDS,
                periodic=lambda: upkeep(service.engine, service.model),
            )
            if settings.run_worker
            else None
        )
        yield
        if stop_worker is not None:
            await service.in_thread(stop_worker)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        service.engine.dispose()

    app = FastAPI(title="leadgate", version="0.1.0", lifespan=lifespan)
    app.state.service = service
    app.state.engine = service.engine
    app.state.settings = settings

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's own checks (path, query, body models) in the API's error shape."""
        problems = []
        for error in exc.errors():
            where = [str(x) for x in error.get("loc", ()) if x not in ("body", "query", "path")]
            name = ".".join(where) or "body"
            problems.append({"parameter": name, "reason": f"{name}: {error.get('msg', '')}"})
        first = problems[0] if problems else {"parameter": "body", "reason": "invalid request"}
        return JSONResponse(
            {"error": first["reason"], "parameter": first["parameter"], "problems": problems},
            422,
        )

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": 'Basic realm="leadgate"'} if exc.status == 401 else None
        return JSONResponse({"error": exc.message, **exc.extra}, exc.status, headers=headers)

    app.include_router(segment_api.router(service))
    app.include_router(leads_api.router(service))
    app.include_router(browser_api.router(service))
    app.include_router(inbound_api.router(service))
    app.include_router(webhooks_api.router(service))
    app.include_router(team_api.router(service))
    app.include_router(handovers_api.router(service))
    app.include_router(learning_api.router(service))
    app.include_router(models_api.router(service))
    # Pages on other sites send events from the browser (analytics.js); no cookies.
    app.add_middleware(
        CORSMiddleware, allow_origins=["*"], allow_methods=["GET", "POST"], allow_headers=["*"]
    )
    return app


log = logging.getLogger("leadgate")


async def _rescore_periodically(service: Service, every: float) -> None:
    """Decide every lead again each ``every`` seconds, so stored scores show decay.
    A failed pass is logged and the next one tried; it never stops the service."""
    while True:
        await asyncio.sleep(every)
        try:
            await service.in_thread(lambda: rescore(service.engine, service.model))
        except Exception:
            log.exception("periodic rescore failed; trying again in %s s", every)
