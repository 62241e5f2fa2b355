"""Chat messages in Slack's incoming-webhook format: ``{"text": ..., "blocks": [...]}``.

``text`` is the fallback shown in notifications and by clients that do not
render blocks; ``blocks`` (Block Kit) is optional. Mattermost, Rocket.Chat and
Discord's ``/slack`` endpoints take the same shape.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from leadgate.notify.webhook import IDEMPOTENCY_HEADER, post_json


def chat_payload(text: str, blocks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The JSON body of one chat message."""
    payload: dict[str, Any] = {"text": text}
    if blocks is not None:
        payload["blocks"] = blocks
    return payload


def post_chat(
    client: httpx.Client, url: str, payload: dict[str, Any], idempotency_key: str
) -> None:
    """POST one message to an incoming-webhook URL; raises ``DeliveryError`` unless 2xx.
    Slack ignores the idempotency header; a relay of one's own may use it."""
    headers = {"Content-Type": "application/json", IDEMPOTENCY_HEADER: idempotency_key}
    post_json(client, url, orjson.dumps(payload), headers)
