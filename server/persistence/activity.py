"""Read-only views for the client: a room's members and docs, the last activity of rooms."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from server.persistence.models import (
    chat_message_t,
    doc_t,
    doc_update_t,
    membership_t,
    unix,
    user_t,
)


def _unix(value: datetime | None) -> float | None:
    if value is None:
        return None
    return unix(value)


async def room_members(engine: AsyncEngine, room_id: str) -> list[dict[str, str]]:
    """The users who are members of the room (students, and teachers for a class)."""
    query = (
        sa.select(user_t.c.id, user_t.c.display_name, user_t.c.role)
        .join(membership_t, membership_t.c.user_id == user_t.c.id)
        .where(membership_t.c.room_id == room_id)
        .order_by(user_t.c.role.desc(), user_t.c.id)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [{"id": r.id, "name": r.display_name, "role": str(r.role)} for r in rows]


async def room_docs(engine: AsyncEngine, room_id: str) -> list[dict[str, Any]]:
    """The docs that exist in a room (a doc exists once somebody wrote in it)."""
    last_update = (
        sa.select(doc_update_t.c.doc_name, sa.func.max(doc_update_t.c.created_at).label("at"))
        .where(doc_update_t.c.room_id == room_id)
        .group_by(doc_update_t.c.doc_name)
        .subquery()
    )
    query = (
        sa.select(doc_t.c.name, doc_t.c.locked, doc_t.c.updated_at, last_update.c.at)
        .outerjoin(last_update, last_update.c.doc_name == doc_t.c.name)
        .where(doc_t.c.room_id == room_id)
        .order_by(doc_t.c.name)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    out = []
    for r in rows:
        stamps = [t for t in (_unix(r.updated_at), _unix(r.at)) if t is not None]
        out.append(
            {"name": r.name, "locked": bool(r.locked), "updated_at": max(stamps, default=None)}
        )
    return out


async def last_activity(
    engine: AsyncEngine, room_ids: list[str]
) -> dict[str, dict[str, float | None]]:
    """For each room: when a doc last changed and when the chat last spoke (unix seconds)."""
    if not room_ids:
        return {}
    docs = (
        sa.select(doc_t.c.room_id, sa.func.max(doc_t.c.updated_at).label("at"))
        .where(doc_t.c.room_id.in_(room_ids))
        .group_by(doc_t.c.room_id)
    )
    updates = (
        sa.select(doc_update_t.c.room_id, sa.func.max(doc_update_t.c.created_at).label("at"))
        .where(doc_update_t.c.room_id.in_(room_ids))
        .group_by(doc_update_t.c.room_id)
    )
    chat = (
        sa.select(chat_message_t.c.room_id, sa.func.max(chat_message_t.c.created_at).label("at"))
        .where(chat_message_t.c.room_id.in_(room_ids))
        .group_by(chat_message_t.c.room_id)
    )
    out: dict[str, dict[str, float | None]] = {r: {"doc": None, "chat": None} for r in room_ids}
    async with engine.connect() as conn:
        for query, key in ((docs, "doc"), (updates, "doc"), (chat, "chat")):
            for row in (await conn.execute(query)).all():
                at = _unix(row.at)
                held = out[row.room_id][key]
                if at is not None and (held is None or at > held):
                    out[row.room_id][key] = at
    return out


async def demo_users(engine: AsyncEngine) -> list[dict[str, str]]:
    """Every user, teachers and parents first: the demo sign-in list (demo mode only)."""
    order = sa.case(
        (user_t.c.role == "teacher", 0),
        (user_t.c.role == "student", 1),
        (user_t.c.role == "parent", 2),
        else_=3,
    )
    query = (
        sa.select(user_t.c.id, user_t.c.display_name, user_t.c.role)
        .where(user_t.c.removed_at.is_(None))
        .order_by(order, user_t.c.id)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [{"id": r.id, "name": r.display_name, "role": str(r.role)} for r in rows]
