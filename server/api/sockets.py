"""What both WebSocket endpoints share: the transport, admission, refusing, reading.

``frames`` is the one place a client's messages are read: it yields binary frames and
stops — after closing the socket with the contract's code — on a text frame (4400), on
a flood past the per-socket token bucket (1008), or when the client is gone. Oversized
frames never reach it: uvicorn closes them with 1009 (``ws_max_size``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from starlette.websockets import WebSocket

from server.api.access import access_to, authenticate, origin_allowed
from server.auth.tokens import InvalidToken
from server.config import Settings
from server.context import AppContext
from server.persistence.roster import RoomInfo, UserInfo
from server.rooms.limits import TokenBucket
from server.rooms.peer import (
    CLOSE_BAD_FRAME,
    CLOSE_FORBIDDEN,
    CLOSE_POLICY,
    CLOSE_RESTART,
    CLOSE_UNAUTHENTICATED,
    Peer,
)
from server.types import RoomAccess, UserId

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
    """Accept, naming this node in the handshake (``X-Atelier-Node``)."""
    header = ws.scope.get("atelier.node_header")
    await ws.accept(headers=[header] if header else None)


def forget_handshake(ws: WebSocket) -> None:
    """Drop the handshake's headers once the socket is authorised.

    Nothing reads them again, and a socket lives for hours: ~1.3 KiB per idle socket
    (the raw header list in the scope and Starlette's cached view of it).
    """
    ws.scope["headers"] = []
    ws.__dict__.pop("_headers", None)


async def refuse(peer: Peer, code: int, reason: str, first: bytes | None = None) -> None:
    """Close with ``code``, after ``first`` (e.g. y-protocols' permission denied)."""
    if first is not None:
        peer.send(first)
    peer.close(code, reason)
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(peer.wait_closed(), 5)


@dataclass(frozen=True, slots=True)
class Admitted:
    peer: Peer
    user: UserInfo
    room: RoomInfo
    access: RoomAccess


async def admit(
    ws: WebSocket,
    ctx: AppContext,
    room_id: str,
    *,
    names_valid: bool,
    allowed: Callable[[RoomAccess], bool],
    denied: Callable[[str], bytes] | None = None,
) -> Admitted | None:
    """Accept the socket and run the checks every socket goes through, in order.

    Draining (1012), names (4400), Origin and the permission table (4403, after the
    ``denied`` frame when the protocol has one), the token (4401). Returns the authorised
    peer, or None once the socket has been refused. The socket is accepted before any
    refusal because a close code can only be sent on an open WebSocket.
    """
    await accept(ws)
    peer = Peer(StarletteTransport(ws), max_queue=ctx.settings.send_queue_frames)
    peer.start()

    def forbidden(reason: str) -> Awaitable[None]:
        return refuse(peer, CLOSE_FORBIDDEN, reason, denied(reason) if denied else None)

    if ctx.draining:
        await refuse(peer, CLOSE_RESTART, "server restarting")
        return None
    if not names_valid:
        await refuse(peer, CLOSE_BAD_FRAME, "invalid room or document name")
        return None
    if not origin_allowed(ctx, ws.headers):
        await forbidden("origin not allowed")
        return None
    try:
        user = await authenticate(ctx, ws.query_params.get("token"))
    except InvalidToken as exc:
        await refuse(peer, CLOSE_UNAUTHENTICATED, str(exc))
        return None
    info, access = await access_to(ctx, user, room_id)
    if info is None or not allowed(access):
        await forbidden("no access to this room")
        return None
    peer.authorise(UserId(user.id), access)
    forget_handshake(ws)
    return Admitted(peer, user, info, access)


async def frames(ws: WebSocket, peer: Peer, settings: Settings, what: str) -> AsyncIterator[bytes]:
    """The client's binary frames, within the per-socket rate limit."""
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
            log.warning("closed %s on %s: rate limit", peer.user_id, what)
            peer.close(CLOSE_POLICY, "rate limit exceeded")
            return
        yield data
