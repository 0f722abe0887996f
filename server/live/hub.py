"""All the room channels of this node, and their traffic with the other nodes.

Bus kinds on a room topic (``room:{room_id}``), payloads in msgpack:
``chat`` (a message, new or changed), ``mute``, ``event``, ``p_join`` (a presence meta,
new or changed), ``p_leave``, ``p_sync`` (a node that just opened the room asks for
everyone's presence) answered directly with ``p_state`` (the answering node's metas).
When a node stops beating, its presence entries are purged everywhere (the leaves go
out to the sockets); after a bus reconnect every room resyncs presence and catches up
on chat from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import msgpack

from server.bus.base import Bus, Envelope
from server.config import Settings
from server.live import protocol
from server.live.presence import Meta
from server.live.room import LiveRoom
from server.persistence.chat import ChatStore
from server.rooms.peer import CLOSE_RESTART
from server.types import NodeId

log = logging.getLogger(__name__)

CATCH_UP_EVERY_S = 60.0
SAVED_EVERY_S = 0.5


class LiveHub:
    def __init__(self, settings: Settings, chat: ChatStore, bus: Bus) -> None:
        self.settings = settings
        self.chat = chat
        self.bus = bus
        self.node_id = bus.node_id
        self.rooms: dict[str, LiveRoom] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._out: asyncio.Queue[tuple[NodeId | None, str, str, bytes]] = asyncio.Queue()
        self.closing = False
        self._saved_pending: dict[tuple[str, str], bytes] = {}
        self._saved_at: dict[tuple[str, str], float] = {}

    async def start(self) -> None:
        self.bus.on_reconnect(self._after_reconnect)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._send_loop(), name="live-bus"),
            loop.create_task(self._liveness_loop(), name="live-liveness"),
            loop.create_task(self._catch_up_loop(), name="live-catch-up"),
        ]

    async def close(self) -> None:
        self.closing = True
        for room in list(self.rooms.values()):
            for conn in list(room.conns.values()):
                conn.peer.close(CLOSE_RESTART, "server restarting")
            await room.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # --- rooms ---

    async def open(self, room_id: str) -> LiveRoom:
        room = self.rooms.get(room_id)
        if room is None:
            room = LiveRoom(self, room_id)
            self.rooms[room_id] = room
            room.loading = asyncio.get_running_loop().create_task(self._load(room))
        assert room.loading is not None
        await asyncio.shield(room.loading)
        return room

    async def _load(self, room: LiveRoom) -> None:
        try:
            await self.bus.subscribe(room.topic, self._on_bus)
            room.muted = await self.chat.muted_users(room.room_id)
            last = await self.chat.last_seq(room.room_id)
        except BaseException:
            self.rooms.pop(room.room_id, None)
            with contextlib.suppress(Exception):
                await self.bus.unsubscribe(room.topic)
            raise
        # Messages relayed while we read are in the buffer; those up to `last` are old.
        room.next_seq = max(room.next_seq, last + 1)
        for seq in [s for s in room.buffer if s <= last]:
            del room.buffer[seq]
        room._drain()
        room.ready = True
        self.publish(room.topic, "p_sync", {})

    def release(self, room: LiveRoom) -> None:
        if not room.conns and not self.closing and room.unload_task is None:
            room.unload_task = asyncio.get_running_loop().create_task(self._unload(room))

    async def _unload(self, room: LiveRoom) -> None:
        try:
            await asyncio.sleep(self.settings.doc_unload_delay_s)
            if room.conns:
                return
            await self.bus.unsubscribe(room.topic)  # still registered: see RoomRegistry
            if room.conns:
                await self.bus.subscribe(room.topic, self._on_bus)
                self.publish(room.topic, "p_sync", {})
                await room.catch_up()
                return
            self.rooms.pop(room.room_id, None)
            await room.close()
        finally:
            room.unload_task = None

    def doc_saved(self, room_id: str, doc_name: str, state_vector: bytes) -> None:
        """Everything this node received for a doc is stored: tell the room, at most
        every SAVED_EVERY_S per doc (the last state always goes out, a little later)."""
        key = (room_id, doc_name)
        held = self._saved_pending.get(key)
        self._saved_pending[key] = state_vector
        if held is not None:
            return  # a send is already scheduled; it will carry the newest state
        now = asyncio.get_running_loop().time()
        wait = max(0.0, self._saved_at.get(key, 0.0) + SAVED_EVERY_S - now)
        asyncio.get_running_loop().call_later(wait, self._send_saved, key)

    def _send_saved(self, key: tuple[str, str]) -> None:
        sv = self._saved_pending.pop(key, None)
        if sv is None:
            return
        self._saved_at[key] = asyncio.get_running_loop().time()
        room_id, doc_name = key
        self.room_event(room_id, {"kind": "doc_saved", "doc": doc_name, "sv": sv})

    def room_event(self, room_id: str, event: dict[str, Any]) -> None:
        """A room event (e.g. a doc locked) for every socket of the room, on every node."""
        frame = {"t": "event", **event}
        room = self.rooms.get(room_id)
        if room is not None:
            room.send_all(protocol.encode(frame))
        self.publish(f"room:{room_id}", "event", frame)

    # --- bus ---

    def publish(self, topic: str, kind: str, body: dict[str, Any]) -> None:
        self._out.put_nowait((None, topic, kind, msgpack.packb(body, use_bin_type=True)))

    def send_to(self, node: NodeId, topic: str, kind: str, body: dict[str, Any]) -> None:
        self._out.put_nowait((node, topic, kind, msgpack.packb(body, use_bin_type=True)))

    async def _send_loop(self) -> None:
        while True:
            target, topic, kind, payload = await self._out.get()
            try:
                if target is None:
                    await self.bus.publish(topic, kind, payload)
                else:
                    await self.bus.send_to(target, topic, kind, payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("room bus send failed (%s); resync after reconnect", type(exc).__name__)

    async def _on_bus(self, topic: str, env: Envelope) -> None:
        room = self.rooms.get(topic.removeprefix("room:"))
        if room is None:
            return
        try:
            body = msgpack.unpackb(env.payload, raw=False, max_bin_len=0)
            if not isinstance(body, dict):
                raise ValueError("not a map")
            self._handle(room, env, body)
        except Exception as exc:
            log.warning("dropped a %s from node %s on %s: %s", env.kind, env.origin, topic, exc)

    def _handle(self, room: LiveRoom, env: Envelope, body: dict[str, Any]) -> None:
        kind = env.kind
        if kind == "chat":
            room.accept(body)
        elif kind == "mute":
            user = str(body["user"])
            if body.get("muted"):
                room.muted.add(user)
            else:
                room.muted.discard(user)
            room.send_all(protocol.encode({"t": "muted", **body}), presence_only=True)
        elif kind == "event":
            room.send_all(protocol.encode(body))
        elif kind == "p_join":
            room.remote_nodes.add(env.origin)
            room.send_presence(room.presence.join(Meta.from_record(body, env.origin)))
        elif kind == "p_leave":
            meta = room.presence.get(str(body.get("conn")))
            if meta is not None and meta.node == env.origin:
                room.send_presence(room.presence.leave(meta.conn))
        elif kind == "p_sync":
            mine = [m.record() for m in room.presence.of_node(self.node_id)]
            self.send_to(env.origin, room.topic, "p_state", {"metas": mine})
        elif kind == "p_state":
            room.remote_nodes.add(env.origin)
            metas = [Meta.from_record(r, env.origin) for r in body.get("metas", [])]
            room.send_presence(room.presence.replace_node(env.origin, metas))

    # --- resilience ---

    async def _after_reconnect(self) -> None:
        for room in list(self.rooms.values()):
            self.publish(room.topic, "p_sync", {})
            await room.catch_up()

    async def _catch_up_loop(self) -> None:
        while True:
            await asyncio.sleep(CATCH_UP_EVERY_S)
            for room in list(self.rooms.values()):
                if room.conns:
                    await room.catch_up()

    async def _liveness_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.node_heartbeat_s)
            try:
                suspects = {
                    NodeId(n) for room in self.rooms.values() for n in room.presence.nodes()
                }
                suspects.discard(self.node_id)
                if not suspects:
                    continue
                dead = suspects - await self.bus.alive(suspects)
                for room in self.rooms.values():
                    for node in dead:
                        room.send_presence(room.presence.purge_node(node))
                        room.remote_nodes.discard(node)
            except Exception:
                log.exception("presence liveness check failed")
