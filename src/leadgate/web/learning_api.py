"""HTTP routes (filled in below)."""

from __future__ import annotations

from fastapi import APIRouter

from leadgate.web.service import Service


def router(service: Service) -> APIRouter:
    return APIRouter()
