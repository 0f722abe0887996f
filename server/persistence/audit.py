"""The audit trail: one row per thing done that someone may have to account for later.

Generic on purpose (an action name, a target, a JSON detail). A row is written in the
transaction of what it records, so it exists exactly when that did: a store method that
changes something worth accounting for takes an optional :class:`Note` and writes it in
its own transaction. The trail is append-only: there is no update path here, and the
database refuses one (migration 0008's triggers); deleting old rows is the retention
job's business alone.

The actions written (``ACTIONS``; docs/operations.md, "Audit trail"): who did it
(``actor``: a user id, ``cli``, or ``deadline`` for the clock), on which node, what
(``target``: a room, ``room/doc``, a work, a user), and a detail that never holds chat
or document content.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from server.persistence.models import audit_t, aware, utcnow

#: The actor of what the command line does (no user signed in).
CLI_ACTOR = "cli"

#: Every action the code writes, for the admin screen's filter and the docs.
ACTIONS = (
    "roster.import",
    "group.create",
    "group.update",
    "group.move",
    "revoke.jti",
    "revoke.sid",
    "revoke.user",
    "chat.delete",
    "chat.mute",
    "chat.unmute",
    "doc.lock",
    "doc.unlock",
    "assignment.due_at",
    "work.reopen",
    "work.return",
    "room.presence",
    "audit.export",
)


@dataclass(frozen=True, slots=True)
class Note:
    """An audit row to write inside the transaction of the change it records."""

    actor: str
    node: str
    action: str
    target: str | None = None
    detail: dict[str, Any] | None = None

    async def write(self, conn: AsyncConnection) -> int:
        return await record(
            conn,
            actor=self.actor,
            node=self.node,
            action=self.action,
            target=self.target,
            detail=self.detail,
        )


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


@dataclass(frozen=True, slots=True)
class Filter:
    """What a reader asks for; every field optional (``until`` excluded)."""

    since: datetime | None = None
    until: datetime | None = None
    actor: str | None = None
    action: str | None = None
    target: str | None = None

    def where(self, query: sa.Select[Any]) -> sa.Select[Any]:
        c = audit_t.c
        if self.since is not None:
            query = query.where(c.at >= self.since)
        if self.until is not None:
            query = query.where(c.at < self.until)
        for column, value in ((c.actor, self.actor), (c.action, self.action)):
            if value is not None:
                query = query.where(column == value)
        if self.target is not None:
            query = query.where(c.target == self.target)
        return query

    def to_json(self) -> dict[str, Any]:
        return {
            k: (v.isoformat() if isinstance(v, datetime) else v)
            for k, v in (
                ("since", self.since),
                ("until", self.until),
                ("actor", self.actor),
                ("action", self.action),
                ("target", self.target),
            )
            if v is not None
        }


def _entry(r: Any) -> AuditEntry:
    try:
        detail = json.loads(r.detail)
    except ValueError:
        detail = {"unreadable": True}
    return AuditEntry(
        id=r.id,
        at=aware(r.at),
        actor=r.actor,
        node=r.node,
        action=r.action,
        target=r.target,
        detail=detail if isinstance(detail, dict) else {"value": detail},
    )


async def page(
    engine: AsyncEngine, where: Filter, before: int | None, limit: int
) -> list[AuditEntry]:
    """Up to ``limit`` entries with ``id < before`` (None: the newest), newest first:
    keyset paging on the primary key, so a page costs the same however deep it is."""
    query = where.where(sa.select(audit_t))
    if before is not None:
        query = query.where(audit_t.c.id < before)
    query = query.order_by(audit_t.c.id.desc()).limit(limit)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [_entry(r) for r in rows]


async def stream(
    engine: AsyncEngine, where: Filter, max_rows: int, batch: int = 1000
) -> AsyncIterator[AuditEntry]:
    """Every entry ``where`` selects, newest first, up to ``max_rows``: read a batch at a
    time (no transaction held open while the client reads)."""
    before: int | None = None
    left = max_rows
    while left > 0:
        rows = await page(engine, where, before, min(batch, left))
        for entry in rows:
            yield entry
        if len(rows) < min(batch, left):
            return
        left -= len(rows)
        before = rows[-1].id


async def entries(
    engine: AsyncEngine, action: str | None = None, limit: int = 100
) -> list[AuditEntry]:
    """The newest entries first (of one action, if given)."""
    return await page(engine, Filter(action=action), None, limit)
