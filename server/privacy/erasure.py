"""Erasure of a person, on every node (admins run it; see server/api/privacy.py).

Theory of operation, in this order:

1. the docs to look at are listed while the person's memberships still exist;
2. they are shut out: their roster entry marked removed (``removed_at``: unknown at
   sign-in and to every access check), their sign-in sessions ended everywhere
   (server/sessions/), their sockets checked again on every node (server/revocation/:
   each closes with 4403 or 4401); then ERASURE_SETTLE_S for what those sockets sent
   to reach the database (write-behind);
3. one write transaction (server/persistence/personal.py ``erase_rows``): chat text
   gone and authors pseudonymised, the doc log's authors, versions, snapshots'
   attribution summaries and hand-ins pseudonymised, notifications and sessions
   deleted, the roster entry (memberships, parent links) deleted;
4. every node is told on the bus (topic ``privacy``): it renames the person in the
   ledgers of the docs it holds (their updates are all in by now), drops them from its
   roster caches, and shows the room channels it holds their emptied messages
   (« message supprimé », a new version of each);
5. the doc log and summaries are pseudonymised once more, for a node slower than the
   settle delay;
6. the audit row ``privacy.erase``: who ran it, the person's id, counts and time —
   never a name, never the pseudonym.

The pseudonym (``anon-`` and 16 random hex digits) is written nowhere beside the
person's id: the bus message of step 4 carries both, for the nodes to rename, and is
kept by none. What the person typed stays in the shared docs (the group's work), now
attributed to the pseudonym.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import msgpack
from sqlalchemy.ext.asyncio import AsyncEngine

from server.bus.base import Envelope
from server.bus.outbox import Outbox
from server.persistence import audit, personal
from server.persistence.db import writer
from server.progress.service import Progress, rename_summary
from server.revocation.service import Revocations
from server.sessions.service import Sessions

log = logging.getLogger(__name__)

TOPIC = "privacy"
KIND_ERASED = "erased"
PSEUDONYM_PREFIX = "anon-"


def pseudonym() -> str:
    return PSEUDONYM_PREFIX + secrets.token_hex(8)


@dataclass(frozen=True, slots=True)
class ErasureReport:
    user_id: str
    counts: dict[str, int]
    sockets_closed: int
    sessions_ended: int
    docs_renamed_here: int
    seconds: float

    def to_json(self) -> dict[str, object]:
        return {
            "user_id": self.user_id,
            "counts": self.counts,
            "sockets_closed": self.sockets_closed,
            "sessions_ended": self.sessions_ended,
            "docs_renamed_here": self.docs_renamed_here,
            "seconds": round(self.seconds, 3),
        }


class Erasure:
    def __init__(
        self,
        engine: AsyncEngine,
        outbox: Outbox,
        progress: Progress,
        sessions: Sessions,
        revocations: Revocations,
        node_id: str,
        settle_s: float,
    ) -> None:
        self.engine = engine
        self.outbox = outbox
        self.bus = outbox.bus
        self.progress = progress
        self.sessions = sessions
        self.revocations = revocations
        self.node_id = node_id
        self.settle_s = settle_s
        #: Drops users from this node's roster caches (set by the app: AppContext.forget).
        self.forget: Callable[[Iterable[str]], None] = lambda users: None
        #: The room channels this node holds (set by the app: the live hub's rooms).
        self.chat_rooms: Callable[[], list[str]] = lambda: []
        #: Show a room channel's changed messages (set by the app: ``LiveRoom.accept``).
        self.chat_changed: Callable[[str, list[dict[str, Any]]], None] = lambda room, m: None
        # One erasure at a time on a node: two of the same person would race.
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        await self.bus.subscribe(TOPIC, self._on_bus)

    async def close(self) -> None:
        await self.bus.unsubscribe(TOPIC)

    async def _here(self, user_id: str, alias: str) -> int:
        self.forget([user_id])
        renamed = self.progress.rename_user(user_id, alias)
        try:
            messages = await personal.messages_of(self.engine, alias, self.chat_rooms())
        except Exception:
            log.exception("erased messages not shown to the open channels")
            return renamed
        by_room: dict[str, list[dict[str, Any]]] = {}
        for m in messages:
            by_room.setdefault(m.room_id, []).append(m.to_wire())
        for room_id, changed in by_room.items():
            self.chat_changed(room_id, changed)
        return renamed

    async def _on_bus(self, topic: str, envelope: Envelope) -> None:
        if envelope.kind != KIND_ERASED:
            return
        try:
            body = msgpack.unpackb(envelope.payload, raw=False)
            user, alias = body["user"], body["alias"]
            if not (isinstance(user, str) and isinstance(alias, str) and user and alias):
                raise TypeError
        except Exception:
            log.warning("malformed privacy message from %s", envelope.origin)
            return
        await self._here(user, alias)

    async def erase(self, user_id: str, actor: str) -> ErasureReport | None:
        """Erase ``user_id``; None if the roster does not hold them. Stopped half-way (a
        crash), the person is left shut out and not erased: running it again finishes."""
        async with self._lock:
            return await self._erase(user_id, actor)

    async def _erase(self, user_id: str, actor: str) -> ErasureReport | None:
        started = time.perf_counter()
        docs = await personal.docs_touched(self.engine, user_id)
        # Shut them out first, everywhere: signed out, unknown to the roster, sockets
        # closed; then wait for what their sockets sent to be stored.
        if not await personal.shut_out(self.engine, user_id):
            return None
        ended = 0
        for sid in await personal.open_sessions(self.engine, user_id):
            ended += bool(await self.sessions.end(sid))
        closed = await self.revocations.users([user_id], reason="erased")
        if self.settle_s:
            await asyncio.sleep(self.settle_s)
        alias = pseudonym()
        counts = await personal.erase_rows(self.engine, user_id, alias, docs, rename_summary)
        if counts is None:
            return None  # erased meanwhile by another admin on another node
        self.outbox.publish(
            TOPIC, KIND_ERASED, msgpack.packb({"user": user_id, "alias": alias}, use_bin_type=True)
        )
        renamed = await self._here(user_id, alias)
        # A node slower than the settle delay may still have stored an update of theirs.
        late = await personal.pseudonymise_docs(self.engine, docs, user_id, alias, rename_summary)
        for key, n in late.items():
            counts[key] = counts.get(key, 0) + n
        seconds = time.perf_counter() - started
        async with writer(self.engine).begin() as conn:
            await audit.record(
                conn,
                actor=actor,
                node=self.node_id,
                action="privacy.erase",
                target=user_id,
                detail={"counts": counts, "seconds": round(seconds, 3)},
            )
        log.info("erased a user: %s rows in %.2fs", sum(counts.values()), seconds)
        return ErasureReport(user_id, counts, closed, ended, renamed, seconds)
