"""In-process pieces for the room and channel tests: no server process, no socket.

- :class:`Recorder` is a real ``Transport`` (server/transport/peer.py): it keeps every
  frame it is given, and may hand each one to a client model as it arrives.
- :func:`joined_peer` is a ``Peer`` on a Recorder, authorised and joined, as the
  endpoints leave it before a socket talks to a doc or a room.
- :func:`until` waits for a condition, always with a deadline.
- :func:`migrated_sqlite` makes the SQLite database a cluster of in-process nodes shares.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from server.persistence.db import run_migrations
from server.transport.peer import Peer
from server.types import RoomAccess, UserId


class Recorder:
    """A transport that keeps what it was given (``on_frame`` sees each frame at once)."""

    def __init__(self, on_frame: Callable[[bytes], None] | None = None) -> None:
        self.frames: list[bytes] = []
        self.closed: tuple[int, str] | None = None
        self.on_frame = on_frame

    def send_now(self, data: bytes) -> bool:
        self.frames.append(data)
        if self.on_frame is not None:
            self.on_frame(data)
        return True

    async def send(self, data: bytes) -> None:
        self.send_now(data)

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


def joined_peer(transport: Recorder, user: str, access: RoomAccess) -> Peer:
    peer = Peer(transport, max_queue=10_000)
    peer.authorise(UserId(user), access)
    peer.joined()
    return peer


async def until(predicate: Callable[[], object], what: str = "", timeout: float = 3.0) -> None:
    """Wait until ``predicate()`` is true; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        await asyncio.sleep(0.005)


def migrated_sqlite(folder: Path) -> str:
    """A migrated, empty SQLite database in ``folder`` (call outside the event loop)."""
    url = f"sqlite+aiosqlite:///{folder / 'atelier.db'}"
    run_migrations(url)
    return url
