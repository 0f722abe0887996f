"""Retention: delete what is older than its data class keeps (server/privacy/retention.py
decides when, and once across nodes).

Each class is one or two DELETE statements by date, in batches of ids so that a first run
on a region's database (years of chat) never holds one huge transaction, and each
``dry_run`` is the same query counted instead of deleted.

- chat: messages older than the cutoff (``seq`` of the newer ones unchanged; a room's
  history simply starts later);
- documents: docs whose last change (the row's ``updated_at`` and the log's newest
  entry) is older than the cutoff, with their log and versions (ON DELETE CASCADE), and
  assignments due before the cutoff with their works;
- versions: automatic checkpoints (``pause``, ``session``, ``interval``) older than the
  cutoff; named versions, restores and rendus live as long as their doc;
- notifications: entries older than the cutoff (their ENT outbox rows cascade);
- audit: rows older than the cutoff.

Expired sign-in sessions are purged by server/sessions/ itself.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from server.persistence.db import writer
from server.persistence.models import (
    assignment_t,
    audit_t,
    chat_message_t,
    doc_t,
    doc_update_t,
    doc_version_t,
    notification_t,
)

#: Rows per DELETE transaction.
BATCH = 2000
#: The automatic checkpoints (server/progress/checkpoints.py), the only versions that age.
AUTOMATIC_VERSIONS = ("pause", "session", "interval")


async def _purge(
    engine: AsyncEngine,
    table: sa.Table,
    key: sa.Column[object],
    where: sa.ColumnElement[bool],
    dry_run: bool,
) -> int:
    if dry_run:
        async with engine.connect() as conn:
            return int(
                await conn.scalar(sa.select(sa.func.count()).select_from(table).where(where)) or 0
            )
    total = 0
    for _ in range(1_000_000):  # bounded: a billion rows at most per run
        async with writer(engine).begin() as conn:
            ids = list(await conn.scalars(sa.select(key).where(where).limit(BATCH)))
            if not ids:
                break
            await conn.execute(table.delete().where(key.in_(ids)))
        total += len(ids)
        if len(ids) < BATCH:
            break
    return total


async def chat(engine: AsyncEngine, cutoff: datetime, dry_run: bool) -> int:
    t = chat_message_t
    return await _purge(engine, t, t.c.id, t.c.created_at < cutoff, dry_run)


async def notifications(engine: AsyncEngine, cutoff: datetime, dry_run: bool) -> int:
    t = notification_t
    return await _purge(engine, t, t.c.id, t.c.created_at < cutoff, dry_run)


async def audit(engine: AsyncEngine, cutoff: datetime, dry_run: bool) -> int:
    t = audit_t
    return await _purge(engine, t, t.c.id, t.c.at < cutoff, dry_run)


async def versions(engine: AsyncEngine, cutoff: datetime, dry_run: bool) -> int:
    t = doc_version_t
    where = t.c.kind.in_(AUTOMATIC_VERSIONS) & (t.c.created_at < cutoff)
    return await _purge(engine, t, t.c.id, where, dry_run)


async def documents(engine: AsyncEngine, cutoff: datetime, dry_run: bool) -> dict[str, int]:
    """Idle docs (and, with them, their log and versions), and old assignments."""
    newest = (
        sa.select(sa.func.max(doc_update_t.c.created_at))
        .where(
            (doc_update_t.c.room_id == doc_t.c.room_id) & (doc_update_t.c.doc_name == doc_t.c.name)
        )
        .scalar_subquery()
    )
    idle = (doc_t.c.updated_at < cutoff) & sa.or_(newest.is_(None), newest < cutoff)
    query = sa.select(doc_t.c.room_id, doc_t.c.name).where(idle)
    docs = 0
    async with engine.connect() as conn:
        found = (await conn.execute(query)).all()
    if dry_run:
        docs = len(found)
    else:
        for start in range(0, len(found), BATCH):
            chunk = found[start : start + BATCH]
            async with writer(engine).begin() as conn:
                for room_id, name in chunk:
                    # Checked again inside the write: a doc edited since the read stays.
                    result = await conn.execute(
                        doc_t.delete().where(
                            (doc_t.c.room_id == room_id) & (doc_t.c.name == name) & idle
                        )
                    )
                    docs += result.rowcount or 0
    a = assignment_t
    assignments = await _purge(engine, a, a.c.id, a.c.due_at < cutoff, dry_run)
    return {"documents": docs, "assignments": assignments}
