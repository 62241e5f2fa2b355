"""Reads and writes of saved scoring models and of their publications, on the caller's
connection. Saving a draft and marking it published are ``Repository`` methods."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, RowMapping, func, select, update

from leadgate.store import tables as t
from leadgate.store.records import ModelVersion


@dataclass(frozen=True, slots=True)
class Publication:
    """One publish or rollback: which version became live, who did it and why."""

    id: int
    name: str
    version: str
    action: str  # publish | rollback
    actor: str
    why: str
    handover: str | None  # the handover policy for leads the change moved
    at: datetime


def _version(row: RowMapping) -> ModelVersion:
    return ModelVersion(
        name=row["name"],
        version=row["version"],
        text=row["text"],
        status=row["status"],
        created_at=row["created_at"],
        published_by=row["published_by"],
        why=row["why"],
        published_at=row["published_at"],
    )


class ModelStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def versions(self) -> list[ModelVersion]:
        """Every saved version, the oldest first."""
        c = t.model_versions.c
        rows = self.conn.execute(
            select(t.model_versions).order_by(c.created_at, c.name, c.version)
        ).mappings()
        return [_version(r) for r in rows]

    def with_version(self, version: str, name: str | None = None) -> list[ModelVersion]:
        """The saved versions called ``version`` (of the model ``name``, if given)."""
        c = t.model_versions.c
        stmt = select(t.model_versions).where(c.version == version)
        if name is not None:
            stmt = stmt.where(c.name == name)
        return [_version(r) for r in self.conn.execute(stmt.order_by(c.name)).mappings()]

    def mark_published(self, name: str, version: str, by: str, why: str, at: datetime) -> None:
        """Set the publication fields of a version that was published before."""
        c = t.model_versions.c
        self.conn.execute(
            update(t.model_versions)
            .where((c.name == name) & (c.version == version))
            .values(status="published", published_by=by, why=why, published_at=at)
        )

    def record(
        self,
        version: ModelVersion,
        action: str,
        actor: str,
        why: str,
        handover: str | None,
        at: datetime,
    ) -> int:
        return int(
            self.conn.execute(
                t.model_publications.insert()
                .values(
                    name=version.name,
                    version=version.version,
                    action=action,
                    actor=actor,
                    why=why,
                    handover=handover,
                    at=at,
                )
                .returning(t.model_publications.c.id)
            ).scalar_one()
        )

    def publications(self) -> list[Publication]:
        """Every publish and rollback, in order."""
        c = t.model_publications.c
        rows = self.conn.execute(select(t.model_publications).order_by(c.id)).mappings()
        return [
            Publication(
                r["id"],
                r["name"],
                r["version"],
                r["action"],
                r["actor"],
                r["why"],
                r["handover"],
                r["at"],
            )
            for r in rows
        ]

    def last_publication(self) -> int | None:
        """The number of the latest publish or rollback (a cheap check for a change)."""
        value = self.conn.execute(select(func.max(t.model_publications.c.id))).scalar_one()
        return None if value is None else int(value)

    def lock_publications(self) -> None:
        """Serialise publishes and rollbacks (PostgreSQL; SQLite writers are serial)."""
        if self.conn.dialect.name == "postgresql":
            self.conn.execute(
                select(func.pg_advisory_xact_lock(func.hashtext("leadgate.model_publications")))
            )
