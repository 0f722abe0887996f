"""Sign-in sessions: rows of ``auth_session`` (models.py ``AuthSession``).

A session is found by its id, the SHA-256 (hex) of the cookie's secret; the secret itself
is never stored. A session is open while it has not ended and has not expired.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from server.persistence.db import writer
from server.persistence.models import auth_session_t, aware, utcnow


@dataclass(frozen=True, slots=True)
class SessionRow:
    id: str
    user_id: str
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None

    def is_open(self, now: datetime) -> bool:
        return self.ended_at is None and self.expires_at > now


def _row(row: sa.Row) -> SessionRow:  # type: ignore[type-arg]
    return SessionRow(
        id=row.id,
        user_id=row.user_id,
        created_at=aware(row.created_at),
        expires_at=aware(row.expires_at),
        ended_at=aware(row.ended_at),
    )


class SessionStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(self, session_id: str, user_id: str, ttl_s: float) -> SessionRow:
        now = utcnow()
        row = SessionRow(session_id, user_id, now, now + timedelta(seconds=ttl_s), None)
        async with writer(self._engine).begin() as conn:
            await conn.execute(
                auth_session_t.insert().values(
                    id=row.id,
                    user_id=row.user_id,
                    created_at=row.created_at,
                    expires_at=row.expires_at,
                )
            )
        return row

    async def get(self, session_id: str) -> SessionRow | None:
        async with self._engine.connect() as conn:
            found = (
                await conn.execute(
                    sa.select(auth_session_t).where(auth_session_t.c.id == session_id)
                )
            ).first()
        return None if found is None else _row(found)

    async def end(self, session_id: str) -> SessionRow | None:
        """End an open session; returns it as ended, or None if it was not open (unknown,
        already ended, or expired): only one caller ends a session."""
        now = utcnow()
        async with writer(self._engine).begin() as conn:
            result = await conn.execute(
                auth_session_t.update()
                .where(
                    auth_session_t.c.id == session_id,
                    auth_session_t.c.ended_at.is_(None),
                    auth_session_t.c.expires_at > now,
                )
                .values(ended_at=now)
            )
            if result.rowcount != 1:
                return None
            found = (
                await conn.execute(
                    sa.select(auth_session_t).where(auth_session_t.c.id == session_id)
                )
            ).first()
        return None if found is None else _row(found)

    async def purge(self, older_than_s: float) -> int:
        """Delete the sessions that expired or ended more than ``older_than_s`` ago."""
        cutoff = utcnow() - timedelta(seconds=older_than_s)
        async with writer(self._engine).begin() as conn:
            result = await conn.execute(
                auth_session_t.delete().where(
                    sa.or_(auth_session_t.c.expires_at < cutoff, auth_session_t.c.ended_at < cutoff)
                )
            )
        return int(result.rowcount or 0)
