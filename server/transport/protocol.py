"""uvicorn's websockets-sansio protocol, tuned for many long-lived, mostly idle sockets.

Four changes, each measured (bench/memory.py, py-spy on bench/run_load.py):

- **A synchronous send for the broadcast path.** Through ASGI, every frame to every
  socket is an awaited ``send`` — a task switch per socket per update, most of the
  server's time in a classroom. The ASGI ``send`` uvicorn hands the app is this
  protocol's bound method, so the edge (``transport/edge.py``) finds the protocol behind
  a socket without any scope key, and a peer can send a frame without an await:
  ``send_now`` takes it, no task, no await. It refuses (returns False) whenever the
  ordinary path must be used — before the handshake completes, once closing, and while
  the transport is paused for back-pressure — so flow control stays uvicorn's own.
- **Framed once, written once per turn** (issue 15; py-spy on the heavy scenario: the
  send syscall, one per frame per socket, was 40 % of the event loop, and websockets'
  ``send_binary`` → ``send_frame`` → ``serialize`` → ``data_to_send`` another 12 %).
  A server's frames are unmasked, so without an extension (``ws_deflate`` off, the
  default) a payload's frame is the same bytes for every socket: ``send_now`` makes the
  header once per fan-out (``binary_frame``, a one-entry memo keyed by the payload
  object) and appends the frame to the socket's pending list. The loop's ``_Flusher``
  writes every socket's pending frames as one ``transport.write`` at the start of the
  next turn (one ``call_soon`` a turn for the whole node), before the tasks woken by
  that turn's reads: a frame waits for the rest of its turn, never more. When the loop
  is busy, turns are long and one write carries several frames: the busier the node,
  the fewer syscalls per frame. Order per socket holds: the ordinary path (``send``: a
  queued frame, a close) writes what is pending first; once a close frame is out,
  pending data is dropped (it may not follow a close; the client resyncs). With an
  extension each socket's frames go through websockets as before, then the same
  pending list.
- **Less memory per idle socket.** uvicorn keeps, for the life of each socket, an
  ``asyncio.Queue`` (three deques of ~760 bytes each) with at most one item in it (reads
  pause after each message), an ``asyncio.Event`` (another deque), and the handshake's
  request and response with their headers. The receive queue and the event are replaced
  by list-based equivalents with the same methods, and the handshake objects are dropped
  once the socket is accepted.

- **A keepalive that waits for a paused reader.** While ``frames()`` slows a socket over
  its frame rate, the transport stays paused and the client's pong queues behind the
  frames it already sent: uvicorn would close a busy, live socket with 1011 "keepalive
  ping timeout". The pong deadline is pushed back while frames are still coming or the
  reading is paused by the server; a client that sends nothing and answers no ping is
  still closed in time.

And one addition, on the HTTP side (:class:`AtelierHttpProtocol`, on uvicorn's httptools
protocol: llhttp parses a request head in C, h11 in Python): uvicorn gives a
connection no time limit to send its request headers (its keep-alive timer is cancelled
by the first byte), so a client trickling a header a minute holds a connection for ever.
A connection must send a whole request head within ``preauth_timeout_s`` of arriving,
or of the previous response; a WebSocket upgrade is a request like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.utils import is_ssl
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from server import metrics
from server.metrics.hot import WRITES

log = logging.getLogger(__name__)
_WS_LOG = logging.getLogger("websockets.server")

#: The attributes of uvicorn's protocol this module relies on (uvicorn is pinned to a
#: tested minor range in pyproject.toml; tests/unit/test_transport_protocol.py checks
#: that they still exist, so an upgrade that renames one fails a test, not a classroom).
UVICORN_ATTRIBUTES = (
    "queue",
    "writable",
    "handshake_complete",
    "close_sent",
    "disconnected",
    "transport",
    "conn",
    "request",
    "response",
    "read_paused",
    "ping_timeout",
    "pong_timer",
    "ping_sent_at",
    "connections",
    "server",
    "client",
    "scheme",
)


class _Queue:
    """What uvicorn uses of asyncio.Queue: put_nowait, empty, and one awaiting getter."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)

    async def get(self) -> Any:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)


