"""Room channels in one process, so that each test reads like a story::

    room = channel()                      # a LiveRoom on node A, loaded
    lea = room.arrive("s-01", "Léa")      # a socket, attached, hello sent, present
    one, two = await room.post("un"), await room.post("deux")   # stored in the ChatStore
    room.live.accept(two)
    room.live.accept(one)
    assert lea.seen() == [(1, 1), (2, 1)]

A :class:`Channel` is a real ``LiveRoom`` whose ``RoomPort`` keeps what the room
publishes (``published``) and reads the real ChatStore (SQLite) for ``since``. A
:class:`Screen` is one socket: a real ``LiveConn`` on a ``Peer`` whose transport keeps
the frames it was given, decoded.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest

from server.live.room import LiveConn, LiveRoom, RoomPort
from server.persistence.chat import ChatStore
from server.persistence.db import create_engine
from server.types import DocAccess, RoomAccess
from tests.support.inproc import Recorder, joined_peer, migrated_sqlite

ROOM = "2nde-a"

STUDENT = RoomAccess(docs=DocAccess.WRITE, chat=True, bound_by_locks=True)
TEACHER = RoomAccess(docs=DocAccess.WRITE, chat=True, moderate=True, lock=True)
PARENT = RoomAccess(docs=DocAccess.READ)  # room events only: no chat, no presence

_conn_ids = itertools.count(1)


class Screen:
    """What one socket of the room channel was sent."""

    def __init__(self, user: str, name: str, role: str, access: RoomAccess) -> None:
        self.transport = Recorder()
        self.peer = joined_peer(self.transport, user, access)
        self.conn = LiveConn(self.peer, f"c{next(_conn_ids)}", user, name, role, access)

    @property
    def frames(self) -> list[dict[str, Any]]:
        return [msgpack.unpackb(f, raw=False) for f in self.transport.frames]

    def of_type(self, t: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["t"] == t]

    def seen(self) -> list[tuple[int, int]]:
        """(seq, version) of each message frame, in the order sent."""
        return [(f["message"]["seq"], f["message"]["version"]) for f in self.of_type("message")]

    def texts(self) -> list[str]:
        return [f["message"]["text"] for f in self.of_type("message")]

    def diffs(self) -> list[dict[str, Any]]:
        """The presence diffs, without their type."""
        return [{k: v for k, v in f.items() if k != "t"} for f in self.of_type("presence_diff")]


class Channel:
    """One room's channel on one node, with a port that keeps what it publishes."""

    def __init__(
        self, chat: ChatStore, node: str = "A", *, per_minute: float = 20.0, burst: float = 5.0
    ) -> None:
        self.chat = chat
        self.published: list[tuple[str, dict[str, Any]]] = []
        port = RoomPort(
            node_id=node,
            publish=lambda topic, kind, body: self.published.append((kind, body)),
            since=self._since,
            chat_per_minute=per_minute,
            chat_burst=burst,
        )
        self.live = LiveRoom(port, ROOM)

    async def _since(self, room_id: str, seq: int) -> list[dict[str, Any]]:
        return [m.to_wire() for m in await self.chat.since(room_id, seq)]

    def socket(
        self,
        user: str = "s-01",
        name: str = "Léa",
        role: str = "student",
        access: RoomAccess = STUDENT,
        *,
        high: int | None = 0,
    ) -> Screen:
        """A socket attached to the room; with ``high``, its hello (history up to
        ``high``) is sent; with None, it is still reading its history."""
        screen = Screen(user, name, role, access)
        self.live.attach(screen.conn)
        if high is not None:
            screen.conn.start(high)
        return screen

    def arrive(
        self,
        user: str = "s-01",
        name: str = "Léa",
        role: str = "student",
        access: RoomAccess = STUDENT,
    ) -> Screen:
        """What the endpoint does: attach, send the hello, join the presence."""
        screen = self.socket(user, name, role, access)
        self.live.join_presence(screen.conn)
        return screen

    def leave(self, screen: Screen) -> None:
        self.live.detach(screen.conn)

    async def post(self, text: str, user: str = "s-01", name: str = "Léa") -> dict[str, Any]:
        """A message stored in the database (as a node does before relaying it)."""
        return (await self.chat.post(ROOM, user, name, "student", text)).to_wire()

    async def edit(self, message: dict[str, Any], text: str) -> dict[str, Any]:
        changed = await self.chat.edit(ROOM, message["id"], text)
        assert changed is not None
        return changed.to_wire()

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.published]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return migrated_sqlite(tmp_path)


@pytest.fixture
async def chat(db_url: str) -> AsyncIterator[ChatStore]:
    engine = create_engine(db_url)
    yield ChatStore(engine)
    await engine.dispose()


@pytest.fixture
async def channel(chat: ChatStore) -> AsyncIterator[Callable[..., Channel]]:
    """``channel(loaded=True, **port options)``: a room channel on node A."""
    made: list[Channel] = []

    def make(*, loaded: bool = True, **options: Any) -> Channel:
        ch = Channel(chat, **options)
        if loaded:
            ch.live.loaded(0, set())
        made.append(ch)
        return ch

    yield make
    for ch in made:
        await ch.live.close()
