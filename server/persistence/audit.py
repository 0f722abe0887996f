"""The audit trail: one row per thing done that someone may have to account for later.

Generic on purpose (an action name, a target, a JSON detail): the roster import writes
``roster.import`` rows today; a later issue builds the trail's reading side on it. A row
is written in the transaction of what it records, so it exists exactly when that did.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from server.persistence.models import audit_t, aware, utcnow

#: The actor of what the command line does (no user signed in).
CLI_ACTOR = "cli"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    node: str
    action: str
    target: str | None
    detail: dict[str, Any]


async def record(
    conn: AsyncConnection,
    *,
    actor: str,
    node: str,
    action: str,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
) -> int:
    """Append one row inside the caller's transaction; returns its id."""
    result = await conn.execute(
        audit_t.insert()
        .values(
            at=utcnow(),
            actor=actor,
            node=node,
            action=action,
            target=target,
            detail=json.dumps(detail or {}, ensure_ascii=False, sort_keys=True),
        )
        .returning(audit_t.c.id)
    )
    return int(result.scalar_one())


async def entries(
    engine: AsyncEngine, action: str | None = None, limit: int = 100
) -> list[AuditEntry]:
    """The newest entries first (of one action, if given)."""
    query = sa.select(audit_t).order_by(audit_t.c.id.desc()).limit(limit)
    if action is not None:
        query = query.where(audit_t.c.action == action)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [
        AuditEntry(
            id=r.id,
            at=aware(r.at),
            actor=r.actor,
            node=r.node,
            action=r.action,
            target=r.target,
            detail=json.loads(r.detail),
        )
        for r in rows
    ]
