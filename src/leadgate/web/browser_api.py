"""What analytics.js (Segment's browser library, analytics-next) needs besides /v1/*:

- ``GET /v1/projects/{write_key}/settings``: the settings document it loads from
  its ``cdnURL`` before sending anything. It points the library's Segment.io
  destination back at this server (``apiHost`` ``<this host>/v1``, ``http`` or
  ``https`` as the request came), with no other destination, middleware or
  metrics, so the browser talks to leadgate alone;
- the short paths the library posts to: ``/v1/t``, ``/v1/p``, ``/v1/i``, ``/v1/s``,
  ``/v1/g``, ``/v1/a`` (one call each) and ``/v1/b`` (a batch), as Segment's own
  tracking API accepts them. They are the same endpoints as ``/v1/track`` and
  the others, hidden from the schema.

Cross-origin requests from pages are allowed by the CORS middleware in ``app.py``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from leadgate.web import segment_api
from leadgate.web.http import ApiError
from leadgate.web.service import Service

SHORT_PATHS = {
    "t": "track",
    "p": "page",
    "i": "identify",
    "s": "screen",
    "g": "group",
    "a": "alias",
    "b": "batch",
}


def settings_document(write_key: str, api_host: str, protocol: str) -> dict[str, Any]:
    """The analytics.js settings for ``write_key``: send to ``protocol://api_host`` only."""
    return {
        "integrations": {
            "Segment.io": {
                "apiKey": write_key,
                "apiHost": api_host,
                "protocol": protocol,
                "unbundledIntegrations": [],
                "addBundledMetadata": False,
            }
        },
        "plan": {"track": {}, "identify": {}, "group": {}},
        "enabledMiddleware": {},
        "middlewareSettings": {},
        "metrics": {"sampleRate": 0},
        "legacyVideoPluginsEnabled": False,
        "remotePlugins": [],
    }


def router(service: Service) -> APIRouter:
    api = APIRouter(tags=["browser"])

    @api.get("/v1/projects/{write_key}/settings")
    async def browser_settings(write_key: str, request: Request) -> JSONResponse:
        """The settings document analytics.js loads from its ``cdnURL`` (404 for a key
        that is not an active write key)."""
        record = await service.in_thread(
            lambda: service.read(lambda repo: repo.verify_api_key(write_key))
        )
        if record is None or record.kind != "write":
            raise ApiError(404, "no such write key")
        api_host = f"{request.url.netloc}/v1"
        return JSONResponse(settings_document(write_key, api_host, request.url.scheme))

    endpoints = {
        route.name: route.endpoint
        for route in segment_api.router(service).routes
        if isinstance(route, APIRoute)
    }
    for short, call in SHORT_PATHS.items():
        api.add_api_route(
            f"/v1/{short}",
            endpoints[call],
            methods=["POST"],
            name=f"{call}_short",
            include_in_schema=False,
        )
    return api