class _Event:
    """What uvicorn uses of asyncio.Event, without a deque per socket."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, None
        for fut in waiters or ():
            if not fut.done():
                fut.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> None:
        if self._set:
            return
        fut = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(fut)
        await fut


def binary_frame(data: bytes) -> bytes:
    """``data`` as one final, unmasked binary frame (RFC 6455 section 5.2): the bytes
    websockets' ``send_binary`` writes for a server socket without extensions."""
    n = len(data)
    if n < 126:
        return bytes((0x82, n)) + data
    if n < 0x10000:
        return b"\x82\x7e" + n.to_bytes(2, "big") + data
    return b"\x82\x7f" + n.to_bytes(8, "big") + data


#: A socket's frames of one turn are written at once past this many bytes: the
#: transport's default high-water mark (64 KiB), where flow control starts.
PENDING_MAX_BYTES = 64 * 1024

#: The last payload framed and its frame: a fan-out hands every socket the same bytes
#: object, so its header is made once, and every socket writes the same frame.
_FRAMED: list[bytes] = [b"", binary_frame(b"")]


class _Flusher:
    """The sockets given frames in this loop turn, written once each at the next turn.

    One ``call_soon`` a turn for the whole node. It runs before the tasks woken by the
    next poll of the sockets, so a frame waits for the rest of its turn, never longer.
    """

    __slots__ = ("dirty", "loop", "scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.dirty: list[AtelierWebSocketProtocol] = []
        self.scheduled = False

    def add(self, protocol: AtelierWebSocketProtocol) -> None:
        self.dirty.append(protocol)
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self.run)

    def run(self) -> None:
        self.scheduled = False
        dirty, self.dirty = self.dirty, []
        for protocol in dirty:
            try:
                protocol.flush()
            except Exception:  # one broken socket must not keep the others' frames
                log.debug("flush failed", exc_info=True)


_flusher: _Flusher | None = None


def _flusher_for(loop: asyncio.AbstractEventLoop) -> _Flusher:
    """The loop's flusher (a server has one loop; tests start one loop after another)."""
    global _flusher
    if _flusher is None or _flusher.loop is not loop:
        _flusher = _Flusher(loop)
    return _flusher


def address(transport: asyncio.BaseTransport, name: str) -> tuple[str, int] | None:
    """A TCP socket's ``sockname`` or ``peername`` as uvicorn's scope has it; None for
    a Unix socket (as uvicorn's ``get_local_addr``/``get_remote_addr``)."""
    info = transport.get_extra_info(name)
    if isinstance(info, (list, tuple)) and len(info) >= 2:
        return (str(info[0]), int(info[1]))
    return None


class AtelierWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # websockets' own "connection open" line says nothing the access line beside it
        # ("WebSocket /yjs/… [accepted]") does not, and cost a twentieth of a connect in a
        # storm: its logger is the library's, at WARNING (server/logs.py).
        self.conn.logger = _WS_LOG
        self.queue = _Queue()  # type: ignore[assignment]
        writable = _Event()
        writable.set()
        self.writable = writable  # type: ignore[assignment]
        self._data_since_ping = False
        #: Frames taken by send_now in this loop turn, written by the loop's flusher.
        self._pending: list[bytes] | None = None
        self._pending_bytes = 0
        self._flusher = _flusher_for(self.loop)
        #: No extension on this socket: a frame's bytes are the same for every socket.
        self._plain = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        upgraded = transport.get_protocol()
        if not isinstance(upgraded, AtelierHttpProtocol):
            super().connection_made(transport)
            return
        # An upgrade: the HTTP protocol this one replaces already knows the addresses.
        self.connections.add(self)
        self.transport = transport  # type: ignore[assignment]
        self.server = upgraded.server
        self.client = upgraded.client
        self.scheme = "wss" if upgraded.scheme == "https" else "ws"

    def connection_lost(self, exc: Exception | None) -> None:
        self._pending = None
        super().connection_lost(exc)

    def shutdown(self) -> None:
        self.flush()  # the server stops: what was taken goes out before the 1012 close
        super().shutdown()

    def data_received(self, data: bytes) -> None:
        self._data_since_ping = True
        super().data_received(data)

    def send_keepalive_ping(self) -> None:
        self._data_since_ping = False
        super().send_keepalive_ping()

    def keepalive_timeout(self) -> None:
        if (self.read_paused or self._data_since_ping) and not self.close_sent:
            # Alive, only held back (or its pong is behind the frames it sent): wait again.
            self._data_since_ping = False
            self.pong_timer = self.loop.call_later(
                self.ping_timeout or 20.0, self.keepalive_timeout
            )
            return
        super().keepalive_timeout()

    async def send(self, message):  # type: ignore[no-untyped-def]
        # The ordinary path (a queued frame, a close, the accept) writes at once: what
        # send_now took before it goes first, so a socket's frames keep their order.
        if self._pending is not None:
            self.flush()
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            # The handshake is done: its request and response (headers and all) are
            # never read again. The request also stays referenced by the sans-I/O
            # parser's generator frame for the socket's whole life, so empty its headers
            # rather than only dropping our reference.
            request = self.request
            if request is not None:
                with contextlib.suppress(Exception):
                    request.headers.clear()
            self.request = None  # type: ignore[assignment]
            self.response = None  # type: ignore[assignment]
            self._plain = not self.conn.extensions

    def send_now(self, data: bytes) -> bool:
        """Take one binary frame for this loop turn's write if nothing stands in the way;
        else return False (the caller uses ``send``, which writes what is pending first).
        """
        if (
            not self.handshake_complete
            or self.close_sent
            or self.disconnected
            or not self.writable.is_set()
            or self.transport.is_closing()
        ):
            return False
        if self._plain:
            framed = _FRAMED
            if framed[0] is data:  # the same bytes as the previous socket's: a fan-out
                wire = framed[1]
            else:
                wire = binary_frame(data)
                framed[0] = data  # held, so that ``is`` cannot be fooled by a reused id
                framed[1] = wire
        else:  # an extension (permessage-deflate) transforms each socket's frames
            conn = self.conn
            conn.send_binary(data)
            wire = b"".join(conn.data_to_send())
        pending = self._pending
        if pending is None:
            self._pending = [wire]
            self._pending_bytes = len(wire)
            self._flusher.add(self)
        else:
            pending.append(wire)
            self._pending_bytes += len(wire)
        if self._pending_bytes >= PENDING_MAX_BYTES:
            # A long turn (a burst from the bus, a big paste): written now, so that the
            # transport's flow control (pause_writing → the peer's bounded queue → 1013)
            # sees it as it did frame by frame.
            self.flush()
        return True

    def flush(self) -> None:
        """Write the frames taken by ``send_now`` in this loop turn, as one write.

        Once a close frame is out (ours, or uvicorn's answer to the client's), data may
        no longer follow it: what is still pending is dropped, as a frame sent a moment
        later would have been refused. The client is a replica and resyncs on reconnect.
        """
        pending = self._pending
        if pending is None:
            return
        self._pending = None
        if self.close_sent or self.disconnected or self.transport.is_closing():
            return
        WRITES.writes += 1
        WRITES.frames += len(pending)  # counted here, once a write, not once a frame
        self.transport.write(pending[0] if len(pending) == 1 else b"".join(pending))


class AtelierHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a time limit on reading each request head.

    httptools (llhttp, in C) rather than h11 (pure Python): the request head of a
    WebSocket upgrade is parsed in a fraction of the time, which is most of what a
    connection storm costs before the application runs (py-spy, bench/storm.py)."""

    #: Seconds a request head may take (``Settings.preauth_timeout_s``; set by the CLI).
    head_timeout_s = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        # uvicorn's own, but with the addresses from the transport's cached names: its
        # helpers ask for the "socket" extra, which uvloop builds on first use (25 µs a
        # connection, 5 % of a storm's loop under py-spy; 4 µs this way).
        self.connections.add(self)
        self.transport = transport
        self.flow = FlowControl(transport)
        self.server = address(transport, "sockname")
        self.client = address(transport, "peername")
        self.scheme = "https" if is_ssl(transport) else "http"
        #: Between the first byte of a request and the end of its head.
        self._in_head = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_late)

    def _head_late(self) -> None:
        self._head_timer = None
        transport = self.transport
        if transport.is_closing() or transport.get_protocol() is not self:
            return  # closed, or upgraded to a WebSocket: the head came in time
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            return  # a request is being served (its body, its response)
        if self._in_head:  # part of a head: a slow client, not an idle one
            metrics.refused("preauth_timeout")
            log.warning(
                "closed a connection: request head not complete within %g s", self.head_timeout_s
            )
        transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request on this keep-alive connection

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)
