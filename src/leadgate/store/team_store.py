"""Reads and writes of the sales team, on one connection inside the caller's transaction.

The newest ``team_configs`` row is the active team file; ``rep_overrides`` holds
what changes day to day through the API (away, capacity) and wins over the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, insert, select, update

from leadgate.store import tables as t


@dataclass(frozen=True, slots=True)
class StoredTeam:
    """One loaded team file, as stored."""

    id: int
    text: str
    loaded_at: datetime
    loaded_by: str


@dataclass(frozen=True, slots=True)
class RepOverride:
    """A rep's API changes; None means the team file's value holds."""

    rep_id: str
    available: bool | None
    capacity: int | None
    updated_at: datetime
    updated_by: str


class TeamStore:
    """The team tables over one Connection; the caller owns the transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add_config(self, text: str, at: datetime, by: str) -> StoredTeam:
        """Store a (checked) team file; it becomes the active one."""
        new_id = self.conn.execute(
            insert(t.team_configs)
            .values(text=text, loaded_at=at, loaded_by=by)
            .returning(t.team_configs.c.id)
        ).scalar_one()
        return StoredTeam(int(new_id), text, at, by)

    def latest_config(self) -> StoredTeam | None:
        """The active team file: the one loaded last."""
        row = (
            self.conn.execute(select(t.team_configs).order_by(t.team_configs.c.id.desc()).limit(1))
            .mappings()
            .first()
        )
        if row is None:
            return None
        return StoredTeam(int(row["id"]), row["text"], row["loaded_at"], row["loaded_by"])

    def count_configs(self) -> int:
        return len(self.conn.execute(select(t.team_configs.c.id)).all())

    def overrides(self) -> dict[str, RepOverride]:
        rows = self.conn.execute(select(t.rep_overrides)).mappings()
        return {
            row["rep_id"]: RepOverride(
                row["rep_id"],
                row["available"],
                row["capacity"],
                row["updated_at"],
                row["updated_by"],
            )
            for row in rows
        }

    def set_override(
        self,
        rep_id: str,
        available: bool | None,
        capacity: int | None,
        at: datetime,
        by: str,
    ) -> RepOverride | None:
        """Replace the rep's override; with nothing left to override, drop the row."""
        table = t.rep_overrides
        if available is None and capacity is None:
            self.conn.execute(delete(table).where(table.c.rep_id == rep_id))
            return None
        values = {"available": available, "capacity": capacity, "updated_at": at, "updated_by": by}
        changed = self.conn.execute(update(table).where(table.c.rep_id == rep_id).values(values))
        if changed.rowcount == 0:
            self.conn.execute(insert(table).values(rep_id=rep_id, **values))
        return RepOverride(rep_id, available, capacity, at, by)
