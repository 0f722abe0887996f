"""The notifier: one call writes a notification for each recipient (and its ENT outbox
row, in the same transaction), then pushes it live to the recipients' open room
channels, on every node (``push``: ``LiveHub.notify``).

A recipient is a user and, for a parent, the child the notification is about: a parent
is told about their own child's work only, and a notification never carries another
minor's content (titles and dates, never a doc's text or a classmate's name).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from server import metrics
from server.persistence.models import utcnow
from server.persistence.notifications import NotificationRow, NotificationStore

log = logging.getLogger(__name__)

#: (room ids to reach the users through, {user id: [notification json]}) → None.
Push = Callable[[Sequence[str], dict[str, list[dict[str, Any]]]], None]

KINDS = ("assigned", "due_soon", "handed_in", "returned", "reopened")


@dataclass(frozen=True, slots=True)
class Recipient:
    user_id: str
    child_id: str | None = None  # set for a parent: whose work this is about


class Notifier:
    def __init__(self, store: NotificationStore, *, outbox: bool, push: Push | None) -> None:
        self.store = store
        self.outbox = outbox
        self.push = push
        #: Called after each commit of a batch (the webhook worker wakes up).
        self.on_written: Callable[[], None] | None = None

    async def send(
        self,
        recipients: Sequence[Recipient],
        kind: str,
        title: str,
        body: str = "",
        *,
        rooms: Sequence[str] = (),
        assignment_id: str | None = None,
        work_id: str | None = None,
    ) -> list[NotificationRow]:
        if kind not in KINDS:
            raise ValueError(f"unknown notification kind {kind!r}")
        seen: set[tuple[str, str | None]] = set()
        now = utcnow()
        rows: list[dict[str, Any]] = []
        for r in recipients:
            if (r.user_id, r.child_id) in seen:
                continue
            seen.add((r.user_id, r.child_id))
            rows.append(
                {
                    "id": uuid.uuid4().hex,
                    "user_id": r.user_id,
                    "kind": kind,
                    "child_id": r.child_id,
                    "assignment_id": assignment_id,
                    "work_id": work_id,
                    "title": title[:200],
                    "body": body[:2000],
                    "created_at": now,
                }
            )
        try:
            await self.store.add(rows, outbox=self.outbox)
        except Exception:
            metrics.FEED_FAILED.inc(len(rows))
            raise
        metrics.FEED_SENT.inc(len(rows))
        made = [NotificationRow.of(r, read=False) for r in rows]
        if self.on_written is not None and self.outbox:
            self.on_written()
        if self.push is not None and rooms and made:
            by_user: dict[str, list[dict[str, Any]]] = {}
            for n in made:
                by_user.setdefault(n.user_id, []).append(n.to_json())
            self.push(rooms, by_user)
        return made
