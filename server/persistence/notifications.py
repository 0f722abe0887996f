"""The notification feed of each user, and the ENT outbox (``notification_delivery``).

A notification and its outbox row are written in one transaction: a notification the
feed shows is one the ENT will receive, however the node fares after the commit. The
outbox is drained by ``server/notifications/webhook.py`` with leases: a row is taken by
one node for ``lease_s`` (``lease_until``), POSTed, then marked delivered or given its
next try; a node that dies while holding it only delays it by the lease.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from server.persistence.db import writer
from server.persistence.models import (
    notification_delivery_t,
    notification_t,
    unix,
    utcnow,
)


@dataclass(frozen=True, slots=True)
class NotificationRow:
    id: str
    user_id: str
    kind: str
    child_id: str | None
    assignment_id: str | None
    work_id: str | None
    title: str
    body: str
    created_at: float
    read: bool

    @classmethod
    def of(cls, row: Any, *, read: bool | None = None) -> NotificationRow:
        """From a result row, or from the values just inserted (a mapping; ``read``)."""
        get = row.__getitem__ if isinstance(row, dict) else lambda k: getattr(row, k)
        return cls(
            id=get("id"),
            user_id=get("user_id"),
            kind=get("kind"),
            child_id=get("child_id"),
            assignment_id=get("assignment_id"),
            work_id=get("work_id"),
            title=get("title"),
            body=get("body"),
            created_at=unix(get("created_at")),
            read=get("read_at") is not None if read is None else read,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "child_id": self.child_id,
            "assignment_id": self.assignment_id,
            "work_id": self.work_id,
            "title": self.title,
            "body": self.body,
            "at": self.created_at,
            "read": self.read,
        }


class NotificationStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = writer(engine)

    async def add(self, rows: Sequence[dict[str, Any]], *, outbox: bool) -> None:
        """Insert notifications (and their outbox rows, when an ENT URL is set)."""
        if not rows:
            return
        async with self._writer.begin() as conn:
            await conn.execute(notification_t.insert(), list(rows))
            if outbox:
                await conn.execute(
                    notification_delivery_t.insert(),
                    [{"notification_id": r["id"], "next_at": r["created_at"]} for r in rows],
                )

    async def feed(
        self, user_id: str, *, before: float | None = None, limit: int = 30
    ) -> list[NotificationRow]:
        """The newest first; ``before``: older than this time (paging)."""
        query = sa.select(notification_t).where(notification_t.c.user_id == user_id)
        if before is not None:
            query = query.where(notification_t.c.created_at < _at(before))
        query = query.order_by(notification_t.c.created_at.desc(), notification_t.c.id).limit(limit)
        async with self._engine.connect() as conn:
            return [NotificationRow.of(r) for r in await conn.execute(query)]

    async def unread(self, user_id: str) -> int:
        async with self._engine.connect() as conn:
            return int(
                await conn.scalar(
                    sa.select(sa.func.count()).where(
                        notification_t.c.user_id == user_id, notification_t.c.read_at.is_(None)
                    )
                )
                or 0
            )

    async def mark_read(self, user_id: str, ids: Sequence[str] | None) -> int:
        """Mark some (``ids``) or all (None) of a user's notifications read."""
        query = notification_t.update().where(
            notification_t.c.user_id == user_id, notification_t.c.read_at.is_(None)
        )
        if ids is not None:
            query = query.where(notification_t.c.id.in_(list(ids)))
        async with self._writer.begin() as conn:
            result = await conn.execute(query.values(read_at=utcnow()))
            return int(result.rowcount or 0)

    # --- the ENT outbox ---

    async def take_due(self, now: datetime, lease_s: float, limit: int) -> list[dict[str, Any]]:
        """Lease up to ``limit`` due deliveries to this node; returns their notifications."""
        due = sa.and_(
            notification_delivery_t.c.delivered_at.is_(None),
            notification_delivery_t.c.next_at <= now,
            sa.or_(
                notification_delivery_t.c.lease_until.is_(None),
                notification_delivery_t.c.lease_until < now,
            ),
        )
        ids = (
            sa.select(notification_delivery_t.c.notification_id)
            .where(due)
            .order_by(notification_delivery_t.c.next_at)
            .limit(limit)
        )
        async with self._writer.begin() as conn:
            taken = await conn.execute(
                notification_delivery_t.update()
                .where(notification_delivery_t.c.notification_id.in_(ids.scalar_subquery()), due)
                .values(lease_until=now + timedelta(seconds=lease_s))
                .returning(
                    notification_delivery_t.c.notification_id, notification_delivery_t.c.attempts
                )
            )
            attempts = {r.notification_id: r.attempts for r in taken}
            if not attempts:
                return []
            rows = await conn.execute(
                sa.select(notification_t).where(notification_t.c.id.in_(list(attempts)))
            )
            out = []
            for r in rows:
                item = NotificationRow.of(r)
                out.append({"row": item, "user_id": item.user_id, "attempts": attempts[item.id]})
            return out

    async def delivered(self, notification_ids: list[str]) -> None:
        async with self._writer.begin() as conn:
            await conn.execute(
                notification_delivery_t.update()
                .where(notification_delivery_t.c.notification_id.in_(notification_ids))
                .values(delivered_at=utcnow(), lease_until=None, last_error=None)
            )

    async def retry_later(self, notification_id: str, next_at: datetime, error: str) -> None:
        async with self._writer.begin() as conn:
            await conn.execute(
                notification_delivery_t.update()
                .where(notification_delivery_t.c.notification_id == notification_id)
                .values(
                    attempts=notification_delivery_t.c.attempts + 1,
                    next_at=next_at,
                    lease_until=None,
                    last_error=error[:500],
                )
            )

    async def pending_deliveries(self) -> int:
        async with self._engine.connect() as conn:
            return int(
                await conn.scalar(
                    sa.select(sa.func.count()).where(
                        notification_delivery_t.c.delivered_at.is_(None)
                    )
                )
                or 0
            )


def _at(unix_s: float) -> datetime:
    return datetime.fromtimestamp(unix_s, UTC)
