"""WebSocket ``/collab``: the Hocuspocus protocol, many docs over one socket.

Theory of operation. The socket is accepted with no token (``@hocuspocus/provider`` sends
one per doc, in an Auth message). Each doc it names, ``{room_id}/{doc_name}``, goes
through the same steps as a ``/yjs`` socket, on its own:

    Auth(token) → the token, the roster, the permission table (api/access.py) → the
    doc loaded (``RoomRegistry.open``) → Authenticated(scope) → joined: the server's
    sync step 1 and awareness → frames, through ``RoomRegistry.frame`` like /yjs.

A doc joins the registry as a :class:`Channel`, the ``PeerHandle`` that rooms/ and
revocation/ see: it prefixes every frame with the doc's name (sync/hocuspocus.py) and
sends it on the socket's one :class:`~server.transport.peer.Peer` (one send queue, one
rate limit for the whole socket). So persistence, the bus, attribution (one user per
socket: every doc's writes are that user's) and revocation are the /yjs path's own.

While a doc's Auth is checked (a task: one slow load does not stall the socket's other
docs), and before it even arrived, its frames wait in order — bounded per socket in count
and bytes (``collab_preauth_*``, else 1008). Refusals are per doc (PermissionDenied with
a reason; the socket and its other docs go on), except what concerns the socket itself:
malformed frame 4400, flood 1008, nothing authorised within ``collab_auth_timeout_s``
4401, draining 1012, a doc that cannot be loaded now 1013 (the provider reconnects), a
doc refused by the admission gate 1013 with ``retry_after`` (api/sockets.py; the socket
itself is refused with HTTP 503 before its handshake when the gate's line is full).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from server import metrics
from server.admission.gate import Busy, Ticket
from server.admission.line import retry_reason
from server.api.access import access_to, doc_access, identify, origin_allowed
from server.api.sockets import count_busy, frame_bucket, refuse, refuse_if_full, settle
from server.auth.tokens import Claims, InvalidToken
from server.context import AppContext
from server.revocation.sockets import Held
from server.rooms.livedoc import DocLoadError, LiveDoc
from server.sync import hocuspocus as hp
from server.sync.messages import ProtocolError
from server.sync.session import DocSession
from server.transport import logctx
from server.transport.codes import Close
from server.transport.peer import Peer
from server.transport.socket import ClientSocket, frames
from server.types import DOC_NAME_RE, ROOM_ID_RE, DocAccess, RoomAccess, UserId

log = logging.getLogger(__name__)

#: Closes that concern one doc's user or token: told on that doc alone.
_PER_DOC = frozenset({Close.FORBIDDEN, Close.UNAUTHENTICATED})


#: (prefix, y-websocket frame, the Hocuspocus frame made of them): the last one sent.
_LAST_SENT: list[bytes] = [b"", b"", b""]


def scope_of(access: RoomAccess | None, locked: bool) -> str:
    if access is not None and access.doc_access(locked) is DocAccess.WRITE:
        return hp.SCOPE_READ_WRITE
    return hp.SCOPE_READ_ONLY


class Channel:
    """One doc of a /collab socket, as rooms/ and revocation/ see it (``PeerHandle``)."""

    __slots__ = ("_on_end", "access", "doc", "ended", "held", "live", "peer", "prefix", "scope")

    def __init__(
        self, peer: Peer, doc: str, access: RoomAccess, on_end: Callable[[Channel], None]
    ) -> None:
        self.peer = peer
        self.doc = doc
        self.prefix = hp.prefix(doc)
        self.access: RoomAccess | None = access
        self.live: LiveDoc | None = None
        self.held: Held | None = None
        self.ended = False
        #: The scope last told to the provider (Authenticated).
        self.scope: str | None = None
        self._on_end = on_end

    def __repr__(self) -> str:
        return f"<Channel {self.doc} of {self.peer!r}>"

    @property
    def user_id(self) -> UserId | None:
        return self.peer.user_id

    def send(self, frame: bytes) -> None:
        if self.ended:
            return
        # A fan-out sends one frame to every socket of the doc in a row: prefixed once
        # for all the /collab ones (the frame is held, so ``is`` cannot be fooled).
        last = _LAST_SENT
        if last[1] is frame and last[0] == self.prefix:
            data = last[2]
        else:
            data = hp.from_y(self.prefix, frame)
            last[:] = (self.prefix, frame, data)
        self.peer.send(data)

    def close(self, code: int, reason: str) -> None:
        """A refusal about this doc ends this doc; anything else (restart, too slow)
        ends the socket."""
        if code not in _PER_DOC:
            self.peer.close(code, reason)
            return
        if self.ended:
            return
        self.peer.send(hp.permission_denied(self.prefix, reason))
        self.ended = True
        # Not now: the caller may be walking the doc's sockets.
        asyncio.get_running_loop().call_soon(self._on_end, self)

    def authenticated(self, answer: bool = False) -> None:
        """Tell the provider this doc's scope: when it changed, or as the ``answer`` to
        an Auth (a refreshed token)."""
        locked = self.live.locked if self.live is not None else False
        scope = scope_of(self.access, locked)
        if answer or scope != self.scope:
            self.scope = scope
            self.peer.send(hp.authenticated(self.prefix, scope))

    def regrade(self, access: RoomAccess) -> None:
        """A lowered access (revocation/), a refreshed token, or the doc (un)locked
        (``LiveDoc.set_locked``): told as the new scope when it changed."""
        if self.ended or not self.peer.open:
            return
        self.access = access
        self.authenticated()


@dataclass(slots=True)
class Waiting:
    """A doc not authorised yet: its frames, in order; its Auth task once one came."""

    frames: list[bytes] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


@dataclass(slots=True)
class Open:
    channel: Channel
    live: LiveDoc
    session: DocSession
    #: When the doc's token expires (its ``exp``), and the timers about it.
    exp: float = 0.0
    timers: list[asyncio.TimerHandle] = field(default_factory=list)
    #: A token refresh being checked.
    refresh: asyncio.Task[None] | None = None


class Refused(Exception):
    """A doc's Auth refused: the reason goes to the provider in PermissionDenied."""


