"""WebSocket ``/rooms/{room_id}/live``: the room channel (docs/protocol.md)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from typing import Any

from starlette.websockets import WebSocket

from server.api.sockets import admit, frames, refuse
from server.context import AppContext
from server.live import protocol
from server.live.room import LiveConn, LiveRoom
from server.persistence.roster import RoomInfo
from server.rooms.peer import (
    CLOSE_BAD_FRAME,
    CLOSE_TRY_LATER,
    Peer,
)
from server.types import ROOM_ID_RE, Role

log = logging.getLogger(__name__)


async def live_endpoint(ws: WebSocket) -> None:
    ctx: AppContext = ws.app.state.ctx
    room_id: str = ws.path_params["room_id"]
    admitted = await admit(
        ws,
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
        return await refuse(peer, CLOSE_TRY_LATER, "room unavailable, retry later")

    conn = LiveConn(peer, secrets.token_hex(6), user.id, user.display_name, str(user.role), access)
    room.attach(conn)
    peer.joined()
    try:
        try:
            history = await ctx.chat.recent(room_id, protocol.HISTORY) if access.chat else []
        except Exception:
            log.exception("chat history unavailable for %s", room_id)
            peer.close(CLOSE_TRY_LATER, "room unavailable, retry later")
            return
        high = max((m.seq for m in history), default=0)
        peer.send(
            protocol.encode(_hello(ctx, info, conn, room, [m.to_wire() for m in history], high))
        )
        conn.start(high)
        room.join_presence(conn)
        await _pump(ctx, ws, peer, room, conn)
    finally:
        room.detach(conn)
        ctx.live.release(room)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(peer.wait_closed(), 5)


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


async def _pump(ctx: AppContext, ws: WebSocket, peer: Peer, room: LiveRoom, conn: LiveConn) -> None:
    async for data in frames(ws, peer, ctx.settings, room.topic):
        try:
            frame = protocol.decode(data)
        except protocol.LiveProtocolError as exc:
            peer.close(CLOSE_BAD_FRAME, f"malformed frame: {exc}"[:120])
            return
        await _handle(ctx, room, conn, frame)


async def _handle(ctx: AppContext, room: LiveRoom, conn: LiveConn, frame: dict[str, Any]) -> None:
    kind = frame["t"]
    ref = frame.get("ref")
    peer = conn.peer
    access = conn.access
    if kind == "ping":
        peer.send(protocol.encode({"t": "pong", "ref": ref}))
        return
    if kind == "presence":
        meta = room.presence.get(conn.conn_id)
        doc = frame.get("doc", meta.doc if meta else None)
        typing = frame.get("typing", meta.typing if meta else False)
        room.update_presence(conn, doc, typing)
        return
    if not access.chat:
        peer.send(protocol.error("forbidden", ref))
        return
    chat = ctx.chat
    try:
        if kind == "post":
            await _post(ctx, room, conn, frame["text"], ref)
        elif kind in ("edit", "delete"):
            existing = await chat.get(room.room_id, frame["id"])
            if existing is None or existing.deleted:
                peer.send(protocol.error("not_found", ref))
                return
            if kind == "edit":
                if existing.author_id != conn.user_id:
                    peer.send(protocol.error("forbidden", ref))
                    return
                if conn.user_id in room.muted:
                    peer.send(protocol.error("muted", ref))
                    return
                bucket = room.chat_bucket(conn.user_id)  # an edit reaches the whole room too
                if not bucket.take(time.monotonic()):
                    peer.send(
                        protocol.error("rate_limited", ref, retry_after=round(1 / bucket.rate, 1))
                    )
                    return
                text = protocol.clean_text(frame["text"])
                if problem := _text_problem(text):
                    peer.send(protocol.error(problem, ref))
                    return
                changed = await chat.edit(room.room_id, existing.id, text)
            else:
                if existing.author_id != conn.user_id and not access.moderate:
                    peer.send(protocol.error("forbidden", ref))
                    return
                changed = await chat.delete(room.room_id, existing.id, conn.user_id)
            if changed is None:
                peer.send(protocol.error("not_found", ref))
                return
            wire = changed.to_wire()
            room.accept(wire)
            ctx.live.publish(room.topic, "chat", wire)
            peer.send(
                protocol.encode({"t": "ok", "ref": ref, "id": changed.id, "seq": changed.seq})
            )
        elif kind in ("mute", "unmute"):
            if not access.moderate:
                peer.send(protocol.error("forbidden", ref))
                return
            target = await ctx.roster.get_user(frame["user"])
            if target is None or target.role is not Role.STUDENT:
                peer.send(protocol.error("bad_request", ref))  # only students can be muted
                return
            muted = kind == "mute"
            await chat.set_muted(room.room_id, target.id, muted, conn.user_id)
            (room.muted.add if muted else room.muted.discard)(target.id)
            body = {"user": target.id, "muted": muted, "by": conn.user_id}
            room.send_all(protocol.encode({"t": "muted", **body}), presence_only=True)
            ctx.live.publish(room.topic, "mute", body)
            peer.send(protocol.encode({"t": "ok", "ref": ref}))
    except Exception:
        log.exception("chat %s failed in %s", kind, room.room_id)
        peer.send(protocol.error("unavailable", ref, retry_after=2.0))


def _text_problem(text: str) -> str | None:
    if not text:
        return "empty"
    if len(text) > protocol.MESSAGE_CHARS:
        return "too_long"
    return None


async def _post(ctx: AppContext, room: LiveRoom, conn: LiveConn, raw: str, ref: str | None) -> None:
    peer = conn.peer
    if conn.user_id in room.muted:
        peer.send(protocol.error("muted", ref))
        return
    text = protocol.clean_text(raw)
    if problem := _text_problem(text):
        peer.send(protocol.error(problem, ref))
        return
    bucket = room.chat_bucket(conn.user_id)
    if not bucket.take(time.monotonic()):
        retry = round(1 / bucket.rate, 1)
        peer.send(protocol.error("rate_limited", ref, retry_after=retry))
        return
    message = await ctx.chat.post(room.room_id, conn.user_id, conn.user_name, conn.user_role, text)
    wire = message.to_wire()
    room.accept(wire)
    ctx.live.publish(room.topic, "chat", wire)
    peer.send(protocol.encode({"t": "ok", "ref": ref, "id": message.id, "seq": message.seq}))
