"""The relay between this node's live docs and the other nodes — theory of operation.

Outgoing: the hot path never awaits the bus. ``publish``/``send_to`` append to an
outbox; one task drains it, sending consecutive publishes in one pipelined round trip.
If the bus is down the messages are dropped (logged): every node stores what its own
clients sent, and anti-entropy repairs the other nodes' replicas when the bus is back.

Incoming, per doc topic (kinds):
- ``update``: a Yjs update another node's client made. Applied and fanned out to the
  local sockets, never stored here (origin BUS: the other node stored it).
- ``awareness``: applied and fanned out; each state is attributed to the node it came
  from, so that when that node dies (its heartbeat key expires) its clients' cursors are
  removed everywhere (``purge_dead_nodes``).
- ``sync1`` / ``sync1r``: anti-entropy. A node that loads a doc, that got its bus back,
  or whose periodic timer fired, publishes ``sync1`` with its state vector. Every peer
  answers it directly with ``sync2`` (what the asker lacks) and ``sync1r`` (its own state
  vector, "and you?"), plus the awareness of its own clients; ``sync1r`` is answered with
  ``sync2`` only. Two messages each way converge any two replicas, however many pub/sub
  messages were lost.
- ``sync2``: a diff; applied and fanned out like ``update``.
- ``lock``: a teacher (un)locked the doc on another node; the flag is in the database
  already, this only updates the replica's copy so students there lose write access now.

Write-safety across nodes: an update received from the bus is in the database only if
its node flushed it. If that node dies inside its write-behind window, the update
exists only in replicas. So a doc that has received bus updates appends its whole state
to the log when a peer node dies and before it unloads (idempotent; compaction folds it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import TYPE_CHECKING

from server.bus.base import Bus, Envelope
from server.sync.messages import (
    EMPTY_UPDATE,
    AwarenessMessage,
    ProtocolError,
    awareness_frame,
    decode,
    update_frame,
)
from server.types import NodeId

if TYPE_CHECKING:
    from server.persistence.writer import UpdateWriter
    from server.rooms.livedoc import LiveDoc

log = logging.getLogger(__name__)

KIND_UPDATE = "update"
KIND_AWARENESS = "awareness"
KIND_SYNC1 = "sync1"
KIND_SYNC1_REPLY = "sync1r"
KIND_SYNC2 = "sync2"
KIND_LOCK = "lock"

_Out = tuple[NodeId | None, str, str, bytes]  # (target or None for publish, topic, kind, payload)


class Relay:
    def __init__(
        self, bus: Bus, docs: dict[tuple[str, str], LiveDoc], writer: UpdateWriter
    ) -> None:
        self.bus = bus
        self.docs = docs
        self.writer = writer
        self._out: deque[_Out] = deque()
        self._wake = asyncio.Event()
        self.dropped = 0
        self.purged_nodes: set[NodeId] = set()

    # --- outgoing ---

    def publish(self, topic: str, kind: str, payload: bytes) -> None:
        self._out.append((None, topic, kind, payload))
        self._wake.set()

    def send_to(self, node: NodeId, topic: str, kind: str, payload: bytes) -> None:
        self._out.append((node, topic, kind, payload))
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._out:
                batch: list[tuple[str, str, bytes]] = []
                while self._out and self._out[0][0] is None and len(batch) < 512:
                    _, topic, kind, payload = self._out.popleft()
                    batch.append((topic, kind, payload))
                try:
                    if batch:
                        await self.bus.publish_many(batch)
                    elif self._out:
                        target, topic, kind, payload = self._out.popleft()
                        assert target is not None
                        await self.bus.send_to(target, topic, kind, payload)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.dropped += len(batch) or 1
                    log.warning(
                        "bus send failed (%s); anti-entropy will repair", type(exc).__name__
                    )

    # --- anti-entropy ---

    def ask_peers(self, live: LiveDoc) -> None:
        """Start an anti-entropy round for one doc."""
        self.publish(live.topic, KIND_SYNC1, live.doc.get_state())

    def ask_peers_all(self) -> None:
        for live in list(self.docs.values()):
            self.ask_peers(live)

    def _answer(self, live: LiveDoc, env: Envelope, *, want_reply: bool) -> None:
        try:
            diff = live.doc.get_update(env.payload)
        except Exception:
            log.warning("bad state vector from node %s on %s", env.origin, live.topic)
            return
        if diff != EMPTY_UPDATE:
            self.send_to(env.origin, live.topic, KIND_SYNC2, diff)
        if want_reply:
            self.send_to(env.origin, live.topic, KIND_SYNC1_REPLY, live.doc.get_state())
        local = [cid for cid in live.awareness.client_ids() if cid not in live.remote]
        if local:
            payload = live.awareness.update_for(local)
            if payload is not None:
                self.send_to(env.origin, live.topic, KIND_AWARENESS, payload)

    # --- incoming ---

    async def on_message(self, topic: str, env: Envelope) -> None:
        live = self._by_topic(topic)
        if live is None or not live.ready:
            return
        live.peer_nodes.add(env.origin)
        try:
            kind = env.kind
            if kind == KIND_UPDATE or kind == KIND_SYNC2:
                live.replica.apply(env.payload)
                live.bus_updates += 1
                live.fan_out(update_frame(env.payload))
            elif kind == KIND_AWARENESS:
                frame = awareness_frame(env.payload)
                msg = decode(frame)
                if isinstance(msg, AwarenessMessage):
                    accepted = live.awareness.apply(msg.entries, time.monotonic())
                    for e in accepted:
                        if e.state is None:
                            live.remote.pop(e.client_id, None)
                        else:
                            live.remote[e.client_id] = env.origin
                    if accepted:
                        live.fan_out(frame)
            elif kind == KIND_LOCK:
                live.locked = env.payload == b"\x01"
            elif kind == KIND_SYNC1:
                self._answer(live, env, want_reply=True)
            elif kind == KIND_SYNC1_REPLY:
                self._answer(live, env, want_reply=False)
        except ProtocolError:
            log.warning("dropped a malformed %s from node %s on %s", env.kind, env.origin, topic)

    def _by_topic(self, topic: str) -> LiveDoc | None:
        room_id, _, name = topic.removeprefix("doc:").partition("/")
        return self.docs.get((room_id, name))

    # --- dead nodes ---

    async def purge_dead_nodes(self) -> set[NodeId]:
        """Drop the cursors of clients whose node stopped beating; secure bus updates."""
        suspects: set[NodeId] = set()
        for live in self.docs.values():
            suspects.update(live.remote.values())
            suspects.update(live.peer_nodes)
        suspects.discard(self.bus.node_id)
        if not suspects:
            return set()
        dead = suspects - await self.bus.alive(suspects)
        if not dead:
            return set()
        log.warning("nodes %s stopped beating: removing their clients' awareness", sorted(dead))
        self.purged_nodes |= dead
        for live in list(self.docs.values()):
            gone = [cid for cid, node in live.remote.items() if node in dead]
            for cid in gone:
                del live.remote[cid]
            payload = live.awareness.remove(gone) if gone else None
            if payload is not None:
                live.fan_out(awareness_frame(payload))
            if live.peer_nodes & dead:
                live.peer_nodes -= dead
                self.secure(live)
        return dead

    def secure(self, live: LiveDoc) -> None:
        """Append this replica's whole state to the log if it holds bus updates."""
        if live.bus_updates:
            self.writer.enqueue(live.room_id, live.name, live.doc.get_update())
            live.log_size += 1
            live.bus_updates = 0
