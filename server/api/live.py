"""WebSocket ``/rooms/{room_id}/live``: the room channel (docs/protocol.md).

After admission and the ``hello``, each client frame is decoded once
(``live/protocol.py``) and handed to the handler of its type (``HANDLERS``). Handlers
marked ``chat`` need chat access (parents have none); post and edit go through the
room's one gate (muted, then the text, then the rate).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from server import metrics
from server.api.access import naming
from server.api.sockets import admit, frame_bucket, refuse, settle
from server.context import AppContext
from server.live import protocol
from server.live.room import LiveConn, LiveRoom
from server.persistence.audit import Note
from server.persistence.roster import RoomInfo
from server.transport.codes import Close
from server.transport.socket import ClientSocket, frames
from server.types import ROOM_ID_RE, Role

log = logging.getLogger(__name__)


async def live_endpoint(sock: ClientSocket, ctx: AppContext) -> None:
    room_id = sock.params["room_id"]
    admitted = await admit(
        sock,
        ctx,
        room_id,
        names_valid=bool(ROOM_ID_RE.fullmatch(room_id)),
        allowed=lambda access: access.may_enter,
    )
    if admitted is None:
        return
    peer, user, info, access = admitted.peer, admitted.user, admitted.room, admitted.access
    try:
        room = await ctx.live.open(room_id)
    except Exception:
        log.exception("room channel %s unavailable", room_id)
        admitted.release(ctx)
        return await refuse(peer, Close.TRY_LATER, "room unavailable, retry later")

    # The name this room shows (its presence_names policy): in presence, on chat posts,
    # and in the hello's ``me``, which the web client also puts in the docs' awareness.
    try:
        name = (await naming(ctx, room_id))(user.id, str(user.role), user.display_name)
    except Exception:
        log.exception("room policy unavailable for %s", room_id)
        admitted.release(ctx)
        ctx.live.release(room)
        return await refuse(peer, Close.TRY_LATER, "room unavailable, retry later")
    conn = LiveConn(peer, secrets.token_hex(6), user.id, name, str(user.role), access)
    room.attach(conn)
    peer.joined()
    try:
        try:
            history = await ctx.chat.recent(room_id, protocol.HISTORY) if access.chat else []
        except Exception:
            log.exception("chat history unavailable for %s", room_id)
            peer.close(Close.TRY_LATER, "room unavailable, retry later")
            return
        high = max((m.seq for m in history), default=0)
        peer.send(
            protocol.encode(_hello(ctx, info, conn, room, [m.to_wire() for m in history], high))
        )
        admitted.through(ctx)  # the hello sent: the admission slot goes to the next
        conn.start(high)
        room.join_presence(conn)
        async for data in frames(sock, peer, frame_bucket(ctx), room.topic):
            try:
                frame = protocol.decode(data)
            except protocol.LiveProtocolError as exc:
                peer.close(Close.BAD_FRAME, f"malformed frame: {exc}"[:120])
                return
            await _handle(ctx, room, conn, frame)
    finally:
        admitted.release(ctx)
        room.detach(conn)
        ctx.live.release(room)
        await settle(peer)


def _hello(
    ctx: AppContext,
    info: RoomInfo,
    conn: LiveConn,
    room: LiveRoom,
    history: list[dict[str, Any]],
    high: int,
) -> dict[str, Any]:
    access = conn.access
    hello: dict[str, Any] = {
        "t": "hello",
        "v": protocol.PROTOCOL_VERSION,
        "node": ctx.settings.node_id,
        "me": {"id": conn.user_id, "name": conn.user_name, "role": conn.user_role},
        "room": {
            "id": info.id,
            "kind": str(info.kind),
            "name": info.name,
            "class_id": info.class_id,
        },
        "access": {
            "docs": access.docs.name.lower(),
            "chat": access.chat,
            "moderate": access.moderate,
            "lock": access.lock,
        },
        "limits": {
            "message_chars": protocol.MESSAGE_CHARS,
            "messages_per_minute": ctx.settings.chat_messages_per_minute,
            "burst": ctx.settings.chat_burst,
            "history": protocol.HISTORY,
        },
        "muted": conn.user_id in room.muted,
        "history": history,
        "last_seq": high,
    }
    if conn.sees_presence:
        hello["presence"] = room.presence.state()
    if access.moderate:
        hello["muted_users"] = sorted(room.muted)
    # What is stored already, for the docs of this room that this node holds: a client
    # whose channel (re)connects after the last save still learns that it is saved.
    hello["saved"] = ctx.registry.saved_states(info.id)
    return hello


# --- frame handlers: (ctx, room, conn, frame, ref) ---

Frame = dict[str, Any]
Ref = str | None
Handler = Callable[[AppContext, LiveRoom, LiveConn, Frame, Ref], Awaitable[None]]


def _ok(conn: LiveConn, ref: str | None, **fields: Any) -> None:
    conn.peer.send(protocol.encode({"t": "ok", "ref": ref, **fields}))


def _error(conn: LiveConn, code: str, ref: str | None, retry_after: float | None = None) -> None:
    conn.peer.send(protocol.error(code, ref, retry_after=retry_after))


async def _ping(ctx: AppContext, room: LiveRoom, conn: LiveConn, frame: Frame, ref: Ref) -> None:
    conn.peer.send(protocol.encode({"t": "pong", "ref": ref}))


async def _presence(
    ctx: AppContext, room: LiveRoom, conn: LiveConn, frame: Frame, ref: Ref
) -> None:
    meta = room.presence.get(conn.conn_id)
    doc = frame.get("doc", meta.doc if meta else None)
    typing = frame.get("typing", meta.typing if meta else False)
    room.update_presence(conn, doc, typing)


async def _post(ctx: AppContext, room: LiveRoom, conn: LiveConn, frame: Frame, ref: Ref) -> None:
    text = room.gate(conn, frame["text"])
    if isinstance(text, tuple):
        return _error(conn, text[0], ref, text[1])
    message = await ctx.chat.post(room.room_id, conn.user_id, conn.user_name, conn.user_role, text)
    metrics.posted(conn.user_role)
    room.posted(message.to_wire())
    _ok(conn, ref, id=message.id, seq=message.seq)


async def _edit(ctx: AppContext, room: LiveRoom, conn: LiveConn, frame: Frame, ref: Ref) -> None:
    existing = await ctx.chat.get(room.room_id, frame["id"])
    if existing is None or existing.deleted:
        return _error(conn, "not_found", ref)
    if existing.author_id != conn.user_id:
        return _error(conn, "forbidden", ref)
    text = room.gate(conn, frame["text"])  # an edit reaches the whole room too
    if isinstance(text, tuple):
        return _error(conn, text[0], ref, text[1])
    changed = await ctx.chat.edit(room.room_id, existing.id, text)
    if changed is None:
        return _error(conn, "not_found", ref)
    room.posted(changed.to_wire())
    _ok(conn, ref, id=changed.id, seq=changed.seq)


async def _delete(ctx: AppContext, room: LiveRoom, conn: LiveConn, frame: Frame, ref: Ref) -> None:
    existing = await ctx.chat.get(room.room_id, frame["id"])
    if existing is None or existing.deleted:
        return _error(conn, "not_found", ref)
    moderated = existing.author_id != conn.user_id
    if moderated and not conn.access.moderate:
        return _error(conn, "forbidden", ref)
    # A moderator's deletion is in the audit trail (who, whose message: never its text).
    note = (
        Note(
            conn.user_id,
            ctx.settings.node_id,
            "chat.delete",
            room.room_id,
            {"message_id": existing.id, "seq": existing.seq, "author": existing.author_id},
        )
        if moderated
        else None
    )
    changed = await ctx.chat.delete(room.room_id, existing.id, conn.user_id, note)
    if changed is None:
        return _error(conn, "not_found", ref)
    room.posted(changed.to_wire())
    _ok(conn, ref, id=changed.id, seq=changed.seq)


async def _mute(ctx: AppContext, room: LiveRoom, conn: LiveConn, frame: Frame, ref: Ref) -> None:
    if not conn.access.moderate:
        return _error(conn, "forbidden", ref)
    target = await ctx.roster.get_user(frame["user"])
    if target is None or target.role is not Role.STUDENT:
        return _error(conn, "bad_request", ref)  # only students can be muted
    muted = frame["t"] == "mute"
    note = Note(
        conn.user_id, ctx.settings.node_id, f"chat.{frame['t']}", target.id, {"room": room.room_id}
    )
    await ctx.chat.set_muted(room.room_id, target.id, muted, conn.user_id, note)
    room.set_muted(target.id, muted, conn.user_id, relay=True)
    _ok(conn, ref)


#: frame type → (handler, needs chat access)
HANDLERS: dict[str, tuple[Handler, bool]] = {
    "ping": (_ping, False),
    "presence": (_presence, False),
    "post": (_post, True),
    "edit": (_edit, True),
    "delete": (_delete, True),
    "mute": (_mute, True),
    "unmute": (_mute, True),
}


async def _handle(ctx: AppContext, room: LiveRoom, conn: LiveConn, frame: dict[str, Any]) -> None:
    kind = frame["t"]
    ref = frame.get("ref")
    handler, needs_chat = HANDLERS[kind]  # protocol.decode accepts only these types
    if needs_chat and not conn.access.chat:
        return _error(conn, "forbidden", ref)
    try:
        await handler(ctx, room, conn, frame, ref)
    except Exception:
        log.exception("chat %s failed in %s", kind, room.room_id)
        _error(conn, "unavailable", ref, retry_after=2.0)