class Connection:
    """One /collab socket: its docs, open or waiting."""

    def __init__(self, sock: ClientSocket, peer: Peer, ctx: AppContext) -> None:
        self.sock = sock
        self.peer = peer
        self.ctx = ctx
        self.settings = ctx.settings
        self.open: dict[str, Open] = {}
        #: The same open docs, by the prefix bytes their frames start with.
        self.by_prefix: dict[bytes, Open] = {}
        self.waiting: dict[str, Waiting] = {}
        #: Docs refused or closed here: their late frames (a provider's awareness
        #: goodbye, say) are dropped without a word. Bounded like the docs.
        self.done: set[str] = set()
        self.waiting_frames = 0
        self.waiting_bytes = 0
        #: Auths refused on this socket: past 4 × ``collab_max_docs``, close 1008.
        self.refusals = 0

    # --- the loop ---

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.call_later(self.settings.collab_auth_timeout_s, self._auth_deadline)
        try:
            async for data in frames(self.sock, self.peer, frame_bucket(self.ctx), "/collab"):
                try:
                    self._receive(data)
                except ProtocolError as exc:
                    log.info("closed %s on /collab: malformed frame (%s)", self.peer.user_id, exc)
                    self.peer.close(Close.BAD_FRAME, f"malformed frame: {exc}"[:120])
                    return
        finally:
            deadline.cancel()
            self._end_all()

    def _auth_deadline(self) -> None:
        if not self.open and self.peer.reading:
            metrics.refused("collab_auth_timeout")
            self.peer.close(Close.UNAUTHENTICATED, "no document authenticated in time")

    def _receive(self, data: bytes) -> None:
        # The hot path (a keystroke, a cursor): an open doc found by its prefix bytes.
        parts = hp.split(data)
        if parts is not None:
            opened = self.by_prefix.get(parts[0])
            if opened is not None:
                self._apply_y(opened, parts[1])
                return
        msg = hp.decode(data)
        if isinstance(msg, hp.Pong):
            return
        doc = msg.doc
        opened = self.open.get(doc)
        if isinstance(msg, hp.Auth):
            if opened is not None:
                if opened.refresh is None:
                    opened.refresh = self._spawn(self._refresh(opened, msg.token), doc)
                return
            self._auth(doc, msg.token)
            return
        if opened is not None:
            self._apply(opened, msg)
            return
        if doc in self.done:
            return
        if isinstance(msg, hp.CloseDoc):
            self._forget_waiting(doc)
            return
        waiting = self.waiting.get(doc)
        if waiting is None:
            if not self._room_for_another(doc):
                return
            waiting = self.waiting[doc] = Waiting()
        self.waiting_frames += 1
        self.waiting_bytes += len(data)
        if (
            self.waiting_frames > self.settings.collab_preauth_frames
            or self.waiting_bytes > self.settings.collab_preauth_bytes
        ):
            metrics.refused("collab_preauth")
            self.peer.close(Close.POLICY, "too many messages before authentication")
            return
        waiting.frames.append(data)

    def _apply_y(self, opened: Open, frame: bytes) -> None:
        channel = opened.channel
        out = self.ctx.registry.frame(opened.live, channel, opened.session, frame)
        ack = hp.acknowledge(channel.prefix, frame, out.denied is not None)
        if ack is not None:
            self.peer.send(ack)

    def _apply(self, opened: Open, msg: hp.Message) -> None:
        if isinstance(msg, hp.YFrame):
            self._apply_y(opened, msg.frame)
        elif isinstance(msg, hp.CloseDoc):
            self._end(opened.channel)
        # Stateless from a client: Atelier carries nothing on it (docs/protocol.md).

    # --- Auth ---

    def _room_for_another(self, doc: str) -> bool:
        if len(self.open) + len(self.waiting) < self.settings.collab_max_docs:
            return True
        metrics.refused("collab_max_docs")
        self._deny(doc, "too many documents on this connection")
        return False

    def _auth(self, doc: str, token: str) -> None:
        self.done.discard(doc)  # a doc refused or closed may be asked for again
        waiting = self.waiting.get(doc)
        if waiting is None:
            if not self._room_for_another(doc):
                return
            waiting = self.waiting[doc] = Waiting()
        elif waiting.task is not None:
            return  # one Auth at a time for a doc; the provider sends one per open
        waiting.task = self._spawn(self._authorise(doc, token, waiting), doc)

    async def _check(self, doc: str, token: str) -> tuple[str, str, str, str, RoomAccess, Claims]:
        """(room id, doc name, user id, role, access, claims), or raises Refused."""
        room_id, sep, doc_name = doc.partition("\0")[0].partition("/")
        if not (sep and ROOM_ID_RE.fullmatch(room_id) and DOC_NAME_RE.fullmatch(doc_name)):
            raise Refused("invalid document name: expected {room_id}/{doc_name}")
        if self.ctx.draining:
            raise Refused("server restarting")
        try:
            # Bounded as /yjs admission is (api/sockets.py): a slow database or ENT key
            # fetch must not hold the doc's waiting frames for ever.
            async with asyncio.timeout(self.settings.preauth_timeout_s):
                user, claims = await identify(self.ctx, token)
                if self.peer.user_id is not None and user.id != self.peer.user_id:
                    raise Refused("this connection belongs to another user")
                info, access = await access_to(self.ctx, user, room_id)
                if info is not None:
                    access = await doc_access(self.ctx, user, info, access, doc_name)
        except InvalidToken as exc:
            raise Refused(str(exc)) from None
        except TimeoutError:
            metrics.refused("preauth_timeout")
            raise Refused("authentication took too long, try again later") from None
        if info is None or access.docs is DocAccess.NONE:
            raise Refused("no access to this room")
        return room_id, doc_name, user.id, str(user.role), access, claims

    async def _authorise(self, doc: str, token: str, waiting: Waiting) -> None:
        """A doc's admission, through the gate as a /yjs socket's: from its Auth to its
        sync step 1. A doc refused by the gate closes the socket 1013 with
        ``retry_after`` (the provider reconnects and sends its Auths again)."""
        admission = self.ctx.admission
        try:
            ticket = await admission.enter()
        except Busy as busy:
            count_busy(busy)
            self.peer.close(Close.TRY_LATER, retry_reason(busy))
            return
        try:
            await self._admit(doc, token, waiting, ticket)
        finally:
            admission.leave(ticket)

    async def _admit(self, doc: str, token: str, waiting: Waiting, ticket: Ticket) -> None:
        ctx = self.ctx
        try:
            room_id, doc_name, user_id, role, access, claims = await self._check(doc, token)
        except Refused as exc:
            self._forget_waiting(doc)
            self._deny(doc, str(exc))
            return
        logctx.user_id.set(user_id)
        logctx.room_id.set(room_id)
        most = self.settings.max_sockets_per_user
        if self.ctx.sockets.count_of(user_id) >= most:
            # Each doc open over /collab counts as one connection of the user, as a
            # /yjs socket does: one doc more is refused, the socket's others go on.
            metrics.refused("sockets_per_user")
            self._forget_waiting(doc)
            self._deny(doc, f"too many open connections for this user ({most})")
            return
        refusal = await ctx.registry.may_load(room_id, doc_name)
        if refusal is not None:  # the memory budget, the room's docs (counted there)
            self._forget_waiting(doc)
            self._deny(doc, refusal[1])
            return
        peer = self.peer
        if not peer.reading:
            return
        if peer.user_id is not None and peer.user_id != user_id:
            # Two first Auths of different users checked at the same time: the first won.
            self._forget_waiting(doc)
            self._deny(doc, "this connection belongs to another user")
            return
        if peer.user_id is None:
            peer.authorise(UserId(user_id), access)
            peer.joined()
            self.sock.forget_handshake()
        if not ctx.registry.resident(room_id, doc_name):
            ctx.admission.leave(ticket)  # a doc load is waited for outside the gate (/yjs)
        try:
            live = await ctx.registry.open(room_id, doc_name)
        except DocLoadError as exc:
            self.peer.close(Close.TRY_LATER, str(exc))
            return
        if not peer.open or self.waiting.get(doc) is not waiting:
            ctx.registry.release(live)
            return
        del self.waiting[doc]
        channel = Channel(peer, doc, access, self._end)
        channel.live = live
        channel.held = ctx.sockets.add(
            Held(
                channel, user_id, room_id, doc_name, claims.sid, claims.jti, role=role, via="collab"
            )
        )
        channel.authenticated()
        session = ctx.registry.join(live, channel)
        opened = self.open[doc] = self.by_prefix[channel.prefix] = Open(channel, live, session)
        self._expires(opened, claims.exp)
        for data in waiting.frames:
            self.waiting_frames -= 1
            self.waiting_bytes -= len(data)
            if not channel.ended and peer.reading:
                msg = hp.decode(data)  # decoded once already: cannot fail
                self._apply(opened, msg)

    async def _refresh(self, opened: Open, token: str) -> None:
        """A new token for an open doc (the provider answers our token request)."""
        channel = opened.channel
        try:
            try:
                _, _, _, _, access, claims = await self._check(channel.doc, token)
            except Refused as exc:
                channel.close(Close.FORBIDDEN, str(exc))
                return
            if channel.ended:
                return
            held = channel.held
            if held is not None:
                self.ctx.sockets.discard(held)
                channel.held = self.ctx.sockets.add(
                    Held(
                        channel,
                        held.user_id,
                        held.room_id,
                        held.doc_name,
                        claims.sid,
                        claims.jti,
                        role=held.role,
                        via=held.via,
                    )
                )
            if channel.peer.open:
                channel.access = access
                channel.authenticated(answer=True)
            self._expires(opened, claims.exp)
        finally:
            opened.refresh = None

    def _expires(self, opened: Open, exp: float) -> None:
        """Ask for a fresh token before ``exp``; end the doc at ``exp`` if none came.
        A token that expires no later than the last one changes nothing (asked once)."""
        if exp <= opened.exp:
            return
        for timer in opened.timers:
            timer.cancel()
        opened.timers.clear()
        opened.exp = exp
        ahead = self.settings.collab_token_refresh_s
        if ahead <= 0:
            return
        loop = asyncio.get_running_loop()
        left = exp - time.time()
        channel = opened.channel
        ask = max(0.0, left - ahead if left - ahead > left / 2 else left / 2)
        opened.timers.append(loop.call_later(ask, self._ask_token, channel))
        opened.timers.append(
            loop.call_later(max(0.0, left), channel.close, Close.UNAUTHENTICATED, "expired token")
        )

    def _ask_token(self, channel: Channel) -> None:
        if not channel.ended:
            self.peer.send(hp.token_request(channel.prefix))

    def _deny(self, doc: str, reason: str) -> None:
        self.refusals += 1
        limit = 4 * self.settings.collab_max_docs
        if len(self.done) < limit:
            self.done.add(doc)
        log.info("refused %s on /collab: %s", self.peer.user_id, reason)
        self.peer.send(hp.permission_denied(hp.prefix(doc), reason))
        if self.refusals > limit:  # a socket guessing rooms or tokens
            metrics.refused("collab_refusals")
            self.peer.close(Close.POLICY, "too many refused documents")

    def _forget_waiting(self, doc: str) -> None:
        waiting = self.waiting.pop(doc, None)
        if waiting is None:
            return
        for data in waiting.frames:
            self.waiting_frames -= 1
            self.waiting_bytes -= len(data)
        if waiting.task is not None and waiting.task is not asyncio.current_task():
            waiting.task.cancel()

    # --- endings ---

    def _end(self, channel: Channel) -> None:
        """Leave one doc (closed by the client, refused by a revocation, expired)."""
        channel.ended = True
        opened = self.open.get(channel.doc)
        if opened is None or opened.channel is not channel:
            return
        del self.open[channel.doc]
        self.by_prefix.pop(channel.prefix, None)
        if len(self.done) < 4 * self.settings.collab_max_docs:
            self.done.add(channel.doc)
        self._leave(opened)

    def _leave(self, opened: Open) -> None:
        for timer in opened.timers:
            timer.cancel()
        if opened.refresh is not None:
            opened.refresh.cancel()
        channel = opened.channel
        channel.ended = True
        if channel.held is not None:
            self.ctx.sockets.discard(channel.held)
        self.ctx.registry.leave(opened.live, channel)

    def _end_all(self) -> None:
        for doc in list(self.waiting):
            self._forget_waiting(doc)
        opened = list(self.open.values())
        self.open.clear()
        self.by_prefix.clear()
        for o in opened:
            self._leave(o)

    def _spawn(self, coro: Coroutine[Any, Any, None], doc: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=f"collab auth {doc}")
        task.add_done_callback(_report)
        return task


def _report(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("collab auth task failed", exc_info=task.exception())


async def collab_endpoint(sock: ClientSocket, ctx: AppContext) -> None:
    # The socket carries no token yet: it waits in the admission line doc by doc (at
    # each Auth); here it is only refused, before its handshake, when the line is full.
    if not ctx.draining and await refuse_if_full(sock, ctx):
        return
    await sock.accept()
    peer = Peer(sock, max_queue=ctx.settings.send_queue_frames)
    if ctx.draining:
        return await refuse(peer, Close.RESTART, "server restarting")
    if not origin_allowed(ctx, sock.origin, sock.host):
        return await refuse(peer, Close.FORBIDDEN, "origin not allowed")
    try:
        await Connection(sock, peer, ctx).run()
    finally:
        await settle(peer)
