"""Outbound webhook subscriptions for admin keys.

``POST /api/webhooks`` (``{"url", "secret", "events"}``) subscribes a URL to
lifecycle events, ``GET /api/webhooks`` lists the active subscriptions,
``DELETE /api/webhooks/{id}`` stops one. The secret is write-only: it signs
deliveries and is never sent back. See docs/api.md, "Outbound webhooks and
notifications".
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from leadgate.services import outbox as uc
from leadgate.store.outbox_store import Subscription
from leadgate.web.http import ApiError, parse_json, read_body
from leadgate.web.service import Service

SUBSCRIPTION_FIELDS = frozenset({"url", "secret", "events"})
SUBSCRIPTION_LIMIT_BYTES = 16 * 1024


def subscription_view(sub: Subscription) -> dict[str, Any]:
    """A subscription as the API shows it: everything but the secret."""
    return {
        "id": sub.id,
        "url": sub.url,
        "events": list(sub.events),
        "active": sub.active,
        "created_at": sub.created_at.isoformat().replace("+00:00", "Z"),
    }


def router(service: Service) -> APIRouter:
    api = APIRouter(tags=["webhooks"])

    @api.post("/api/webhooks")
    async def add_webhook(request: Request) -> JSONResponse:
        """Subscribe a URL to lifecycle events; deliveries are signed with the secret."""
        await service.admin(request)
        body = parse_json(await read_body(request, SUBSCRIPTION_LIMIT_BYTES, "a subscription"))
        if not isinstance(body, dict):
            raise ApiError(400, 'body must be a JSON object: {"url", "secret", "events"}')
        extra = sorted(set(body) - SUBSCRIPTION_FIELDS)
        if extra:
            raise ApiError(422, f"{extra[0]}: unknown field", parameter=extra[0])
        for name in ("url", "secret"):
            if not isinstance(body.get(name), str):
                raise ApiError(422, f"{name}: required, a string", parameter=name)
        events = body.get("events")
        if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            raise ApiError(
                422,
                f"events: required, a list of event names ({', '.join(uc.EVENTS)})",
                parameter="events",
            )
        now = datetime.now(UTC)

        def work() -> Subscription:
            return service.write(
                lambda repo: uc.add_subscription(
                    repo.conn, body["url"], body["secret"], events, now
                )
            )

        try:
            sub = await service.in_thread(work)
        except uc.InvalidSubscription as exc:
            parameter = str(exc).split(":", 1)[0]
            raise ApiError(422, str(exc), parameter=parameter) from None
        return JSONResponse(subscription_view(sub), 201)

    @api.get("/api/webhooks")
    async def list_webhooks(request: Request) -> JSONResponse:
        """The active subscriptions, by id (without their secrets)."""
        await service.admin(request)
        subs = await service.in_thread(
            lambda: service.read(lambda repo: uc.list_subscriptions(repo.conn))
        )
        return JSONResponse({"items": [subscription_view(s) for s in subs]})

    @api.delete("/api/webhooks/{subscription_id}")
    async def remove_webhook(subscription_id: int, request: Request) -> JSONResponse:
        """Stop deliveries to a subscription; its undelivered messages are dropped
        (marked dead) when the worker reaches them."""
        await service.admin(request)
        if not 1 <= subscription_id < 2**63:  # ids are positive BIGINTs
            raise ApiError(404, f"no active webhook subscription {subscription_id}")
        removed = await service.in_thread(
            lambda: service.write(lambda repo: uc.remove_subscription(repo.conn, subscription_id))
        )
        if not removed:
            raise ApiError(404, f"no active webhook subscription {subscription_id}")
        return JSONResponse({"id": subscription_id, "removed": True})

    return api
