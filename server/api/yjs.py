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

from server.api.sockets import admit, frames, refuse
from server.context import AppContext
from server.rooms.livedoc import DocLoadError, LiveDoc
from server.rooms.peer import (
    CLOSE_BAD_FRAME,
    CLOSE_TRY_LATER,
    Peer,
)
from server.sync.messages import ProtocolError, permission_denied_frame
from server.sync.session import DocSession
from server.types import DOC_NAME_RE, ROOM_ID_RE, DocAccess

log = logging.getLogger(__name__)


async def yjs_endpoint(ws: WebSocket) -> None:
    ctx: AppContext = ws.app.state.ctx
    room_id: str = ws.path_params["room_id"]
    doc_name: str = ws.path_params["doc_name"]
    admitted = await admit(
        ws,
        ctx,
        room_id,
        names_valid=bool(DOC_NAME_RE.fullmatch(doc_name) and ROOM_ID_RE.fullmatch(room_id)),
        allowed=lambda access: access.docs is not DocAccess.NONE,
        denied=permission_denied_frame,  # y-protocols' auth message, then 4403
    )
    if admitted is None:
        return
    peer = admitted.peer

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
