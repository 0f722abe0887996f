"""All the room channels of this node, and their traffic with the other nodes.

Bus kinds on a room topic (``room:{room_id}``), payloads in msgpack:
``chat`` (a message, new or changed), ``mute``, ``event``, ``progress`` (figures for
the teachers of a class room), ``notify`` (notifications, each for its own user only),
``p_join`` (a presence meta,
new or changed), ``p_leave``, ``p_sync`` (a node that just opened the room asks for
everyone's presence) answered directly with ``p_state`` (the answering node's metas).
When a node stops beating, its presence entries are purged everywhere (the leaves go
out to the sockets); after a bus reconnect every room resyncs presence and catches up
on chat from the database.

Rooms are loaded and unloaded by the same helper as docs (rooms/residency.py); the hub
is their keeper. Each LiveRoom gets a ``RoomPort`` (publish, chat since, node id, chat
limits) and owns its state; the hub only routes bus messages to its intent methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

import msgpack

from server.bus.base import Envelope
from server.bus.outbox import Outbox
from server.bus.watch import NodeWatch
from server.config import Settings
from server.live.presence import Meta
from server.live.room import LiveRoom, RoomPort
from server.persistence.chat import ChatStore
from server.rooms.residency import Residency
from server.transport.codes import Close
from server.types import NodeId

log = logging.getLogger(__name__)

CATCH_UP_EVERY_S = 60.0
SAVED_EVERY_S = 0.5


class LiveHub:
    def __init__(
        self, settings: Settings, chat: ChatStore, outbox: Outbox, watch: NodeWatch
    ) -> None:
        self.settings = settings
        self.chat = chat
        self.outbox = outbox
        self.bus = outbox.bus
        self.node_id = self.bus.node_id
        self.port = RoomPort(
            node_id=self.node_id,
            publish=self.publish,
            since=self._since,
            chat_per_minute=settings.chat_messages_per_minute,
            chat_burst=settings.chat_burst,
        )
        self.rooms: Residency[str, LiveRoom] = Residency(
            self.bus, self._on_bus, self, delay_s=settings.doc_unload_delay_s
        )
        watch.watch(self._presence_nodes, self._purge)
        self._tasks: list[asyncio.Task[None]] = []
        self.closing = False
        self._saved_pending: dict[tuple[str, str], bytes] = {}
        self._saved_at: dict[tuple[str, str], float] = {}
        self._handlers: dict[str, Callable[[LiveRoom, NodeId, dict[str, Any]], None]] = {
            "chat": lambda room, node, body: room.accept(body),
            "mute": lambda room, node, body: room.set_muted(
                str(body["user"]), bool(body.get("muted")), str(body.get("by", "")), relay=False
            ),
            "event": lambda room, node, body: room.event(body),
            "progress": lambda room, node, body: room.progress(body),
            "notify": lambda room, node, body: room.notify(body["items"]),
            "p_join": lambda room, node, body: room.remote_joined(Meta.from_record(body, node)),
            "p_leave": lambda room, node, body: room.remote_left(str(body.get("conn")), node),
            "p_sync": lambda room, node, body: self.outbox.send_to(
                node, room.topic, "p_state", _pack({"metas": room.own_metas()})
            ),
            "p_state": lambda room, node, body: room.remote_state(
                node, [Meta.from_record(r, node) for r in body.get("metas", [])]
            ),
        }

    async def start(self) -> None:
        self.bus.on_reconnect(self._after_reconnect)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._catch_up_loop(), name="live-catch-up")]

    async def close(self) -> None:
        self.closing = True
        rooms = self.rooms.values()
        for room in rooms:
            for conn in list(room.conns.values()):
                conn.peer.close(Close.RESTART, "server restarting")
        await self.rooms.close()
        for room in rooms:
            await room.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # --- rooms ---

    async def open(self, room_id: str) -> LiveRoom:
        return await self.rooms.open(room_id, lambda: LiveRoom(self.port, room_id))

    def release(self, room: LiveRoom) -> None:
        if not self.closing:
            self.rooms.release(room.room_id, room)

    # --- the residency keeper (rooms/residency.py) ---

    def in_use(self, room: LiveRoom) -> bool:
        return bool(room.conns)

    async def load(self, room: LiveRoom) -> None:
        muted = await self.chat.muted_users(room.room_id)
        last = await self.chat.last_seq(room.room_id)
        room.loaded(last, muted)

    def loaded(self, room: LiveRoom) -> None:
        self.publish(room.topic, "p_sync", {})

    def failed(self, room: LiveRoom) -> None:
        log.warning("room channel %s could not be loaded", room.room_id)

    async def settle(self, room: LiveRoom) -> bool:
        return True  # chat is stored before it is delivered: nothing to flush

    async def resumed(self, room: LiveRoom) -> None:
        self.publish(room.topic, "p_sync", {})
        await room.catch_up()

    async def gone(self, room: LiveRoom) -> None:
        await room.close()

    # --- events ---

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

    def doc_locked(self, room_id: str, doc_name: str, locked: bool, by: str) -> None:
        self.room_event(
            room_id, {"kind": "doc_locked", "doc": doc_name, "locked": locked, "by": by}
        )

    def room_event(self, room_id: str, event: dict[str, Any]) -> None:
        """A room event (e.g. a doc locked) for every socket of the room, on every node."""
        frame = {"t": "event", **event}
        room = self.rooms.get(room_id)
        if room is not None:
            room.event(frame)
        self.publish(f"room:{room_id}", "event", frame)

    def class_progress(self, class_id: str, event: dict[str, Any]) -> None:
        """A progress event (server/progress/) for the teachers on a class's channel."""
        self.class_teachers(class_id, {"kind": "progress", **event})

    def class_teachers(self, class_id: str, event: dict[str, Any]) -> None:
        """An event for the teachers on a class's channel only (figures and states of
        minors' work), on every node: the bus kind ``progress`` carries it."""
        frame = {"t": "event", **event}
        room = self.rooms.get(class_id)
        if room is not None:
            room.progress(frame)
        self.publish(f"room:{class_id}", "progress", frame)

    def notify(self, room_ids: Sequence[str], items: dict[str, list[dict[str, Any]]]) -> None:
        """Notifications (server/notifications/) to their users' sockets on these rooms'
        channels, on every node: ``items`` maps a user id to their new notifications."""
        for room_id in room_ids:
            room = self.rooms.get(room_id)
            if room is not None:
                room.notify(items)
            self.publish(f"room:{room_id}", "notify", {"items": items})

    # --- bus ---

    def publish(self, topic: str, kind: str, body: dict[str, Any]) -> None:
        self.outbox.publish(topic, kind, _pack(body))

    async def _since(self, room_id: str, seq: int) -> list[dict[str, Any]]:
        return [m.to_wire() for m in await self.chat.since(room_id, seq)]

    async def _on_bus(self, topic: str, env: Envelope) -> None:
        room = self.rooms.get(topic.removeprefix("room:"))
        handler = self._handlers.get(env.kind)
        if room is None or handler is None:
            return
        try:
            body = msgpack.unpackb(env.payload, raw=False, max_bin_len=0)
            if not isinstance(body, dict):
                raise ValueError("not a map")
            handler(room, env.origin, body)
        except Exception as exc:
            # The exception's type only: its message may quote the payload (chat text).
            name = type(exc).__name__
            log.warning("dropped a %s from node %s on %s: %s", env.kind, env.origin, topic, name)

    # --- resilience ---

    def _presence_nodes(self) -> set[NodeId]:
        return {NodeId(n) for room in self.rooms.values() for n in room.presence.nodes()}

    def _purge(self, dead: set[NodeId]) -> None:
        for room in self.rooms.values():
            for node in dead:
                room.node_gone(node)

    async def _after_reconnect(self) -> None:
        for room in self.rooms.values():
            self.publish(room.topic, "p_sync", {})
            await room.catch_up()

    async def _catch_up_loop(self) -> None:
        while True:
            await asyncio.sleep(CATCH_UP_EVERY_S)
            for room in self.rooms.values():
                if room.conns:
                    await room.catch_up()


def _pack(body: dict[str, Any]) -> bytes:
    return msgpack.packb(body, use_bin_type=True)
