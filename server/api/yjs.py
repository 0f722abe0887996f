"""WebSocket ``/yjs/{room_id}/{doc_name}``: the y-websocket protocol.

The order of a connection (the peer's state machine): a slot of the admission gate (503
before the handshake when its line is full, 1013 after waiting too long) → accept →
check the doc name, the Origin, the token (4401) and the permission table (auth
"permission denied" + 4403) → may it be loaded (1013 past the node's memory budget,
1008 past the room's docs) → load the doc (1013 if it cannot be loaded) → join (server
sends sync step 1; the admission slot is freed) → frames.
"""

from __future__ import annotations

import logging

from server.api.sockets import admit, frame_bucket, refuse, settle
from server.context import AppContext
from server.rooms.livedoc import DocLoadError
from server.sync.messages import ProtocolError, permission_denied_frame
from server.transport.codes import Close
from server.transport.socket import ClientSocket, frames
from server.types import DOC_NAME_RE, ROOM_ID_RE, DocAccess

log = logging.getLogger(__name__)


async def yjs_endpoint(sock: ClientSocket, ctx: AppContext) -> None:
    room_id = sock.params["room_id"]
    doc_name = sock.params["doc_name"]
    admitted = await admit(
        sock,
        ctx,
        room_id,
        names_valid=bool(DOC_NAME_RE.fullmatch(doc_name) and ROOM_ID_RE.fullmatch(room_id)),
        allowed=lambda access: access.docs is not DocAccess.NONE,
        denied=permission_denied_frame,  # y-protocols' auth message, then 4403
        doc_name=doc_name,
    )
    if admitted is None:
        return
    peer = admitted.peer
    registry = ctx.registry
    refusal = await registry.may_load(room_id, doc_name)
    if refusal is not None:
        admitted.release(ctx)
        return await refuse(peer, *refusal)
    if not registry.resident(room_id, doc_name):
        # Waiting for a doc's load is not work of this node: the slot goes to the next
        # socket (most, at 08:00, open docs already here), the load is bounded apart.
        admitted.through(ctx)
    try:
        live = await registry.open(room_id, doc_name)
    except DocLoadError as exc:
        admitted.release(ctx)
        return await refuse(peer, Close.TRY_LATER, str(exc))
    peer.joined()
    session = registry.join(live, peer)
    admitted.through(ctx)  # sync step 1 sent: the admission slot goes to the next
    try:
        async for data in frames(sock, peer, frame_bucket(ctx), live.topic):
            try:
                registry.frame(live, peer, session, data)
            except ProtocolError as exc:
                log.info("closed %s on %s: malformed frame (%s)", peer.user_id, live.topic, exc)
                peer.close(Close.BAD_FRAME, f"malformed frame: {exc}"[:120])
                return
    finally:
        admitted.release(ctx)
        registry.leave(live, peer)
        await settle(peer)
