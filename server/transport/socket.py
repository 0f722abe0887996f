"""A client WebSocket as the endpoints see it, made once by the edge.

``ClientSocket`` is the one typed object handed from the ASGI edge to an endpoint: the
path parameters, what the handshake said (Origin, Host, the ``token`` query parameter),
and the three ways out — ``send_now`` (the direct path of ``transport/protocol.py``, no
await: the protocol's own bound method, one call per socket of a fan-out), ``send`` (the
server's own ASGI ``send``, skipping the framework's per-message wrappers) and
``close``. It is the ``Transport`` a :class:`~server.transport.peer.Peer` writes to.

``frames`` is the one place a client's messages are read, for every endpoint: it yields
binary frames in order and stops — after closing the socket with the contract's code —
on a text frame (4400), on sustained abuse of the frame rate (1008), or when the client
is gone. Oversized frames never reach it: uvicorn closes them with 1009 (``ws_max_size``).

A socket over its frame rate is slowed, not closed (``limits.FramePacer``, issue 15):
the reader waits before its next ``receive``. uvicorn's protocol pauses the transport
after queueing each message and resumes it only when the app has taken them all, so
while the reader waits nothing more is read from the kernel: the socket's buffers fill
and TCP blocks the sender. What the server holds for a paused socket is bounded by one
read of the transport (the messages parsed from it) and one partial frame.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from starlette.responses import PlainTextResponse
from starlette.types import Send
from starlette.websockets import WebSocket

from server import metrics
from server.transport.codes import Close
from server.transport.limits import FramePacer

if TYPE_CHECKING:
    from server.transport.peer import Peer
    from server.transport.protocol import AtelierWebSocketProtocol

log = logging.getLogger(__name__)


def _no_direct_path(data: bytes) -> bool:
    return False


class ClientSocket:
    __slots__ = ("_direct", "_node_header", "_send", "params", "send_now", "ws")

    #: Write one binary frame without an await if nothing stands in the way, else
    #: return False (the caller uses ``send``). The protocol's own method when there is
    #: a direct path: one call per socket of a fan-out, not two.
    send_now: Callable[[bytes], bool]

    def __init__(
        self,
        ws: WebSocket,
        params: dict[str, str],
        send: Send,
        *,
        node_header: tuple[bytes, bytes] | None = None,
        direct: AtelierWebSocketProtocol | None = None,
    ) -> None:
        self.ws = ws
        self.params = params
        self._send = send  # the server's own send: no per-frame framework layers
        self._direct = direct
        self._node_header = node_header
        self.send_now = direct.send_now if direct is not None else _no_direct_path

    # --- the handshake ---

    @property
    def origin(self) -> str | None:
        return self.ws.headers.get("origin")

    @property
    def host(self) -> str:
        return self.ws.headers.get("host", "")

    @property
    def token(self) -> str | None:
        return self.ws.query_params.get("token")

    @property
    def direct(self) -> bool:
        """True when frames can be written without an await (served by ``atelier serve``)."""
        return self._direct is not None

    async def accept(self) -> None:
        """Accept, naming this node in the handshake (``X-Atelier-Node``)."""
        header = self._node_header
        await self.ws.accept(headers=[header] if header else None)

    async def deny(self, status: int, body: str, headers: dict[str, str]) -> None:
        """Refuse before the handshake, with an HTTP response (the ASGI WebSocket
        Denial Response extension; uvicorn has it). Without it, a bare close: the server
        answers 403."""
        header = self._node_header
        if header is not None:
            headers = {**headers, header[0].decode("latin-1"): header[1].decode("latin-1")}
        try:
            await self.ws.send_denial_response(PlainTextResponse(body, status, headers))
        except RuntimeError:
            await self.ws.close(Close.TRY_LATER)

    def forget_handshake(self) -> None:
        """Drop the handshake's headers once the socket is authorised.

        Nothing reads them again, and a socket lives for hours: ~1.3 KiB per idle socket
        (the raw header list in the scope and Starlette's cached view of it).
        """
        self.ws.scope["headers"] = []
        self.ws.__dict__.pop("_headers", None)

    # --- Transport (what a Peer writes to) ---

    async def send(self, data: bytes) -> None:
        await self._send({"type": "websocket.send", "bytes": data})

    async def close(self, code: int, reason: str) -> None:
        await self.ws.close(code, reason)


async def frames(
    sock: ClientSocket, peer: Peer, bucket: FramePacer, what: str
) -> AsyncIterator[bytes]:
    """The client's binary frames, paced by the per-socket frame limit (``bucket``)."""
    receive = sock.ws.receive
    clock = time.monotonic
    slowed = False
    while peer.reading:
        wait = bucket.delay(clock())
        if wait:
            if bucket.abusive:
                metrics.refused("rate_abuse_after")
                log.warning(
                    "closed %s on %s: over the frame rate for %.0f s",
                    peer.user_id,
                    what,
                    bucket.held_s,
                )
                peer.close(Close.POLICY, "frame rate exceeded for too long")
                return
            if not slowed:
                slowed = True
                metrics.SOCKETS_SLOWED.inc()
            await asyncio.sleep(wait)  # not reading: TCP holds the sender back
            if not peer.reading:
                return
        message = await receive()
        if message["type"] == "websocket.disconnect":
            peer.closed_by_client(message.get("code"))
            return
        data = message.get("bytes")
        if data is None:
            peer.close(Close.BAD_FRAME, "text frames are not part of the protocol")
            return
        yield data
