"""Storage: SQLAlchemy tables, the engine factory, repositories and Alembic migrations.

SQLite (WAL, one writer) is the embedded default; PostgreSQL (psycopg 3) is
for production. See docs/decisions/0002-storage.md.
"""

from leadgate.store.engine import DEFAULT_DATABASE_URL, create_engine, database_url, transact
from leadgate.store.migrate import check, upgrade

__all__ = [
    "DEFAULT_DATABASE_URL",
    "check",
    "create_engine",
    "database_url",
    "transact",
    "upgrade",
]
