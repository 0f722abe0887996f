"""Admission: the checks every client socket goes through, for both socket endpoints.

First the gate (server/admission/), before the WebSocket handshake: a socket waits in
line for one of ``admission_slots``; the line full, it is refused at once with HTTP 503
and ``Retry-After`` (no handshake, no work); waited ``admission_max_wait_s``, it is
accepted and closed 1013 with ``retry_after=<seconds>`` in the reason (a browser cannot
read a refused handshake's headers, but it reads a close reason). The slot is held until
the endpoint has sent its first sync (``Admitted.through``).

Then draining (1012), names (4400), Origin and the permission table (4403, after the
``denied`` frame when the protocol has one), the token (4401), all within the pre-auth
timeout (1013), then the user's sockets on this node (1008). The socket is accepted
before these refusals because a close code can only be sent on an open WebSocket (a
refused handshake reaches the client as a bare HTTP status).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from server import metrics
from server.admission.gate import Busy, Ticket
from server.admission.line import retry_header, retry_reason
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
    #: The admission slot, held until the first sync is sent (``through``).
    ticket: Ticket | None = None

    def through(self, ctx: AppContext) -> None:
        """The first sync is sent: the admission is over, its slot goes to the next."""
        ctx.admission.leave(self.ticket)

    def release(self, ctx: AppContext) -> None:
        ctx.admission.leave(self.ticket)  # idempotent: refused after admit, or ended
        ctx.sockets.discard(self.held)


class _Quiet:
    """One log line per ``every_s`` for a refusal that comes by the thousand in a storm."""

    def __init__(self, every_s: float = 10.0) -> None:
        self.every_s = every_s
        self.last = 0.0
        self.count = 0

    def warn(self, message: str, *args: object) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self.last >= self.every_s:
            log.warning(message + " (%d since the last line)", *args, self.count)
            self.last = now
            self.count = 0


_BUSY_LOG = _Quiet()


async def refuse_if_full(sock: ClientSocket, ctx: AppContext) -> bool:
    """Before the handshake of a socket that waits in line later (``/collab``, per doc):
    refuse it now (503) if the line is full. True if refused."""
    delay = ctx.admission.busy()
    if delay is None:
        return False
    await refuse_busy(sock, Busy(delay, "server busy"))
    return True


async def wait_turn(sock: ClientSocket, ctx: AppContext) -> Ticket | None:
    """Wait in the admission line, before the handshake. The admitted ticket, or None
    once the socket has been refused (503 before the handshake, or 1013 after it)."""
    try:
        return await ctx.admission.enter()
    except Busy as busy:
        await refuse_busy(sock, busy)
        return None


def count_busy(busy: Busy) -> None:
    """Count (and now and then log) an admission refusal."""
    if busy.waited:
        metrics.refused("admission_max_wait")
        _BUSY_LOG.warn("refused a socket: waited its maximum in the admission line")
    else:
        metrics.refused("admission_line")
        _BUSY_LOG.warn("refused a socket: the admission line is full")


async def refuse_busy(sock: ClientSocket, busy: Busy) -> None:
    """Refuse a socket not yet accepted: 1013 with ``retry_after`` after a wait in line
    (the client waited for this answer; a browser reads a close reason), else HTTP 503
    with ``Retry-After`` before the handshake (the cheapest refusal)."""
    count_busy(busy)
    with contextlib.suppress(OSError):  # the client may have left while waiting
        if busy.waited:
            await sock.accept()
            await sock.close(Close.TRY_LATER, retry_reason(busy))
            return
        await sock.deny(
            503,
            f"{retry_reason(busy)}\n",
            {"Retry-After": retry_header(busy.retry_after), "Cache-Control": "no-store"},
        )


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
    """Wait for an admission slot, accept the socket and run the checks in order.
    Returns the authorised peer (holding its slot until ``through``), or None once the
    socket has been refused. ``doc_name``: the access is the one to that doc (an
    assignment's personal doc refines the room's row)."""
    ticket = None
    if not ctx.draining:  # a draining node refuses at once (1012), no need to wait
        ticket = await wait_turn(sock, ctx)
        if ticket is None:
            return None
    try:
        await sock.accept()
    except OSError:  # the client left while waiting in line (uvicorn: ClientDisconnected)
        ctx.admission.leave(ticket)
        return None
    try:
        admitted = await _checks(sock, ctx, room_id, names_valid, allowed, denied, doc_name, ticket)
    except BaseException:
        ctx.admission.leave(ticket)
        raise
    if admitted is None:
        ctx.admission.leave(ticket)
    return admitted


async def _checks(
    sock: ClientSocket,
    ctx: AppContext,
    room_id: str,
    names_valid: bool,
    allowed: Callable[[RoomAccess], bool],
    denied: Callable[[str], bytes] | None,
    doc_name: str | None,
    ticket: Ticket | None,
) -> Admitted | None:
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
    return Admitted(peer, user, info, access, held, ticket)


def frame_bucket(ctx: AppContext) -> FramePacer:
    """The per-socket frame pacing: ``rate_frames_per_second``, ``rate_burst``, abuse after."""
    settings = ctx.settings
    return FramePacer(
        settings.rate_frames_per_second,
        settings.rate_burst,
        settings.rate_abuse_after_s,
        time.monotonic(),
    )
