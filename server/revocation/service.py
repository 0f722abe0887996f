"""Revocation across nodes: a change that removes or lowers someone's access reaches every
node's sockets through the bus, at once.

Three things can be revoked:

- **a user's access** (a roster import, a group move, a parent link removed, an account
  disabled): every node drops the user from its roster caches, then checks each socket
  the user holds again, as at admission. A socket left without access is closed with
  4403 (after y-protocols' "permission denied" on a doc socket); a doc socket whose
  access changed but remains (read-write → read-only) is regraded in place; a room
  channel whose access changed is closed with 1013 so that the client reconnects and
  gets its new rights in a fresh ``hello``. Closing a socket ends its presence and its
  awareness like any close.
- **a sign-in session** (sign-out): its sockets close with 4401 on every node, and any
  token minted for it (``sid`` claim) is refused until it would have expired.
- **a token** (``jti``): refused until its ``exp``, and the sockets it opened close with
  4401; a stolen token is useless from then.

The check itself (``recheck``) belongs to the API layer (the permission table, the docs of
works); this package only knows sockets, the bus and the list of what is revoked.
Revoked sessions and tokens are also written to the database (``store``), so that they
outlive a restart of every node; each node reads them at start.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

import msgpack

from server.bus.base import Envelope
from server.bus.outbox import Outbox
from server.revocation.sockets import Held, SocketIndex
from server.transport.codes import Close
from server.types import RoomAccess

log = logging.getLogger(__name__)

TOPIC = "revocation"
KIND_USERS = "users"
KIND_SESSION = "session"
KIND_TOKEN = "token"
#: The roster changed wholesale (an import): every node drops its roster caches, so that
#: access gained (a new group) is seen at once too, not only access lost.
KIND_ROSTER = "roster"
#: Past this many remembered sessions and tokens, the expired ones are swept at insert.
SWEEP_AT = 4096

Recheck = Callable[[Held], Awaitable[RoomAccess | None]]


class RevokedList(Protocol):
    """Where the revoked sessions and tokens outlive restarts (the database)."""

    async def add(self, kind: str, value: str, until: float) -> None: ...

    async def current(self) -> list[tuple[str, str, float]]: ...


def roster_messages(
    lowered: Iterable[str], reason: str = "roster import"
) -> list[tuple[str, str, bytes]]:
    """What ``Revocations.roster_changed`` publishes, for a process that is not a node (the
    CLI's import) to publish on the bus itself: (topic, kind, payload)."""
    users = {"users": sorted(set(lowered)), "reason": reason}
    return [(TOPIC, KIND_ROSTER, msgpack.packb({})), (TOPIC, KIND_USERS, msgpack.packb(users))]


class Revocations:
    def __init__(
        self, outbox: Outbox, sockets: SocketIndex, store: RevokedList | None = None
    ) -> None:
        self.outbox = outbox
        self.store = store
        self.bus = outbox.bus
        self.sockets = sockets
        #: Drops users from the roster caches (set by the app: AppContext's caches).
        self.forget: Callable[[Iterable[str]], None] = lambda users: None
        #: Drops the whole roster caches.
        self.forget_all: Callable[[], None] = lambda: None
        #: A socket's access as it is now, or None when it has none (set by the app).
        self.recheck: Recheck | None = None
        #: "sid:…" / "jti:…" → until when it is refused (unix seconds).
        self._revoked: dict[str, float] = {}
        self.closed = 0
        self.regraded = 0

    async def start(self) -> None:
        if self.store is not None:
            self.load(await self.store.current())
        await self.bus.subscribe(TOPIC, self._on_bus)
        self.bus.on_reconnect(self._reconnected)

    async def close(self) -> None:
        await self.bus.unsubscribe(TOPIC)

    # --- what callers revoke ---

    async def users(self, user_ids: Iterable[str], reason: str = "access changed") -> int:
        """Their access changed: every node checks their sockets again. Returns how many
        sockets this node closed or regraded."""
        ids = sorted(set(user_ids))
        if not ids:
            return 0
        self._publish(KIND_USERS, {"users": ids, "reason": reason})
        return await self._recheck_users(ids, reason)

    async def roster_changed(self, lowered: Iterable[str], reason: str = "roster import") -> int:
        """A roster import: every node drops its roster caches, and the users whose
        access went down have their sockets checked again."""
        self.forget_all()
        self._publish(KIND_ROSTER, {})
        return await self.users(lowered, reason)

    async def end_session(self, session_id: str, until: float, reason: str = "signed out") -> int:
        """A sign-in session ended: its sockets close (4401) and its tokens are refused."""
        self._remember(f"sid:{session_id}", until)
        if self.store is not None:
            await self.store.add("sid", session_id, until)
        self._publish(KIND_SESSION, {"sid": session_id, "until": until, "reason": reason})
        return self._close(f"sid:{session_id}", reason)

    async def session_ended_here(self, session_id: str, user_id: str) -> None:
        """Signed out (server/sessions/ tells every node): the session's sockets on this
        node close with 4401. Its tokens are refused by the session check itself."""
        self._close(f"sid:{session_id}", "signed out")

    async def revoke_token(self, token_id: str, until: float) -> int:
        """A token (its ``jti``) is refused from now until ``until`` (its ``exp``), and the
        sockets it opened close (4401)."""
        self._remember(f"jti:{token_id}", until)
        if self.store is not None:
            await self.store.add("jti", token_id, until)
        self._publish(KIND_TOKEN, {"jti": token_id, "until": until})
        return self._close(f"jti:{token_id}", "token revoked")

    def load(self, entries: Iterable[tuple[str, str, float]]) -> None:
        """What the database holds: (kind "sid" | "jti", value, until)."""
        for kind, value, until in entries:
            self._remember(f"{kind}:{value}", until)

    def is_revoked(self, token_id: str | None, session_id: str | None) -> bool:
        now = time.time()
        for key in (
            f"jti:{token_id}" if token_id else None,
            f"sid:{session_id}" if session_id else None,
        ):
            if key is not None:
                until = self._revoked.get(key)
                if until is not None and until > now:
                    return True
        return False

    # --- on this node ---

    async def _recheck_users(self, ids: list[str], reason: str) -> int:
        self.forget(ids)
        recheck = self.recheck
        if recheck is None:
            return 0
        touched = 0
        for user_id in ids:
            for held in self.sockets.of_user(user_id):
                try:
                    access = await recheck(held)
                except Exception:
                    log.exception("revocation: could not check %s on %s", user_id, held.room_id)
                    continue
                touched += self._apply(held, access, reason)
        if touched:
            log.info(
                "revocation (%s): %d socket(s) of %d user(s) changed", reason, touched, len(ids)
            )
        return touched

    def _apply(self, held: Held, access: RoomAccess | None, reason: str) -> int:
        peer = held.peer
        if access is None:
            if held.denied is not None:
                peer.send(held.denied(f"access revoked: {reason}"))
            peer.close(Close.FORBIDDEN, f"access revoked: {reason}"[:120])
            self.sockets.discard(held)
            self.closed += 1
            return 1
        if access == peer.access:
            return 0
        if held.doc_name is not None:
            peer.regrade(access)  # the registry reads it at each frame
            self.regraded += 1
            return 1
        peer.close(Close.TRY_LATER, "access changed, reconnect")
        self.sockets.discard(held)
        self.closed += 1
        return 1

    def _close(self, key: str, reason: str) -> int:
        held = self.sockets.of_key(key)
        for h in held:
            h.peer.close(Close.UNAUTHENTICATED, reason[:120])
            self.sockets.discard(h)
        self.closed += len(held)
        return len(held)

    def _remember(self, key: str, until: float) -> None:
        self._revoked[key] = max(until, self._revoked.get(key, 0.0))
        if len(self._revoked) > SWEEP_AT:
            now = time.time()
            self._revoked = {k: u for k, u in self._revoked.items() if u > now}

    # --- the bus ---

    def _publish(self, kind: str, body: dict[str, Any]) -> None:
        self.outbox.publish(TOPIC, kind, msgpack.packb(body))

    async def _on_bus(self, topic: str, env: Envelope) -> None:
        try:
            body = msgpack.unpackb(env.payload, raw=False)
            if not isinstance(body, dict):
                raise ValueError("not a map")
            if env.kind == KIND_USERS:
                users = [u for u in body.get("users", []) if isinstance(u, str)]
                await self._recheck_users(users, str(body.get("reason", "access changed")))
            elif env.kind == KIND_SESSION:
                key = f"sid:{body['sid']}"
                self._remember(key, float(body["until"]))
                self._close(key, str(body.get("reason", "signed out")))
            elif env.kind == KIND_ROSTER:
                self.forget_all()
            elif env.kind == KIND_TOKEN:
                key = f"jti:{body['jti']}"
                self._remember(key, float(body["until"]))
                self._close(key, "token revoked")
        except Exception as exc:
            log.warning("dropped a revocation %s from node %s: %s", env.kind, env.origin, exc)

    async def _reconnected(self) -> None:
        """Revocations published while the bus was down never came: what this node
        cached of the roster may be stale, so it reads it again."""
        self.forget(list(self.sockets.users()))
