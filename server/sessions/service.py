"""Sign-in sessions — theory of operation.

Signing in through the ENT (server/api/auth.py) opens a session: a random secret goes to
the browser in an HttpOnly cookie, and the row keeps only its SHA-256. That hash is the
session's id (``sid``) everywhere: in the socket tokens minted for the page, in the end
hooks, on the bus. Knowing it does not let anyone present the cookie.

Sockets and REST calls present a short-lived token, not the cookie; a token with a
``sid`` is refused once its session has ended (server/api/access.py asks
:meth:`Sessions.is_open`). That check is cached per node for ``SESSION_CHECK_S``: the
node that ends a session forgets it at once, and tells the others on the bus (topic
``sessions``), which forget it too; a lost bus message costs at most the cache delay.

``on_end``: async callbacks ``hook(session_id, user_id)``, called once on every node
when a session ends (signed out), to close what that session still has open there.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping

import msgpack

from server.bus.base import Bus, Envelope
from server.bus.outbox import Outbox
from server.cache import roster_cache
from server.config import Settings
from server.persistence.models import utcnow
from server.persistence.sessions import SessionRow, SessionStore

log = logging.getLogger(__name__)

SessionEndHook = Callable[[str, str], Awaitable[None]]

#: The bus topic where nodes tell each other that a session ended.
TOPIC = "sessions"
_ENDED = "ended"

#: Rows expired or ended this long ago are deleted (at most once an hour, on a sign-in).
PURGE_AFTER_S = 86400.0
PURGE_EVERY_S = 3600.0

#: A cookie value longer than this is not one of ours (token_urlsafe(32) is 43 chars).
MAX_SECRET_LEN = 128


def session_id_of(secret: str) -> str:
    """The id of the session whose cookie holds ``secret``: its SHA-256, hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


class Sessions:
    def __init__(self, settings: Settings, store: SessionStore, bus: Bus, outbox: Outbox) -> None:
        self.settings = settings
        self.store = store
        self.bus = bus
        self.outbox = outbox
        self.on_end: list[SessionEndHook] = []
        # sid → its row while open, or None once known not to be open (ended, unknown).
        self._known: MutableMapping[str, SessionRow | None] = roster_cache(settings.session_check_s)
        self._purged_at = 0.0

    async def start(self) -> None:
        await self.bus.subscribe(TOPIC, self._on_bus)

    async def close(self) -> None:
        await self.bus.unsubscribe(TOPIC)

    async def open(self, user_id: str) -> tuple[str, SessionRow]:
        """A new session for ``user_id``: (the cookie's secret, the row)."""
        await self._purge_now_and_then()
        secret = secrets.token_urlsafe(32)
        row = await self.store.create(session_id_of(secret), user_id, self.settings.session_ttl_s)
        self._known[row.id] = row
        return secret, row

    async def from_cookie(self, secret: str | None) -> SessionRow | None:
        """The open session whose cookie holds ``secret``, or None."""
        if not secret or len(secret) > MAX_SECRET_LEN:
            return None
        return await self.lookup(session_id_of(secret))

    async def lookup(self, session_id: str) -> SessionRow | None:
        """The open session ``session_id``, or None (cached ``SESSION_CHECK_S``)."""
        known = self._known
        if session_id in known:
            row = known.get(session_id)
        else:
            row = await self.store.get(session_id)
            known[session_id] = row
        if row is None or not row.is_open(utcnow()):
            return None
        return row

    async def is_open(self, session_id: str, user_id: str) -> bool:
        """Whether a token of ``user_id`` tied to ``session_id`` still holds."""
        row = await self.lookup(session_id)
        return row is not None and row.user_id == user_id

    async def end(self, session_id: str) -> bool:
        """Sign out: end the session everywhere. False if it was not open."""
        row = await self.store.end(session_id)
        self._known[session_id] = None
        if row is None:
            return False
        self.outbox.publish(
            TOPIC, _ENDED, msgpack.packb({"sid": row.id, "user": row.user_id}, use_bin_type=True)
        )
        await self._ended(row.id, row.user_id)
        return True

    async def _on_bus(self, topic: str, envelope: Envelope) -> None:
        if envelope.kind != _ENDED:
            return
        try:
            body = msgpack.unpackb(envelope.payload, raw=False)
            sid, user = body["sid"], body["user"]
            if not (isinstance(sid, str) and isinstance(user, str)):
                raise TypeError
        except Exception:
            log.warning("malformed session message from %s", envelope.origin)
            return
        self._known[sid] = None
        await self._ended(sid, user)

    async def _ended(self, session_id: str, user_id: str) -> None:
        for hook in list(self.on_end):
            try:
                await hook(session_id, user_id)
            except Exception:
                log.exception("session end hook failed")

    async def _purge_now_and_then(self) -> None:
        now = time.monotonic()
        if self._purged_at and now - self._purged_at < PURGE_EVERY_S:
            return
        self._purged_at = now
        try:
            gone = await self.store.purge(PURGE_AFTER_S)
        except Exception:
            log.exception("purging old sessions failed")
            return
        if gone:
            log.info("purged %d old sessions", gone)
