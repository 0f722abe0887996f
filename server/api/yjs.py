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

from starlette.websockets import WebSocket

from server.api.access import access_to, authenticate, origin_allowed
from server.api.sockets import StarletteTransport, accept, forget_handshake, frames, refuse
from server.auth.tokens import InvalidToken
from server.context import AppContext
from server.rooms.livedoc import DocLoadError, LiveDoc
from server.rooms.peer import (
    CLOSE_BAD_FRAME,
    CLOSE_FORBIDDEN,
    CLOSE_TRY_LATER,
    CLOSE_UNAUTHENTICATED,
    Peer,
)
from server.sync.messages import ProtocolError, permission_denied_frame
from server.sync.session import DocSession
from server.types import DOC_NAME_RE, ROOM_ID_RE, DocAccess, UserId

log = logging.getLogger(__name__)


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
        return await refuse(peer, 1012, "server restarting")
    if not DOC_NAME_RE.fullmatch(doc_name) or not ROOM_ID_RE.fullmatch(room_id):
        return await refuse(peer, CLOSE_BAD_FRAME, "invalid room or document name")
    if not origin_allowed(ctx, ws.headers):
        return await refuse(
            peer,
            CLOSE_FORBIDDEN,
            "origin not allowed",
            permission_denied_frame("origin not allowed"),
        )
    try:
        user = await authenticate(ctx, ws.query_params.get("token"))
    except InvalidToken as exc:
        return await refuse(peer, CLOSE_UNAUTHENTICATED, str(exc))
    _, access = await access_to(ctx, user, room_id)
    if access.docs is DocAccess.NONE:
        return await refuse(
            peer,
            CLOSE_FORBIDDEN,
            "no access to this room",
            permission_denied_frame("no access to this room"),
        )
    peer.authorise(UserId(user.id), access)
    forget_handshake(ws)

    try:
        live = await ctx.registry.open(room_id, doc_name)
    except DocLoadError as exc:
        return await refuse(peer, CLOSE_TRY_LATER, str(exc))
    session = ctx.registry.join(live, peer)
    try:
        await _pump(ctx, ws, peer, live, session)
    finally:
        ctx.registry.leave(live, peer)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(peer.wait_closed(), 5)


async def _pump(
    ctx: AppContext, ws: WebSocket, peer: Peer, live: LiveDoc, session: DocSession
) -> None:
    async for data in frames(ws, peer, ctx.settings, live.topic):
        try:
            ctx.registry.frame(live, peer, session, data)
        except ProtocolError as exc:
            log.info("closed %s on %s: malformed frame (%s)", peer.user_id, live.topic, exc)
            peer.close(CLOSE_BAD_FRAME, f"malformed frame: {exc}"[:120])
            return
