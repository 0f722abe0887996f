"""Room channels across nodes (live/hub.py): two LiveHubs on one MemoryHub — as two
nodes on one Redis — and one SQLite database exchange chat, mutes, presence and room
events; a dead node's presence is purged by the liveness loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.bus.memory import InMemoryBus, MemoryHub
from server.bus.outbox import Outbox
from server.bus.watch import NodeWatch
from server.config import Settings
from server.live.hub import LiveHub
from server.live.room import LiveRoom
from server.persistence.chat import ChatStore
from server.persistence.db import create_engine
from server.types import NodeId, RoomAccess
from tests.live.conftest import PARENT, ROOM, STUDENT, TEACHER, Screen
from tests.support.inproc import until


class Node:
    """One node's room channels: bus, outbox, liveness watch, ChatStore, LiveHub."""

    def __init__(self, name: str, hub: MemoryHub, url: str, folder: Path) -> None:
        self.name = name
        self.settings = Settings(
            data_dir=folder, database_url=url, node_id=name, doc_unload_delay_s=0.05
        )
        self.engine = create_engine(url)
        self.chat = ChatStore(self.engine)
        self.bus = InMemoryBus(NodeId(name), hub)
        self.outbox = Outbox(self.bus)
        self.watch = NodeWatch(self.bus, interval_s=3600)  # the tests call check()
        self.live = LiveHub(self.settings, self.chat, self.outbox, self.watch)
        self.running = False

    async def start(self) -> Node:
        await self.bus.start()
        self.outbox.start()
        await self.live.start()
        self.running = True
        return self

    async def open(self) -> LiveRoom:
        return await self.live.open(ROOM)

    async def arrive(
        self, user: str, name: str, role: str = "student", access: RoomAccess = STUDENT
    ) -> Screen:
        """What the endpoint does: open, attach, read the history, hello, presence."""
        room = await self.open()
        screen = Screen(user, name, role, access)
        room.attach(screen.conn)
        history = await self.chat.recent(ROOM, 50) if access.chat else []
        screen.conn.start(max((m.seq for m in history), default=0))
        room.join_presence(screen.conn)
        return screen

    async def leave(self, screen: Screen) -> None:
        room = await self.open()
        room.detach(screen.conn)
        self.live.release(room)

    async def post(self, screen: Screen, text: str) -> int:
        """What the endpoint does: store first, then deliver and relay."""
        conn = screen.conn
        message = await self.chat.post(ROOM, conn.user_id, conn.user_name, conn.user_role, text)
        (await self.open()).posted(message.to_wire())
        return message.id

    async def edit(self, message_id: int, text: str) -> None:
        changed = await self.chat.edit(ROOM, message_id, text)
        assert changed is not None
        (await self.open()).posted(changed.to_wire())

    async def mute(self, user: str, by: str) -> None:
        await self.chat.set_muted(ROOM, user, True, by)
        (await self.open()).set_muted(user, True, by, relay=True)

    async def stop(self) -> None:
        if not self.running:
            return
        self.running = False
        await self.watch.close()
        await self.live.close()
        await self.outbox.close(timeout=1)
        await self.bus.close()
        await self.engine.dispose()

    async def die(self) -> None:
        """The process dies: its heartbeat stops (the hub forgets it); nothing is said."""
        await self.bus.close()
        await self.stop()


@pytest.fixture
async def nodes(db_url: str, tmp_path: Path) -> AsyncIterator[tuple[Node, Node]]:
    hub = MemoryHub()
    a = await Node("A", hub, db_url, tmp_path).start()
    b = await Node("B", hub, db_url, tmp_path).start()
    try:
        yield a, b
    finally:
        await a.stop()
        await b.stop()


async def test_chat_posted_on_either_node_reaches_both_in_seq_order(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    lea = await a.arrive("s-01", "Léa")
    tom = await b.arrive("s-02", "Tom")

    first = await a.post(lea, "bonjour")
    assert lea.seen() == [(1, 1)]  # at once on its own node
    await b.post(tom, "salut")
    await a.edit(first, "bonjour à tous")

    for screen in (lea, tom):
        await until(lambda s=screen: len(s.seen()) == 3, "every message on every node")
        assert screen.seen() == [(1, 1), (2, 1), (1, 2)]
        assert screen.texts() == ["bonjour", "salut", "bonjour à tous"]


async def test_a_mute_on_a_reaches_b(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    await a.arrive("t-01", "Mme Durand", "teacher", TEACHER)
    tom = await b.arrive("s-02", "Tom")
    parent = await b.arrive("p-01", "M. Martin", "parent", PARENT)
    room_b = await b.open()

    await a.mute("s-02", "t-01")

    await until(lambda: "s-02" in room_b.muted, "the mute reaches B")
    assert room_b.gate(tom.conn, "je peux ?") == ("muted", None)
    assert tom.of_type("muted") == [{"t": "muted", "user": "s-02", "muted": True, "by": "t-01"}]
    a.live.doc_locked(ROOM, "rapport", True, "t-01")  # a later room event, for everyone
    await until(lambda: parent.frames, "the room event reaches the parent on B")
    assert [f["t"] for f in parent.frames] == ["event"]  # no mute, no presence, no chat
    assert parent.frames[0] == {
        "t": "event",
        "kind": "doc_locked",
        "doc": "rapport",
        "locked": True,
        "by": "t-01",
    }


async def test_presence_travels_both_ways_and_a_late_node_gets_the_full_state(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    lea = await a.arrive("s-01", "Léa")
    lea_conn = lea.conn.conn_id
    room_a = await a.open()

    room_b = await b.open()  # opened after Léa arrived: asks everyone (p_sync)
    await until(lambda: room_b.presence.get(lea_conn) is not None, "Léa's meta on B")
    tom = await b.arrive("s-02", "Tom")
    await until(lambda: any("s-02" in d["joins"] for d in lea.diffs()), "Tom's join on A")
    room_a.update_presence(lea.conn, "rapport", True)
    await until(lambda: any("s-01" in d["joins"] for d in tom.diffs()), "Léa's change on B")
    assert tom.diffs()[-1]["leaves"]["s-01"]["metas"][0]["doc"] is None
    assert tom.diffs()[-1]["joins"]["s-01"]["metas"][0]["doc"] == "rapport"

    await b.leave(tom)
    await until(lambda: "s-02" in lea.diffs()[-1]["leaves"], "Tom's leave on A")
    assert room_a.presence.nodes() == {"A"}


async def test_a_dead_node_s_presence_is_purged_by_the_liveness_check(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    lea = await a.arrive("s-01", "Léa")
    tom = await b.arrive("s-02", "Tom")
    room_b = await b.open()
    await until(lambda: room_b.presence.get(lea.conn.conn_id) is not None, "Léa's meta on B")

    await a.die()
    assert await b.watch.check() == {"A"}

    assert "s-01" in tom.diffs()[-1]["leaves"]
    assert room_b.presence.nodes() == {"B"}
    assert await b.watch.check() == set()


async def test_a_room_left_by_everyone_unloads_and_loads_where_the_room_stands(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    lea = await a.arrive("s-01", "Léa")
    await a.post(lea, "un")
    await a.post(lea, "deux")
    await a.mute("s-03", "t-01")
    room = await a.open()

    await a.leave(lea)
    await until(lambda: a.live.rooms.get(ROOM) is None, "the room unloads")
    tom = await b.arrive("s-02", "Tom")
    await b.post(tom, "trois")  # while A holds no channel of the room

    again = await a.open()
    assert again is not room
    assert again.next_seq == 4
    assert again.muted == {"s-03"}
