"""What every router needs: the engine, the live model, the settings, transactions
and key checks. Built once by ``create_app``; routers take it as an argument."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from fastapi import Request
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from leadgate.domain.model import ScoringModel
from leadgate.services.ingest import IngestResult, ingest
from leadgate.store import transact
from leadgate.store.engine import READONLY
from leadgate.store.records import ApiKey
from leadgate.store.repository import Repository
from leadgate.web.http import ApiError, basic_user, bearer_token
from leadgate.web.settings import Settings

T = TypeVar("T")


class ModelSource(Protocol):
    def get(self) -> ScoringModel: ...


@dataclass(frozen=True)
class FixedModel:
    """One model for the service's whole life."""

    model: ScoringModel

    def get(self) -> ScoringModel:
        return self.model


@dataclass
class Service:
    engine: Engine
    live: ModelSource  # the live model: the latest published (services.models.LiveModel)
    settings: Settings

    @property
    def model(self) -> ScoringModel:
        return self.live.get()

    def read(self, work: Callable[[Repository], T]) -> T:
        """Run ``work`` on a connection that only reads."""
        with self.engine.connect() as conn:
            conn.execution_options(**{READONLY: True})
            return work(Repository(conn))

    def write(self, work: Callable[[Repository], T]) -> T:
        """Run ``work`` in one transaction, committed before this returns (retried
        from the start when it lost a race with another writer)."""
        return transact(self.engine, lambda conn: work(Repository(conn)))

    async def in_thread(self, work: Callable[[], T]) -> T:
        return await run_in_threadpool(work)

    async def authorise(self, key: str | None, kind: str, hint: str = "") -> ApiKey:
        """The key's record; 401 when missing or unknown, 403 when of the wrong kind."""
        if key is None:
            raise ApiError(401, f"missing API key{hint}")
        record = await self.in_thread(lambda: self.read(lambda repo: repo.verify_api_key(key)))
        if record is None:
            raise ApiError(401, "unknown or revoked API key")
        if record.kind != kind:
            article = "an" if kind[0] in "aeiou" else "a"
            raise ApiError(403, f"this endpoint needs {article} {kind} key")
        return record

    async def writer(self, request: Request) -> ApiKey:
        """A write key sent as the Basic user name (as Segment's clients do) or as Bearer."""
        header = request.headers.get("authorization")
        hint = " (send a write key as the Basic user name, or as Authorization: Bearer KEY)"
        return await self.authorise(basic_user(header) or bearer_token(header), "write", hint)

    async def admin(self, request: Request) -> ApiKey:
        """An admin key sent as ``Authorization: Bearer KEY``."""
        hint = " (send an admin key as the header Authorization: Bearer KEY)"
        return await self.authorise(
            bearer_token(request.headers.get("authorization")), "admin", hint
        )

    async def take_in(self, messages: Iterable[Any], now: datetime | None = None) -> IngestResult:
        """Ingest Segment-shaped messages in one transaction (committed on return)."""
        at = now or datetime.now(UTC)
        items = list(messages)

        def work() -> IngestResult:
            model = self.model  # may ask the database, outside the write transaction
            return self.write(lambda repo: ingest(repo, model, items, at))

        return await self.in_thread(work)
