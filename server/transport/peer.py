"""A peer: one client socket, with its send queue — theory of operation.

States (illegal transitions raise, they never guess)::

    CONNECTING ──authorise──▶ AUTHORISED ──join──▶ JOINED ──close──▶ CLOSING ──▶ CLOSED
         └───────────────────────┴──────────────────────┴──close──▶ CLOSING

Sending never awaits the socket. ``send`` hands the frame to the transport's direct path
when it can (``Transport.send_now``: nothing queued before it, the socket not paused by
back-pressure; written with the socket's other frames of the loop turn, see
transport/protocol.py); otherwise it puts the frame on a bounded queue that a writer task drains,
started only when needed. So broadcasting to a room is a loop of writes, and a slow
laptop on a weak link cannot slow its room: once its queue is full it is closed with
1013 and resyncs on reconnect (the client is a replica; nothing is lost).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from typing import Protocol

from server import metrics
from server.transport.codes import DISCARD_QUEUE, Close
from server.types import RoomAccess, UserId

log = logging.getLogger(__name__)


class Transport(Protocol):
    def send_now(self, data: bytes) -> bool:
        """Write at once if possible (no await); False: use ``send``."""

    async def send(self, data: bytes) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


class PeerState(enum.Enum):
    CONNECTING = "connecting"
    AUTHORISED = "authorised"
    JOINED = "joined"
    CLOSING = "closing"
    CLOSED = "closed"


_ALLOWED: dict[PeerState, frozenset[PeerState]] = {
    PeerState.CONNECTING: frozenset({PeerState.AUTHORISED, PeerState.CLOSING}),
    PeerState.AUTHORISED: frozenset({PeerState.JOINED, PeerState.CLOSING}),
    PeerState.JOINED: frozenset({PeerState.CLOSING}),
    PeerState.CLOSING: frozenset({PeerState.CLOSED}),
    PeerState.CLOSED: frozenset(),
}


#: Shared, always empty: a peer gets a queue of its own only when a frame must wait.
_NO_QUEUE: deque[bytes] = deque(maxlen=0)


class IllegalTransition(RuntimeError):
    pass


class Peer:
    __slots__ = (
        "_accepting",
        "_close",
        "_queue",
        "_wake",
        "_writer",
        "access",
        "close_code",
        "max_queue",
        "state",
        "transport",
        "user_id",
    )

    def __init__(self, transport: Transport, *, max_queue: int) -> None:
        self.transport = transport
        self.max_queue = max_queue
        self.state = PeerState.CONNECTING
        self.user_id: UserId | None = None
        self.access: RoomAccess | None = None
        self.close_code: int | None = None
        # Made when a frame must wait (most idle sockets never need them): a deque and an
        # Event cost ~1.5 KiB per socket, which at 10,000 sockets is 15 MiB.
        self._queue: deque[bytes] = _NO_QUEUE
        self._wake: asyncio.Event | None = None
        self._close: tuple[int, str] | None = None
        self._writer: asyncio.Task[None] | None = None
        #: False once closing: the hot path tests one attribute, not the state enum.
        self._accepting = True

    def __repr__(self) -> str:
        return f"<Peer {self.user_id} {self.state.value}>"

    def _to(self, new: PeerState) -> None:
        if new not in _ALLOWED[self.state]:
            raise IllegalTransition(f"{self.state.value} → {new.value}")
        self.state = new
        self._accepting = new in (PeerState.CONNECTING, PeerState.AUTHORISED, PeerState.JOINED)

    def authorise(self, user_id: UserId, access: RoomAccess) -> None:
        self._to(PeerState.AUTHORISED)
        self.user_id = user_id
        self.access = access

    def regrade(self, access: RoomAccess) -> None:
        """The user's access changed while connected (a revocation): read-write becomes
        read-only at the next frame. Only an open peer changes."""
        if self.open:
            self.access = access

    def joined(self) -> None:
        self._to(PeerState.JOINED)

    @property
    def open(self) -> bool:
        return self.state in (PeerState.AUTHORISED, PeerState.JOINED)

    @property
    def reading(self) -> bool:
        """Frames are still read: not closing. A /collab socket reads while CONNECTING
        (its tokens come in Auth messages, per doc)."""
        return self._accepting

    def _ensure_writer(self) -> None:
        if self._wake is None:
            self._wake = asyncio.Event()
            self._wake.set()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._drain())

    def send(self, frame: bytes) -> None:
        """Send or queue a frame; never blocks. A peer too far behind is closed with 1013."""
        if not self._accepting:
            return
        queue = self._queue
        if not queue and self.state is PeerState.JOINED and self.transport.send_now(frame):
            return
        if len(queue) >= self.max_queue:
            self.close(Close.TRY_LATER, "too slow: reconnect to resync")
            return
        if queue is _NO_QUEUE:
            queue = self._queue = deque()
        queue.append(frame)
        if len(queue) == 1:
            self._ensure_writer()
            assert self._wake is not None
            self._wake.set()

    def close(self, code: int, reason: str) -> None:
        """Close after what is already queued; idempotent."""
        if self.state in (PeerState.CLOSING, PeerState.CLOSED):
            return
        was_joined = self.state is PeerState.JOINED  # read before the move to CLOSING
        self._to(PeerState.CLOSING)
        self.close_code = code
        metrics.closed(code)
        if was_joined and code in DISCARD_QUEUE:
            self._queue.clear()
        self._close = (code, reason)
        self._ensure_writer()
        assert self._wake is not None
        self._wake.set()

    def closed_by_client(self, code: int | None) -> None:
        """The socket is gone (the client closed it, or the network did)."""
        if self.state is not PeerState.CLOSED:
            if self.state is not PeerState.CLOSING:
                self._to(PeerState.CLOSING)
                self.close_code = code
                if code == Close.TOO_BIG:
                    # uvicorn closed it (a frame over the limit) before we saw the frame.
                    metrics.closed(code)
            self._to(PeerState.CLOSED)
        self._queue.clear()
        if self._wake is not None:
            self._wake.set()

    async def wait_closed(self) -> None:
        if self._writer is not None:
            await asyncio.shield(self._writer)

    async def _drain(self) -> None:
        wake = self._wake
        assert wake is not None
        try:
            while True:
                await wake.wait()
                wake.clear()
                while self._queue:
                    frame = self._queue.popleft()
                    await self.transport.send(frame)
                if self.state is PeerState.CLOSED:
                    return
                if self._close is None:
                    return  # drained: the next frame that must wait starts a new writer
                code, reason = self._close
                try:
                    await self.transport.close(code, reason)
                finally:
                    if self.state is not PeerState.CLOSED:
                        self._to(PeerState.CLOSED)
                return
        except Exception as exc:  # the socket went away under us
            log.debug("writer stopped: %s", type(exc).__name__)
            if self.state is not PeerState.CLOSED:
                if self.state is not PeerState.CLOSING:
                    self._to(PeerState.CLOSING)
                self._to(PeerState.CLOSED)
            self._queue.clear()
