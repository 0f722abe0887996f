"""The revocation list kept in the database (server/revocation/): sign-in sessions and
tokens refused until they would have expired, so that no restart forgets one."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from server.persistence.db import writer
from server.persistence.models import revoked_t, unix, utcnow


class RevokedStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = writer(engine)

    async def add(self, kind: str, value: str, until: float) -> None:
        when = datetime.fromtimestamp(until, UTC)
        async with self._writer.begin() as conn:
            await conn.execute(
                revoked_t.delete().where(revoked_t.c.kind == kind, revoked_t.c.value == value)
            )
            await conn.execute(revoked_t.insert().values(kind=kind, value=value, until=when))
            # The expired ones are useless: swept on the way.
            await conn.execute(revoked_t.delete().where(revoked_t.c.until < utcnow()))

    async def current(self) -> list[tuple[str, str, float]]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(sa.select(revoked_t).where(revoked_t.c.until >= utcnow()))
            return [(r.kind, r.value, unix(r.until)) for r in rows]
