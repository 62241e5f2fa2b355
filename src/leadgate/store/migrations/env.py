"""Alembic environment: runs migrations on the engine that ``leadgate.store.migrate`` passes."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from leadgate.store.engine import create_engine, database_url
from leadgate.store.tables import metadata

config = context.config


def run_migrations() -> None:
    engine = config.attributes.get("engine")
    owned = not isinstance(engine, Engine)
    if not isinstance(engine, Engine):
        engine = create_engine(database_url(config.get_main_option("sqlalchemy.url")))
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=metadata,
                compare_type=True,
                compare_server_default=True,
                render_as_batch=connection.dialect.name == "sqlite",
            )
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
    finally:
        if owned:
            engine.dispose()


if context.is_offline_mode():
    raise SystemExit("leadgate migrations run online only (give a database URL)")
run_migrations()
