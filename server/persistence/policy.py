"""Rooms' own policies (``room_policy``), set by their teachers.

Today one: how students' names show to the room (``presence_names``; the naming itself
is ``live/names.py``). A room without a row shows full names.
"""

from __future__ import annotations

from typing import Literal, get_args

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from server.persistence.audit import Note
from server.persistence.db import is_postgres, writer
from server.persistence.models import room_policy_t, utcnow

Names = Literal["full", "initial", "pseudonym"]
NAMES: tuple[str, ...] = get_args(Names)


async def presence_names(engine: AsyncEngine, room_id: str) -> Names:
    async with engine.connect() as conn:
        value = await conn.scalar(
            sa.select(room_policy_t.c.presence_names).where(room_policy_t.c.room_id == room_id)
        )
    return value if value in NAMES else "full"  # type: ignore[return-value]


async def set_presence_names(
    engine: AsyncEngine, room_id: str, names: Names, by: str, audit: Note | None = None
) -> None:
    """Store the room's naming; ``audit`` is written in the same transaction."""
    insert = (postgresql.insert if is_postgres(engine) else sqlite.insert)(room_policy_t)
    now = utcnow()
    stmt = insert.values(room_id=room_id, presence_names=names, set_by=by, set_at=now)
    stmt = stmt.on_conflict_do_update(
        index_elements=["room_id"], set_={"presence_names": names, "set_by": by, "set_at": now}
    )
    async with writer(engine).begin() as conn:
        await conn.execute(stmt)
        if audit is not None:
            await audit.write(conn)
