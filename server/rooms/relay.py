"""The relay between this node's live docs and the other nodes — theory of operation.

Outgoing messages go through the node's one ``Outbox`` (bus/outbox.py): the hot path
never awaits the bus, and when the bus is down messages are dropped (logged): every
node stores what its own clients sent, and anti-entropy repairs the other nodes'
replicas when the bus is back.

Incoming, per doc topic (kinds):
- ``update``: a Yjs update another node's client made, with the user who made it
  (``authored``). Integrated with origin BUS: applied and fanned out to the local
  sockets, never stored here (the other node did, with its author).
- ``awareness``: applied and fanned out; each state is attributed to the node it came
  from, so that when that node dies (its heartbeat key expires) its clients' cursors are
  removed everywhere (``purge``, called by the node's one liveness loop, bus/watch.py).
- ``sync1`` / ``sync1r``: anti-entropy. A node that loads a doc, that got its bus back,
  or whose periodic timer fired, publishes ``sync1`` with its state vector. Every peer
  answers it directly with ``sync2`` (what the asker lacks) and ``sync1r`` (its own state
  vector, "and you?"), plus the awareness of its own clients; ``sync1r`` is answered with
  ``sync2`` only. Two messages each way converge any two replicas, however many pub/sub
  messages were lost.
- ``sync2``: a diff; integrated like ``update``.
- ``lock``: a teacher (un)locked the doc on another node; the flag is in the database
  already, this only updates the replica's copy so students here lose write access now.

Write-safety across nodes: an update received from the bus is in the database only if
its node flushed it. If that node dies inside its write-behind window, the update
exists only in replicas. So a doc that has received bus updates appends its whole state
to the log when a peer node dies and before it unloads (idempotent; compaction folds it).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from server import metrics
from server.bus.base import Envelope
from server.sync.messages import EMPTY_UPDATE, ProtocolError, awareness_frame, decode_awareness
from server.types import NodeId, UpdateOrigin

if TYPE_CHECKING:
    from server.rooms.livedoc import LiveDoc
    from server.rooms.registry import RoomRegistry

log = logging.getLogger(__name__)

KIND_UPDATE = "update"
KIND_AWARENESS = "awareness"
KIND_SYNC1 = "sync1"
KIND_SYNC1_REPLY = "sync1r"
KIND_SYNC2 = "sync2"
KIND_LOCK = "lock"


def authored(author: str | None, update: bytes) -> bytes:
    """An update's bus payload: one byte of author length, the author (UTF-8), the update."""
    raw = (author or "").encode()
    if len(raw) > 255:
        raise ValueError("user ids are at most 64 characters")
    return bytes((len(raw),)) + raw + update


def split_authored(payload: bytes) -> tuple[str | None, bytes]:
    """Inverse of ``authored``; raises ProtocolError on a payload too short to hold it."""
    if not payload:
        raise ProtocolError("empty update payload")
    n = payload[0]
    if len(payload) < 1 + n:
        raise ProtocolError("truncated author")
    try:
        author = payload[1 : 1 + n].decode()
    except UnicodeDecodeError:
        raise ProtocolError("author is not UTF-8") from None
    return author or None, payload[1 + n :]


class Relay:
    def __init__(self, registry: RoomRegistry) -> None:
        self.registry = registry
        self.outbox = registry.outbox
        self.node_id = registry.bus.node_id

    # --- anti-entropy ---

    def ask_peers(self, live: LiveDoc) -> None:
        """Start an anti-entropy round for one doc."""
        self.outbox.publish(live.topic, KIND_SYNC1, live.doc.get_state())

    def ask_peers_all(self) -> None:
        for live in self.registry.docs.values():
            self.ask_peers(live)

    def _answer(self, live: LiveDoc, env: Envelope, *, want_reply: bool) -> None:
        try:
            diff = live.doc.get_update(env.payload)
        except Exception:
            log.warning("bad state vector from node %s on %s", env.origin, live.topic)
            return
        if diff != EMPTY_UPDATE:
            metrics.DIFF_SENT.inc()
            self.outbox.send_to(env.origin, live.topic, KIND_SYNC2, diff)
        if want_reply:
            self.outbox.send_to(env.origin, live.topic, KIND_SYNC1_REPLY, live.doc.get_state())
        local = [cid for cid in live.awareness.client_ids() if cid not in live.remote]
        if local:
            payload = live.awareness.update_for(local)
            if payload is not None:
                self.outbox.send_to(env.origin, live.topic, KIND_AWARENESS, payload)

    # --- incoming ---

    async def on_message(self, topic: str, env: Envelope) -> None:
        room_id, _, name = topic.removeprefix("doc:").partition("/")
        live = self.registry.docs.get((room_id, name))
        if live is None or not live.ready:
            return
        live.peer_nodes.add(env.origin)
        try:
            kind = env.kind
            if kind == KIND_UPDATE:
                author, update = split_authored(env.payload)
                self.registry.integrate(live, update, UpdateOrigin.BUS, author=author)
            elif kind == KIND_SYNC2:
                metrics.DIFF_RECEIVED.inc()  # a peer held what this replica lacked
                self.registry.integrate(live, env.payload, UpdateOrigin.BUS)
            elif kind == KIND_AWARENESS:
                entries = decode_awareness(env.payload)
                accepted = live.awareness.apply(entries, time.monotonic())
                for e in accepted:
                    if e.state is None:
                        live.remote.pop(e.client_id, None)
                    else:
                        live.remote[e.client_id] = env.origin
                if accepted:
                    live.fan_out(awareness_frame(env.payload))
            elif kind == KIND_LOCK:
                live.set_locked(env.payload == b"\x01")
            elif kind == KIND_SYNC1:
                self._answer(live, env, want_reply=True)
            elif kind == KIND_SYNC1_REPLY:
                self._answer(live, env, want_reply=False)
        except ProtocolError:
            log.warning("dropped a malformed %s from node %s on %s", env.kind, env.origin, topic)

    # --- dead nodes (bus/watch.py calls these) ---

    def suspects(self) -> set[NodeId]:
        """The nodes our docs hold something from."""
        nodes: set[NodeId] = set()
        for live in self.registry.docs.values():
            nodes.update(live.remote.values())
            nodes.update(live.peer_nodes)
        return nodes

    def purge(self, dead: set[NodeId]) -> None:
        """Drop the cursors of clients whose node stopped beating; secure bus updates."""
        for live in self.registry.docs.values():
            gone = [cid for cid, node in live.remote.items() if node in dead]
            for cid in gone:
                del live.remote[cid]
            payload = live.awareness.remove(gone) if gone else None
            if payload is not None:
                live.fan_out(awareness_frame(payload))
            if live.peer_nodes & dead:
                live.peer_nodes -= dead
                self.secure(live)

    def secure(self, live: LiveDoc) -> None:
        """Append this replica's whole state to the log if it holds bus updates."""
        if live.bus_updates:
            # Several authors: none recorded (each update's author is in its own node's log).
            self.registry.writer.enqueue(live.room_id, live.name, live.doc.get_update(), None)
            live.log_size += 1
            live.bus_updates = 0
