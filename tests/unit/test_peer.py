"""transport/peer.py: what a close does with the frames still queued for a slow client."""

from __future__ import annotations

import asyncio

from server.transport.codes import Close
from server.transport.peer import Peer, PeerState
from server.types import DocAccess, RoomAccess, UserId


class SlowSocket:
    """A client whose socket is paused by back-pressure: nothing can be written at once,
    and each awaited write lets the loop run (as uvicorn's drain does)."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed: tuple[int, str] | None = None

    def send_now(self, data: bytes) -> bool:
        return False

    async def send(self, data: bytes) -> None:
        await asyncio.sleep(0)
        self.sent.append(data)

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


def _joined(socket: SlowSocket) -> Peer:
    peer = Peer(socket, max_queue=100)
    peer.authorise(UserId("s-01"), RoomAccess(docs=DocAccess.WRITE, chat=True))
    peer.joined()
    return peer


async def test_a_close_for_abuse_or_slowness_drops_what_is_queued() -> None:
    socket = SlowSocket()
    peer = _joined(socket)
    for i in range(50):
        peer.send(b"frame %d" % i)
    peer.close(Close.POLICY, "too many frames")
    await asyncio.wait_for(peer.wait_closed(), 2)
    assert socket.closed == (Close.POLICY, "too many frames")
    assert len(socket.sent) < 50  # the queue was dropped, not sent before the close
    assert peer.state is PeerState.CLOSED


async def test_a_normal_close_sends_what_is_queued_first() -> None:
    socket = SlowSocket()
    peer = _joined(socket)
    for i in range(50):
        peer.send(b"frame %d" % i)
    peer.close(Close.FORBIDDEN, "access removed")
    await asyncio.wait_for(peer.wait_closed(), 2)
    assert socket.sent == [b"frame %d" % i for i in range(50)]
    assert socket.closed == (Close.FORBIDDEN, "access removed")
