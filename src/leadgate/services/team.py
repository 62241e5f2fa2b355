"""Use cases of the sales team: load a team file, read the active team, change a rep.

The team file is the set-up (who sells where, rules, SLA) and is versioned: each
load adds a row and the newest is active. What changes day to day (a rep away,
a rep's capacity) is set through the API and kept as an override per rep that
wins over the file and survives loading a new file, so that editing a rule does
not bring back a rep who is on holiday (docs/team.md). Every function runs on
the caller's Connection, inside the caller's transaction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from datetime import datetime
from functools import lru_cache
from importlib.resources import files
from typing import Any, Final

from sqlalchemy import Connection

from leadgate.domain.conditions import format_duration
from leadgate.domain.team import Rep, TeamConfig
from leadgate.domain.team_file import load_team_config
from leadgate.store.team_store import RepOverride, StoredTeam, TeamStore


class NoTeam(LookupError):
    """No team file has been loaded yet."""

    def __init__(self) -> None:
        super().__init__("no sales team loaded yet (leadgate team load FILE, or PUT /api/routing)")


class RepNotFound(LookupError):
    def __init__(self, rep_id: str) -> None:
        super().__init__(f"no rep {rep_id!r} in the active team")
        self.rep_id = rep_id


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()  # "leave as it is", as opposed to None ("back to the file's value")


@lru_cache(maxsize=16)
def _parse(text: str, source: str) -> TeamConfig:
    """A stored file was checked when loaded; parse each text once per process."""
    return load_team_config(text, source)


def load_team(
    conn: Connection,
    text: str,
    source: str,
    by: str,
    at: datetime,
    groups: Collection[str] | None = None,
) -> TeamConfig:
    """Check a team file and make it the active team; SpecError (nothing stored) if bad.

    ``groups``: the scoring model's named groups, so that a misspelt group in a rule
    is refused."""
    config = load_team_config(text, source, groups)
    TeamStore(conn).add_config(text, at, by)
    return config


DEMO_TEAM = "demo-team.yaml"  # in leadgate/models, next to the default scoring model


def demo_team_text() -> str:
    return (files("leadgate") / "models" / DEMO_TEAM).read_text("utf-8")


def load_demo_team(conn: Connection, at: datetime, by: str = "demo") -> TeamConfig | None:
    """Load the demo agency's sales team, unless a team is already loaded (then None)."""
    if TeamStore(conn).latest_config() is not None:
        return None
    return load_team(conn, demo_team_text(), DEMO_TEAM, by, at)


def active_team_file(conn: Connection) -> StoredTeam | None:
    return TeamStore(conn).latest_config()


def active_team(conn: Connection) -> TeamConfig | None:
    """The team to route with: the newest file, with the reps' overrides applied."""
    stored = TeamStore(conn).latest_config()
    if stored is None:
        return None
    return apply_overrides(_parse(stored.text, "team file"), TeamStore(conn).overrides())


def apply_overrides(config: TeamConfig, overrides: dict[str, RepOverride]) -> TeamConfig:
    reps = []
    for rep in config.reps:
        override = overrides.get(rep.id)
        if override is not None:
            rep = dataclasses.replace(
                rep,
                available=rep.available if override.available is None else override.available,
                capacity=rep.capacity if override.capacity is None else override.capacity,
            )
        reps.append(rep)
    return dataclasses.replace(config, reps=tuple(reps))


def update_rep(
    conn: Connection,
    rep_id: str,
    by: str,
    at: datetime,
    available: bool | _Unset | None = UNSET,
    capacity: int | _Unset | None = UNSET,
) -> Rep:
    """Set a rep away or available, or change their capacity; None returns a field to
    the team file's value, UNSET leaves it. Returns the rep as routing now sees them."""
    if isinstance(capacity, int) and (isinstance(capacity, bool) or capacity < 1):
        raise ValueError(f"capacity must be a whole number of at least 1, got {capacity!r}")
    store = TeamStore(conn)
    stored = store.latest_config()
    if stored is None:
        raise NoTeam()
    if _parse(stored.text, "team file").rep(rep_id) is None:
        raise RepNotFound(rep_id)
    current = store.overrides().get(rep_id)
    new_available = current.available if current else None
    new_capacity = current.capacity if current else None
    if not isinstance(available, _Unset):
        new_available = available
    if not isinstance(capacity, _Unset):
        new_capacity = capacity
    store.set_override(rep_id, new_available, new_capacity, at, by)
    config = active_team(conn)
    assert config is not None
    rep = config.rep(rep_id)
    assert rep is not None
    return rep


def set_rep_available(conn: Connection, rep_id: str, available: bool, by: str, at: datetime) -> Rep:
    """Mark a rep away (False) or back (True); away reps get no new leads."""
    return update_rep(conn, rep_id, by, at, available=available)


def set_rep_capacity(conn: Connection, rep_id: str, capacity: int, by: str, at: datetime) -> Rep:
    return update_rep(conn, rep_id, by, at, capacity=capacity)


def rep_view(rep: Rep, override: RepOverride | None) -> dict[str, Any]:
    """A rep as JSON for the API and the CLI, with what the API has overridden."""
    changed: dict[str, bool | int] = {}
    if override is not None:
        if override.available is not None:
            changed["available"] = override.available
        if override.capacity is not None:
            changed["capacity"] = override.capacity
    return {
        "id": rep.id,
        "name": rep.name,
        "email": rep.email,
        "team": rep.team,
        "countries": sorted(rep.countries),
        "time_zone": rep.time_zone,
        "hours": rep.describe_hours(),
        "capacity": rep.capacity,
        "available": rep.available,
        "manager": rep.manager,
        "overridden": changed,
        "overridden_by": override.updated_by if override else None,
        "overridden_at": override.updated_at.isoformat() if override else None,
    }


def reps_view(conn: Connection) -> list[dict[str, Any]]:
    """Every rep of the active team as routing sees them; NoTeam if none is loaded."""
    config = active_team(conn)
    if config is None:
        raise NoTeam()
    overrides = TeamStore(conn).overrides()
    return [rep_view(rep, overrides.get(rep.id)) for rep in config.reps]


def team_summary(config: TeamConfig) -> dict[str, Any]:
    """The routing set-up in short, as JSON (for ``GET /api/routing`` and ``team show``)."""
    return {
        "name": config.name,
        "first_contact": format_duration(config.first_contact),
        "account_owner": config.account_owner,
        "default_team": config.default_team,
        "fallback_queue": config.fallback_queue,
        "escalation": {
            "remind_after": config.escalation.remind_after,
            "escalate": config.escalation.escalate,
        },
        "teams": [
            {"name": t.name, "manager": t.manager, "members": list(t.members)} for t in config.teams
        ],
        "rules": [
            {
                "id": r.id,
                "when": r.describe(),
                "to": f"team {r.team}" if r.team else f"rep {r.rep}",
                "label": r.label,
            }
            for r in config.rules
        ],
    }
