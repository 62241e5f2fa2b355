"""HTTP plumbing shared by the routers: errors, credentials, bounded bodies, JSON."""

from __future__ import annotations

import base64
import binascii
import zlib
from typing import Any

import orjson
from fastapi import Request


class ApiError(Exception):
    """An error answered as ``{"error": message, ...}`` with an HTTP status."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


def kb(limit: int) -> str:
    return f"{limit // 1024} KB" if limit % 1024 == 0 else f"{limit} bytes"


def too_large(limit: int, what: str) -> ApiError:
    return ApiError(
        413, f"{what} is larger than the {kb(limit)} limit", limit_bytes=limit, limit=what
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
        raise too_large(limit, what)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large(limit, what)
    if not gzipped:
        return bytes(body)
    inflater = zlib.decompressobj(wbits=31)
    try:
        data = inflater.decompress(bytes(body), limit + 1)
    except zlib.error as exc:
        raise ApiError(400, f"body is not valid gzip ({exc})") from None
    if len(data) > limit:
        raise too_large(limit, what)
    return data


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"body is not valid JSON ({exc})") from None
