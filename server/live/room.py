"""One room's channel on one node: its connections, presence and chat delivery.

Chat delivery — theory of operation. The database numbers each room's messages 1, 2, 3 …
(``seq``, under a per-room lock), so "one order that every client sees alike" is the
``seq`` order, and exactly-once is "each seq once per socket". A node delivers a message
to its sockets only when every smaller seq has been delivered: messages (stored by this
node, or relayed by others over the bus) go into a reorder buffer keyed by seq; the
buffer drains from ``next_seq``; a gap that lasts ``GAP_WAIT_S`` (a message the bus lost,
or one still in flight from a slower node) is filled from the database. An edit or a
deletion is the same message with a higher ``version``: held in the buffer if its seq
is not delivered yet, otherwise sent at once (clients keep the highest version).

A socket that joins reads its history from the database *after* it is attached, and
queues what the room delivers meanwhile; once its hello is sent the queue is flushed,
skipping the seqs its history already had. No message is missed or shown twice.

A LiveRoom owns its state: the hub (live/hub.py) and the endpoint (api/live.py) speak
to it through intent methods (``loaded``, ``accept``, ``set_muted``, ``gate``, the
presence calls), and it reaches the rest of the node only through its ``RoomPort``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import Context
from dataclasses import dataclass
from typing import Any

from server.live import protocol
from server.live.presence import Meta, PresenceTable
from server.transport.limits import TokenBucket
from server.types import PeerHandle, RoomAccess

log = logging.getLogger(__name__)

GAP_WAIT_S = 0.3


@dataclass(frozen=True, slots=True)
class RoomPort:
    """All a room channel needs from its node."""

    node_id: str
    #: (topic, kind, body): to the other nodes holding this room (never awaited).
    publish: Callable[[str, str, dict[str, Any]], None]
    #: (room id, seq) → the stored messages after ``seq``, as wire dicts, in seq order.
    since: Callable[[str, int], Awaitable[list[dict[str, Any]]]]
    chat_per_minute: float
    chat_burst: float


class LiveConn:
    __slots__ = (
        "access",
        "conn_id",
        "high",
        "peer",
        "pending",
        "presence_bucket",
        "presence_wanted",
        "ready",
        "user_id",
        "user_name",
        "user_role",
    )

    def __init__(
        self,
        peer: PeerHandle,
        conn_id: str,
        user_id: str,
        name: str,
        role: str,
        access: RoomAccess,
    ) -> None:
        self.peer = peer
        self.conn_id = conn_id
        self.user_id = user_id
        self.user_name = name
        self.user_role = role
        self.access = access
        self.high = 0  # highest message seq this socket has
        self.ready = False
        self.pending: list[tuple[int, bytes, bool]] = []
        self.presence_bucket = TokenBucket(protocol.PRESENCE_PER_SECOND, 10, time.monotonic())
        self.presence_wanted: tuple[str | None, bool] | None = None

    @property
    def sees_presence(self) -> bool:
        return self.access.chat  # parents: room events only (docs/protocol.md, Permissions)

    def deliver(self, seq: int, frame: bytes, is_new: bool) -> None:
        if not self.access.chat:
            return
        if not self.ready:
            self.pending.append((seq, frame, is_new))
            return
        if is_new:
            if seq <= self.high:
                return
            self.high = seq
        self.peer.send(frame)

    def start(self, high: int) -> None:
        """The hello (with history up to ``high``) is sent: flush what queued meanwhile."""
        self.high = high
        self.ready = True
        pending, self.pending = self.pending, []
        for seq, frame, is_new in pending:
            self.deliver(seq, frame, is_new)


class LiveRoom:
    def __init__(self, port: RoomPort, room_id: str) -> None:
        self.port = port
        self.room_id = room_id
        self.topic = f"room:{room_id}"
        self.conns: dict[str, LiveConn] = {}
        self.presence = PresenceTable()
        self.next_seq = 1
        self.buffer: dict[int, dict[str, Any]] = {}
        self.muted: set[str] = set()
        self.buckets: dict[str, TokenBucket] = {}
        self.ready = False
        self._early_mutes: list[tuple[str, bool]] = []
        self._gap_task: asyncio.Task[None] | None = None

    # --- loading ---

    def loaded(self, last_seq: int, muted: set[str]) -> None:
        """Where the room stands in the database (read after subscribing to its topic)."""
        self.muted = set(muted)
        for user, is_muted in self._early_mutes:  # relayed while we read: newer
            (self.muted.add if is_muted else self.muted.discard)(user)
        self._early_mutes.clear()
        # Messages relayed while we read are in the buffer; those up to `last_seq` are old.
        self.next_seq = max(self.next_seq, last_seq + 1)
        for seq in [s for s in self.buffer if s <= last_seq]:
            del self.buffer[seq]
        self.ready = True
        self._drain()
        self._watch_gap()  # a message lost while we read leaves a gap: fill it too

    # --- sending to local sockets ---

    def send_all(self, frame: bytes, *, presence_only: bool = False) -> None:
        """To every socket; with ``presence_only``, only to those who see who is here
        (chat access: parents get room events, never names of students)."""
        for conn in self.conns.values():
            if presence_only and not conn.sees_presence:
                continue
            conn.peer.send(frame)

    def event(self, frame: dict[str, Any]) -> None:
        """A room event (``{"t": "event", ...}``) for this node's sockets."""
        self.send_all(protocol.encode(frame))

    def progress(self, frame: dict[str, Any]) -> None:
        """A ``progress`` event: for the class's teachers only (figures about minors)."""
        encoded = protocol.encode(frame)
        for conn in self.conns.values():
            if conn.access.moderate:
                conn.peer.send(encoded)

    def notify(self, items: dict[str, list[dict[str, Any]]]) -> None:
        """Each user's own notifications, to that user's sockets here (a user with two
        rooms open gets them on both: the client keeps one copy by id)."""
        for conn in self.conns.values():
            mine = items.get(conn.user_id)
            if mine:
                for item in mine:
                    conn.peer.send(
                        protocol.encode({"t": "event", "kind": "notification", "item": item})
                    )

    def _send_presence(self, diff: dict[str, Any] | None) -> None:
        if diff is not None:
            self.send_all(protocol.encode(diff), presence_only=True)

    # --- chat, in seq order ---

    def gate(self, conn: LiveConn, raw: str) -> str | tuple[str, float | None]:
        """The one check before a post or an edit, in this order: muted, then the text,
        then the rate (a refused text spends no token). Returns the cleaned text, or the
        error (code, retry_after)."""
        if conn.user_id in self.muted:
            return ("muted", None)
        text = protocol.clean_text(raw)
        if not text:
            return ("empty", None)
        if len(text) > protocol.MESSAGE_CHARS:
            return ("too_long", None)
        bucket = self._chat_bucket(conn.user_id)
        if not bucket.take(time.monotonic()):
            return ("rate_limited", round(1 / bucket.rate, 1))
        return text

    def _chat_bucket(self, user_id: str) -> TokenBucket:
        bucket = self.buckets.get(user_id)
        if bucket is None:
            port = self.port
            bucket = TokenBucket(port.chat_per_minute / 60, port.chat_burst, time.monotonic())
            self.buckets[user_id] = bucket
        return bucket

    def posted(self, message: dict[str, Any]) -> None:
        """A message stored by this node (new, edited or deleted): deliver, relay."""
        self.accept(message)
        self.port.publish(self.topic, "chat", message)

    def accept(self, message: dict[str, Any]) -> None:
        """A message (new, edited or deleted), from this node or another."""
        seq = message["seq"]
        if not self.ready:  # still reading where the room stands: hold everything
            self.buffer[seq] = message
            return
        if seq < self.next_seq:
            if message.get("version", 1) > 1:
                frame = protocol.encode({"t": "message", "message": message})
                for conn in self.conns.values():
                    conn.deliver(seq, frame, False)
            return
        held = self.buffer.get(seq)
        if held is None or message.get("version", 1) > held.get("version", 1):
            self.buffer[seq] = message
        self._drain()
        self._watch_gap()

    def _watch_gap(self) -> None:
        """Fill from the database, after GAP_WAIT_S, what the buffer still waits for."""
        if self.buffer and (self._gap_task is None or self._gap_task.done()):
            # A fresh context: the room's gap, not the socket whose message revealed it.
            loop = asyncio.get_running_loop()
            self._gap_task = loop.create_task(self._fill_gap(), context=Context())

    def _drain(self) -> None:
        while self.next_seq in self.buffer:
            message = self.buffer.pop(self.next_seq)
            frame = protocol.encode({"t": "message", "message": message})
            for conn in self.conns.values():
                conn.deliver(self.next_seq, frame, True)
            self.next_seq += 1

    async def _fill_gap(self) -> None:
        await asyncio.sleep(GAP_WAIT_S)
        if self.buffer:
            await self.catch_up()

    async def catch_up(self) -> None:
        """Deliver what the database has past ``next_seq`` (lost or late bus messages)."""
        try:
            missing = await self.port.since(self.room_id, self.next_seq - 1)
        except Exception:
            log.warning("chat catch-up failed for %s; will retry", self.room_id)
            return
        for message in missing:
            self.accept(message)

    # --- moderation ---

    def set_muted(self, user: str, muted: bool, by: str, *, relay: bool) -> None:
        """A student (un)muted — here (``relay``: tell the other nodes) or on another node."""
        if not self.ready:
            self._early_mutes.append((user, muted))
        (self.muted.add if muted else self.muted.discard)(user)
        body = {"user": user, "muted": muted, "by": by}
        self.send_all(protocol.encode({"t": "muted", **body}), presence_only=True)
        if relay:
            self.port.publish(self.topic, "mute", body)

    # --- presence: this node's connections ---

    def join_presence(self, conn: LiveConn) -> None:
        if not conn.sees_presence:
            return
        meta = Meta(
            conn.conn_id,
            self.port.node_id,
            conn.user_id,
            conn.user_name,
            conn.user_role,
            time.time(),
        )
        self._send_presence(self.presence.join(meta))
        self.port.publish(self.topic, "p_join", meta.record())

    def update_presence(self, conn: LiveConn, doc: str | None, typing: bool) -> None:
        """Apply at most PRESENCE_PER_SECOND updates a second; coalesce the rest."""
        if not conn.sees_presence:
            return
        if not conn.presence_bucket.take(time.monotonic()):
            first = conn.presence_wanted is None
            conn.presence_wanted = (doc, typing)
            if first:
                asyncio.get_running_loop().call_later(0.2, self._apply_wanted, conn)
            return
        self._apply_presence(conn, doc, typing)

    def _apply_wanted(self, conn: LiveConn) -> None:
        wanted, conn.presence_wanted = conn.presence_wanted, None
        if wanted is not None and conn.conn_id in self.conns:
            self._apply_presence(conn, *wanted)

    def _apply_presence(self, conn: LiveConn, doc: str | None, typing: bool) -> None:
        diff = self.presence.update(conn.conn_id, doc, typing)
        if diff is not None:
            self._send_presence(diff)
            meta = self.presence.get(conn.conn_id)
            if meta is not None:
                self.port.publish(self.topic, "p_join", meta.record())

    def leave_presence(self, conn: LiveConn) -> None:
        diff = self.presence.leave(conn.conn_id)
        if diff is not None:
            self._send_presence(diff)
            self.port.publish(self.topic, "p_leave", {"conn": conn.conn_id})

    # --- presence: other nodes' connections ---

    def remote_joined(self, meta: Meta) -> None:
        self._send_presence(self.presence.join(meta))

    def remote_left(self, conn_id: str, node: str) -> None:
        meta = self.presence.get(conn_id)
        if meta is not None and meta.node == node:
            self._send_presence(self.presence.leave(conn_id))

    def remote_state(self, node: str, metas: list[Meta]) -> None:
        self._send_presence(self.presence.replace_node(node, metas))

    def node_gone(self, node: str) -> None:
        self._send_presence(self.presence.purge_node(node))

    def own_metas(self) -> list[dict[str, Any]]:
        return [m.record() for m in self.presence.of_node(self.port.node_id)]

    # --- membership of the room object ---

    def attach(self, conn: LiveConn) -> None:
        self.conns[conn.conn_id] = conn

    def detach(self, conn: LiveConn) -> None:
        if self.conns.pop(conn.conn_id, None) is not None:
            self.leave_presence(conn)

    async def close(self) -> None:
        if self._gap_task is not None:
            self._gap_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._gap_task
