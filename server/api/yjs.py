"""WebSocket ``/yjs/{room_id}/{doc_name}``: the y-websocket protocol.

The order of a connection (the peer's state machine): accept → check the doc name, the
Origin, the token (4401) and the permission table (auth "permission denied" + 4403) →
load the doc (1013 if it cannot be loaded) → join (server sends sync step 1) → frames.
The socket is accepted before any refusal because a close code can only be sent on an
open WebSocket (a refused handshake reaches the client as a bare HTTP 403).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from starlette.websockets import WebSocket

from server.api.access import access_to, authenticate, origin_allowed
from server.auth.tokens import InvalidToken
from server.context import AppContext
from server.rooms.limits import TokenBucket
from server.rooms.livedoc import DocLoadError, LiveDoc
from server.rooms.peer import (
    CLOSE_BAD_FRAME,
    CLOSE_FORBIDDEN,
    CLOSE_POLICY,
    CLOSE_TRY_LATER,
    CLOSE_UNAUTHENTICATED,
    Peer,
)
from server.sync.messages import ProtocolError, permission_denied_frame
from server.types import DOC_NAME_RE, ROOM_ID_RE, DocAccess, UserId

log = logging.getLogger(__name__)


class StarletteTransport:
    """Frames go straight to the server's ``send`` (see ``NodeHeader`` in app.py)."""

    __slots__ = ("_direct", "_send", "ws")

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self._send = ws.scope.get("atelier.send") or ws.send
        self._direct = ws.scope.get("atelier.direct")  # server/wsfast.py, when serving

    def send_now(self, data: bytes) -> bool:
        direct = self._direct
        return direct is not None and direct.send_now(data)

    async def send(self, data: bytes) -> None:
        await self._send({"type": "websocket.send", "bytes": data})

    async def close(self, code: int, reason: str) -> None:
        await self.ws.close(code, reason)


async def accept(ws: WebSocket) -> None:
    header = ws.scope.get("atelier.node_header")
    await ws.accept(headers=[header] if header else None)


async def _refuse(peer: Peer, code: int, reason: str, *, auth_message: bool = False) -> None:
    if auth_message:
        peer.send(permission_denied_frame(reason))
    peer.close(code, reason)
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(peer.wait_closed(), 5)


async def yjs_endpoint(ws: WebSocket) -> None:
    ctx: AppContext = ws.app.state.ctx
    settings = ctx.settings
    room_id: str = ws.path_params["room_id"]
    doc_name: str = ws.path_params["doc_name"]
    await accept(ws)
    peer = Peer(StarletteTransport(ws), max_queue=settings.send_queue_frames)
    # Until the peer joins, nothing but refusals is sent, so authorise() can run first.
    peer.start()

    if ctx.draining:
        return await _refuse(peer, 1012, "server restarting")
    if not DOC_NAME_RE.fullmatch(doc_name) or not ROOM_ID_RE.fullmatch(room_id):
        return await _refuse(peer, CLOSE_BAD_FRAME, "invalid room or document name")
    if not origin_allowed(ctx, ws.headers):
        return await _refuse(peer, CLOSE_FORBIDDEN, "origin not allowed", auth_message=True)
    try:
        user = await authenticate(ctx, ws.query_params.get("token"))
    except InvalidToken as exc:
        return await _refuse(peer, CLOSE_UNAUTHENTICATED, str(exc))
    _, access = await access_to(ctx, user, room_id)
    if access.docs is DocAccess.NONE:
        return await _refuse(peer, CLOSE_FORBIDDEN, "no access to this room", auth_message=True)
    peer.authorise(UserId(user.id), access)

    try:
        live = await ctx.registry.open(room_id, doc_name)
    except DocLoadError as exc:
        return await _refuse(peer, CLOSE_TRY_LATER, str(exc))
    session = ctx.registry.join(live, peer)
    try:
        await _pump(ctx, ws, peer, live, session)
    finally:
        ctx.registry.leave(live, peer)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(peer.wait_closed(), 5)


async def _pump(ctx: AppContext, ws: WebSocket, peer: Peer, live: LiveDoc, session) -> None:  # type: ignore[no-untyped-def]
    settings = ctx.settings
    registry = ctx.registry
    bucket = TokenBucket(settings.rate_frames_per_second, settings.rate_burst, time.monotonic())
    while peer.open:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            peer.closed_by_client(message.get("code"))
            return
        data = message.get("bytes")
        if data is None:
            peer.close(CLOSE_BAD_FRAME, "text frames are not part of the protocol")
            return
        if not bucket.take(time.monotonic()):
            peer.close(CLOSE_POLICY, "rate limit exceeded")
            log.warning("closed %s on %s: rate limit", peer.user_id, live.topic)
            return
        try:
            registry.frame(live, peer, session, data)
        except ProtocolError as exc:
            log.info("closed %s on %s: malformed frame (%s)", peer.user_id, live.topic, exc)
            peer.close(CLOSE_BAD_FRAME, f"malformed frame: {exc}"[:120])
            return
