"""Alembic environment: runs the migrations on the async engine of ``server.persistence``.

The URL comes from ``config.attributes["url"]`` (set by ``db.alembic_config``), so there is
no alembic.ini and the folder ships inside the wheel. The engine is ours (same SQLite
pragmas); the upgrade runs in one write transaction, in a loop of its own
(``asyncio.run``), which is why ``run_migrations`` is called outside any running loop.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from server.persistence import models
from server.persistence.db import create_engine, writer

config = context.config
target_metadata = models.metadata


def _url() -> str:
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL given to the migrations")
    return str(url)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # ALTER on SQLite = rebuild
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    engine = create_engine(_url())
    try:
        async with writer(engine).begin() as conn:
            await conn.run_sync(_run)
    finally:
        await engine.dispose()


def _run_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    _run_offline()
else:
    asyncio.run(_run_online())
