"""A cluster in one process, so that each room test reads like a story::

    a, b = await cluster.node("A"), await cluster.node("B")   # two nodes on one hub
    on_a = a.socket(await a.open())                           # a student's socket on A
    on_b = b.socket(await b.open(), "t-01", TEACHER)          # the teacher's, on B
    on_a.type("bonjour")
    await until(lambda: on_b.content == "bonjour", "the edit reaches B")

Each node is a real RoomRegistry with its own Outbox, NodeWatch, bus and engine; the
buses share one MemoryHub exactly as nodes share one Redis, and the engines one
migrated SQLite file, as nodes share one database. A socket is a real ``Peer`` whose
transport hands every frame to a y-websocket client on pycrdt (:class:`Socket`), so a
socket's ``content`` is what its user sees.

Nodes never run their liveness loop on their own: a test calls ``node.watch.check()``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pycrdt import (
    Decoder,
    Doc,
    Text,
    YMessageType,
    create_sync_message,
    create_update_message,
    handle_sync_message,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from server.bus.memory import InMemoryBus, MemoryHub
from server.bus.outbox import Outbox
from server.bus.watch import NodeWatch
from server.config import Settings
from server.persistence.db import create_engine
from server.persistence.docs import DocStore, StoredDoc
from server.persistence.writer import Item
from server.rooms.livedoc import LiveDoc
from server.rooms.registry import RoomRegistry
from server.sync.messages import AwarenessMessage, awareness_frame, decode
from server.transport.peer import Peer
from server.types import DocAccess, NodeId, RoomAccess
from tests.support.inproc import Recorder, joined_peer, migrated_sqlite
from tests.sync.peers import awareness_update

ROOM = "2nde-a-g1"
DOC = "rapport"
KEY = (ROOM, DOC)
TOPIC = LiveDoc.topic_of(ROOM, DOC)

STUDENT = RoomAccess(docs=DocAccess.WRITE, chat=True, bound_by_locks=True)
TEACHER = RoomAccess(docs=DocAccess.WRITE, chat=True, moderate=True, lock=True)
PARENT = RoomAccess(docs=DocAccess.READ)


class Gate:
    """A point where a coroutine stops until the test opens the gate."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self.opened = asyncio.Event()

    async def hold(self) -> None:
        self.reached.set()
        await self.opened.wait()

    def open(self) -> None:
        self.opened.set()


class LossyBus(InMemoryBus):
    """The in-memory bus, whose publishes are lost while ``losing`` (pub/sub is at most
    once: an outage, a full buffer). What was lost is kept in ``lost``."""

    def __init__(self, node_id: NodeId, hub: MemoryHub | None = None) -> None:
        super().__init__(node_id, hub)
        self.losing = False
        self.lost: list[tuple[str, str, bytes]] = []

    async def publish(self, topic: str, kind: str, payload: bytes) -> None:
        if self.losing:
            self.lost.append((topic, kind, payload))
            return
        await super().publish(topic, kind, payload)


class RecordingStore(DocStore):
    """The real DocStore, remembering what this node loaded, appended and compacted."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self.loads: list[tuple[str, str]] = []
        self.appended: list[Item] = []
        self.compacted: list[tuple[str, str]] = []

    async def load(self, room_id: str, doc_name: str) -> StoredDoc:
        self.loads.append((room_id, doc_name))
        return await super().load(room_id, doc_name)

    async def append(self, items: Sequence[Item]) -> None:
        await super().append(items)
        self.appended.extend(items)

    async def compact(self, room_id: str, doc_name: str) -> bool:
        folded = await super().compact(room_id, doc_name)
        self.compacted.append((room_id, doc_name))
        return folded


def edits(*parts: str, client_id: int | None = None) -> list[bytes]:
    """The updates of a user typing ``parts`` one after the other (in another client)."""
    doc = Doc(client_id=client_id)
    text = doc.get("content", type=Text)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    for part in parts:
        text.insert(len(text), part)
    return updates


def content_of(update: bytes | None) -> str:
    """The text a stored update (a snapshot, a merged log) holds."""
    doc = Doc()
    if update is not None:
        doc.apply_update(update)
    return str(doc.get("content", type=Text))


def text_of(live: LiveDoc) -> str:
    """The text the node's replica holds."""
    return str(live.doc.get("content", type=Text))


