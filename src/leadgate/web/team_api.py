"""The sales team API for admin keys: the routing set-up and the reps.

``GET /api/routing`` gives the active team file (YAML with ``Accept:
application/yaml``, else JSON with a summary), ``PUT /api/routing`` loads a new
one (YAML or JSON; problems answer 422, each with its line), ``GET /api/reps``
lists the reps as routing sees them and ``PATCH /api/reps/{id}`` sets a rep away
or back, or changes their capacity (``null`` returns to the file's value).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import yaml
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import Connection

from leadgate.domain.yamldoc import SpecError, compose
from leadgate.services import team as uc
from leadgate.store.team_store import TeamStore
from leadgate.web.http import ApiError, parse_json, read_body
from leadgate.web.service import Service

TEAM_FILE_LIMIT_BYTES = 256 * 1024
PATCH_LIMIT_BYTES = 4 * 1024
REP_FIELDS = frozenset({"available", "capacity"})
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


def _routing_view(conn: Connection) -> dict[str, Any] | None:
    stored = uc.active_team_file(conn)
    config = uc.active_team(conn)
    if stored is None or config is None:
        return None
    return {
        "id": stored.id,
        "loaded_at": stored.loaded_at.isoformat(),
        "loaded_by": stored.loaded_by,
        "routing": uc.team_summary(config),
        "text": stored.text,
    }


def _as_yaml_text(body: bytes, content_type: str) -> str:
    """The team file's text. JSON is YAML, so it is kept as sent (errors then name
    lines of what was sent), unless the YAML reader cannot take it (tabs): then
    the parsed JSON is written out as YAML."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "the team file must be UTF-8 text") from None
    if "json" not in content_type:
        return text
    data = parse_json(body)
    try:
        compose(text)
    except yaml.YAMLError:
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    return text


def router(service: Service) -> APIRouter:
    api = APIRouter(tags=["team"])

    @api.get("/api/routing")
    async def get_routing(request: Request) -> Response:
        """The active team file: as YAML text when asked for, else JSON with a summary."""
        await service.admin(request)
        view = await service.in_thread(lambda: service.read(lambda repo: _routing_view(repo.conn)))
        if view is None:
            raise ApiError(404, str(uc.NoTeam()))
        if any(t in request.headers.get("accept", "") for t in YAML_TYPES):
            return Response(view["text"], media_type="application/yaml; charset=utf-8")
        return JSONResponse(view)

    @api.put("/api/routing")
    async def put_routing(request: Request) -> JSONResponse:
        """Load a new team file (YAML or JSON); it becomes active at once."""
        key = await service.admin(request)
        body = await read_body(request, TEAM_FILE_LIMIT_BYTES, "a team file")
        text = _as_yaml_text(body, request.headers.get("content-type", "").lower())
        now = datetime.now(UTC)
        by = f"admin key #{key.id}"
        groups = service.model.groups

        def work() -> dict[str, Any] | None:
            def load(conn: Connection) -> dict[str, Any] | None:
                uc.load_team(conn, text, "team file", by, now, groups)
                return _routing_view(conn)

            return service.write(lambda repo: load(repo.conn))

        try:
            view = await service.in_thread(work)
        except SpecError as exc:
            count = len(exc.problems)
            raise ApiError(
                422,
                f"the team file has {count} problem{'s' if count != 1 else ''}",
                problems=exc.problems,
            ) from None
        return JSONResponse(view)

    @api.get("/api/reps")
    async def list_reps(request: Request) -> JSONResponse:
        """Every rep as routing sees them now: the file's values with the API's changes."""
        await service.admin(request)
        try:
            reps = await service.in_thread(lambda: service.read(lambda r: uc.reps_view(r.conn)))
        except uc.NoTeam as exc:
            raise ApiError(404, str(exc)) from None
        return JSONResponse({"reps": reps})

    @api.patch("/api/reps/{rep_id}")
    async def patch_rep(rep_id: str, request: Request) -> JSONResponse:
        """``{"available": false}`` sets a rep away, ``{"capacity": 3}`` changes how many
        open handovers they take; ``null`` returns a field to the team file's value."""
        key = await service.admin(request)
        body = parse_json(await read_body(request, PATCH_LIMIT_BYTES, "a rep change"))
        if not isinstance(body, dict) or not body:
            raise ApiError(400, 'body must be a JSON object: {"available": ..., "capacity": ...}')
        extra = sorted(set(body) - REP_FIELDS)
        if extra:
            known = ", ".join(sorted(REP_FIELDS))
            raise ApiError(422, f"{extra[0]}: unknown field (known: {known})", parameter=extra[0])
        changes: dict[str, Any] = {}
        if "available" in body:
            if body["available"] is not None and not isinstance(body["available"], bool):
                raise ApiError(422, "available: must be true, false or null", parameter="available")
            changes["available"] = body["available"]
        if "capacity" in body:
            capacity = body["capacity"]
            if capacity is not None and (
                isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1
            ):
                raise ApiError(
                    422, "capacity: must be a whole number of at least 1, or null",
                    parameter="capacity",
                )  # fmt: skip
            changes["capacity"] = capacity
        now = datetime.now(UTC)
        by = f"admin key #{key.id}"

        def change(conn: Connection) -> dict[str, Any]:
            rep = uc.update_rep(conn, rep_id, by, now, **changes)
            return uc.rep_view(rep, TeamStore(conn).overrides().get(rep_id))

        try:
            view = await service.in_thread(lambda: service.write(lambda repo: change(repo.conn)))
        except (uc.NoTeam, uc.RepNotFound) as exc:
            raise ApiError(404, str(exc)) from None
        return JSONResponse(view)

    return api
