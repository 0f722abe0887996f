"""Admission: the checks every client socket goes through, for both socket endpoints.

Draining (1012), names (4400), Origin and the permission table (4403, after the
``denied`` frame when the protocol has one), the token (4401), all within the pre-auth
timeout (1013), then the user's sockets on this node (1008). The socket is accepted
before any refusal because a close code can only be sent on an open WebSocket (a
refused handshake reaches the client as a bare HTTP 403).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from server import metrics
from server.api.access import access_to, doc_access, identify, origin_allowed
from server.auth.tokens import InvalidToken
from server.context import AppContext
from server.persistence.roster import RoomInfo, UserInfo
from server.revocation.sockets import Held
from server.transport import logctx
from server.transport.codes import Close
from server.transport.limits import FramePacer
from server.transport.peer import Peer
from server.transport.socket import ClientSocket
from server.types import RoomAccess, UserId

log = logging.getLogger(__name__)


async def refuse(peer: Peer, code: int, reason: str, first: bytes | None = None) -> None:
    """Close with ``code``, after ``first`` (e.g. y-protocols' permission denied)."""
    if first is not None:
        peer.send(first)
    peer.close(code, reason)
    await settle(peer)


async def settle(peer: Peer) -> None:
    """Wait (bounded) until the peer's socket is closed and its queue written."""
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(peer.wait_closed(), 5)


@dataclass(frozen=True, slots=True)
class Admitted:
    peer: Peer
    user: UserInfo
    room: RoomInfo
    access: RoomAccess
    #: In the node's socket index until the endpoint ends (``release``): what a
    #: revocation walks.
    held: Held

    def release(self, ctx: AppContext) -> None:
        ctx.sockets.discard(self.held)


async def admit(
    sock: ClientSocket,
    ctx: AppContext,
    room_id: str,
    *,
    names_valid: bool,
    allowed: Callable[[RoomAccess], bool],
    denied: Callable[[str], bytes] | None = None,
    doc_name: str | None = None,
) -> Admitted | None:
    """Accept the socket and run the checks in order. Returns the authorised peer, or
    None once the socket has been refused. ``doc_name``: the access is the one to that
    doc (an assignment's personal doc refines the room's row)."""
    await sock.accept()
    logctx.room_id.set(room_id if names_valid else None)
    peer = Peer(sock, max_queue=ctx.settings.send_queue_frames)

    def forbidden(reason: str) -> Awaitable[None]:
        return refuse(peer, Close.FORBIDDEN, reason, denied(reason) if denied else None)

    if ctx.draining:
        await refuse(peer, Close.RESTART, "server restarting")
        return None
    if not names_valid:
        await refuse(peer, Close.BAD_FRAME, "invalid room or document name")
        return None
    if not origin_allowed(ctx, sock.origin, sock.host):
        await forbidden("origin not allowed")
        return None
    try:
        # Bounded: a socket waiting on a slow database or the ENT's keys holds memory
        # and a slot of the node; past the pre-auth timeout it is told to come back.
        async with asyncio.timeout(ctx.settings.preauth_timeout_s):
            user, claims = await identify(ctx, sock.token)
            logctx.user_id.set(user.id)
            info, access = await access_to(ctx, user, room_id)
            if info is not None and doc_name is not None:
                access = await doc_access(ctx, user, info, access, doc_name)
    except InvalidToken as exc:
        await refuse(peer, Close.UNAUTHENTICATED, str(exc))
        return None
    except TimeoutError:
        metrics.refused("preauth_timeout")
        log.warning("closed a socket on %s: not authorised in time", room_id)
        await refuse(peer, Close.TRY_LATER, "authentication took too long, try again later")
        return None
    if info is None or not allowed(access):
        await forbidden("no access to this room")
        return None
    most = ctx.settings.max_sockets_per_user
    if ctx.sockets.count_of(user.id) >= most:
        metrics.refused("sockets_per_user")
        log.warning("refused a socket of %s on %s: %d sockets open", user.id, room_id, most)
        await refuse(peer, Close.POLICY, f"too many open connections for this user ({most})")
        return None
    peer.authorise(UserId(user.id), access)
    sock.forget_handshake()
    held = ctx.sockets.add(
        Held(peer, user.id, room_id, doc_name, claims.sid, claims.jti, denied, str(user.role))
    )
    return Admitted(peer, user, info, access, held)


def frame_bucket(ctx: AppContext) -> FramePacer:
    """The per-socket frame pacing: ``rate_frames_per_second``, ``rate_burst``, abuse after."""
    settings = ctx.settings
    return FramePacer(
        settings.rate_frames_per_second,
        settings.rate_burst,
        settings.rate_abuse_after_s,
        time.monotonic(),
    )