class Socket:
    """A y-websocket client on pycrdt, connected to a node through a real Peer.

    Frames from the server reach the client as the peer sends them; the client's own
    frames (its opening, its edits, its answers) go to ``registry.frame`` at once, as an
    endpoint would hand them over.
    """

    def __init__(
        self,
        registry: RoomRegistry,
        live: LiveDoc,
        user: str,
        access: RoomAccess,
        offline: str = "",
    ) -> None:
        self.registry = registry
        self.live = live
        self.user = user
        self.doc = Doc()
        self.text = self.doc.get("content", type=Text)
        self.title = self.doc.get("title", type=Text)
        if offline:
            self.text.insert(0, offline)  # typed while disconnected: sent in sync step 2
        self.sent: list[bytes] = []  # the updates this client made, as sent
        self.denied: list[str] = []  # reasons of the "permission denied" messages
        self.cursors: dict[int, dict[str, Any] | None] = {}  # awareness as shown here
        self._clock = 0
        self._out: list[bytes] = []
        self._remote = False
        self.doc.observe(self._on_local)
        self.transport = Recorder(self._receive)
        self.peer: Peer = joined_peer(self.transport, user, access)
        self.session = registry.join(live, self.peer)
        self._out.append(create_sync_message(self.doc))
        self.flush()

    @property
    def client_id(self) -> int:
        return self.doc.client_id

    @property
    def content(self) -> str:
        return str(self.text)

    # --- what the user does ---

    def type(self, text: str, *, into: str = "content") -> None:
        target = self.text if into == "content" else self.title
        target.insert(len(target), text)
        self.flush()

    def here(self, state: dict[str, Any] | None) -> None:
        """Set this client's awareness state (None: gone)."""
        self._clock += 1
        raw = json.dumps(state)
        self._out.append(awareness_frame(awareness_update((self.client_id, self._clock, raw))))
        self.flush()

    def leave(self) -> None:
        self.registry.leave(self.live, self.peer)
        self.peer.close(1000, "bye")

    # --- the wire ---

    def flush(self) -> None:
        while self._out:
            self.registry.frame(self.live, self.peer, self.session, self._out.pop(0))

    def _on_local(self, event: Any) -> None:
        if not self._remote:
            self.sent.append(event.update)
            self._out.append(create_update_message(event.update))

    def _receive(self, frame: bytes) -> None:
        kind = frame[0]
        if kind == YMessageType.SYNC:
            self._remote = True
            try:
                reply = handle_sync_message(frame[1:], self.doc)
            finally:
                self._remote = False
            if reply is not None:
                self._out.append(reply)
        elif kind == YMessageType.AWARENESS:
            msg = decode(frame)
            assert isinstance(msg, AwarenessMessage)
            for entry in msg.entries:
                self.cursors[entry.client_id] = entry.state
        elif kind == 2:  # auth: permission denied
            self.denied.append(Decoder(frame[2:]).read_message().decode())
        else:
            raise AssertionError(f"the server sent an unknown frame {frame!r}")


@dataclass
class Node:
    name: str
    settings: Settings
    engine: AsyncEngine
    store: Any  # a RecordingStore, or the test's subclass of it
    bus: LossyBus
    outbox: Outbox
    watch: NodeWatch
    registry: RoomRegistry
    alive: bool = True

    async def open(self, doc: str = DOC, room: str = ROOM) -> LiveDoc:
        return await self.registry.open(room, doc)

    def socket(
        self, live: LiveDoc, user: str = "s-01", access: RoomAccess = STUDENT, offline: str = ""
    ) -> Socket:
        return Socket(self.registry, live, user, access, offline)

    async def flush(self) -> None:
        assert await self.registry.writer.flush(timeout=5), f"{self.name} could not flush"


@dataclass
class Cluster:
    url: str
    folder: Path
    hub: MemoryHub = field(default_factory=MemoryHub)
    nodes: list[Node] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.engine = create_engine(self.url)  # the test's own look at the database

    async def node(
        self,
        name: str,
        *,
        store: type[RecordingStore] = RecordingStore,
        bus: type[LossyBus] = LossyBus,
        **settings: Any,
    ) -> Node:
        options: dict[str, Any] = {
            "doc_unload_delay_s": 0.1,
            "flush_interval_ms": 5,
            "antientropy_interval_s": 0,
            **settings,
        }
        conf = Settings(data_dir=self.folder, database_url=self.url, node_id=name, **options)
        engine = create_engine(self.url)
        node_bus = bus(NodeId(name), self.hub)
        await node_bus.start()
        outbox = Outbox(node_bus)
        outbox.start()
        watch = NodeWatch(node_bus, interval_s=3600)  # the tests call check() themselves
        registry = RoomRegistry(conf, store(engine), outbox, watch)
        await registry.start()
        node = Node(name, conf, engine, registry.store, node_bus, outbox, watch, registry)
        self.nodes.append(node)
        return node

    def subscribed(self, node: Node, topic: str = TOPIC) -> bool:
        return node.name in self.hub.subscribers.get(topic, {})

    async def stored(self, doc: str = DOC, room: str = ROOM) -> StoredDoc:
        return await DocStore(self.engine).load(room, doc)

    async def kill(self, node: Node) -> None:
        """The node's process dies: nothing more leaves it, its heartbeat stops (the hub
        forgets it), and what its write-behind still held is never written."""
        node.alive = False
        node.bus.losing = True
        await node.bus.close()
        await self._stop(node, grace_s=0)

    async def _stop(self, node: Node, grace_s: float) -> None:
        await node.watch.close()
        await node.registry.close(grace_s)
        await node.outbox.close(timeout=1)
        await node.bus.close()
        await node.engine.dispose()

    async def close(self) -> None:
        for node in self.nodes:
            if node.alive:
                await self._stop(node, grace_s=5)
        await self.engine.dispose()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return migrated_sqlite(tmp_path)


@pytest.fixture
async def cluster(db_url: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    c = Cluster(db_url, tmp_path)
    try:
        yield c
    finally:
        await c.close()
