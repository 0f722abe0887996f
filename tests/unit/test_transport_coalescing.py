"""The direct send path's framing and per-turn coalescing (server/transport/protocol.py).

``send_now`` frames a payload itself (once per fan-out: the same bytes for every
socket) and hands it to the loop's flusher, which writes each socket's frames of a loop
turn as one write. The bytes must be exactly what websockets would have sent, and a
real client must get every frame, in order, whichever path each one took.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import uvicorn
import websockets
from starlette.applications import Starlette
from websockets.protocol import State
from websockets.server import ServerProtocol

from server.metrics.hot import WRITES
from server.transport.edge import Edge, SocketRoute
from server.transport.protocol import AtelierWebSocketProtocol, binary_frame
from server.transport.socket import ClientSocket

WAIT_S = 5.0

# Every length class of RFC 6455's payload length: 7 bits, 16 bits, 64 bits.
LENGTHS = [0, 1, 125, 126, 127, 1000, 65535, 65536, 70000]


@pytest.mark.parametrize("length", LENGTHS)
def test_a_frame_made_once_is_the_frame_websockets_sends(length: int) -> None:
    data = bytes(i % 251 for i in range(length))
    conn = ServerProtocol(state=State.OPEN)
    conn.send_binary(data)
    assert binary_frame(data) == b"".join(conn.data_to_send())


Endpoint = Callable[[ClientSocket], Awaitable[None]]


@contextlib.asynccontextmanager
async def serve(endpoint: Endpoint, *, deflate: bool = False) -> AsyncIterator[str]:
    """A real uvicorn on 127.0.0.1 (a free port) with our protocol, one socket route."""

    async def route(sock: ClientSocket, ctx: object) -> None:
        await sock.accept()
        await endpoint(sock)

    app = Starlette()
    app.state.ctx = None
    config = uvicorn.Config(
        Edge(app, "node-t", [SocketRoute("/s/{name}", route)]),
        host="127.0.0.1",
        port=0,
        ws=AtelierWebSocketProtocol,
        ws_per_message_deflate=deflate,
        lifespan="off",
        log_config=None,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(WAIT_S):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/s/a"
    finally:
        server.should_exit = True
        async with asyncio.timeout(WAIT_S):
            await task


def payload(i: int, sizes: tuple[int, ...] = (10, 300, 3000)) -> bytes:
    # Frames of several sizes mixed in one write (the 7- and 16-bit length headers).
    return i.to_bytes(4, "big") + bytes([i % 256]) * sizes[i % len(sizes)]


async def receive_until_closed(client: websockets.ClientConnection) -> list[bytes]:
    got: list[bytes] = []
    with contextlib.suppress(websockets.ConnectionClosedOK):
        while True:
            message = await client.recv()
            assert isinstance(message, bytes)
            got.append(message)
    return got


@pytest.mark.parametrize("deflate", [False, True], ids=["plain", "deflate"])
async def test_frames_of_one_turn_go_in_one_write_in_order_before_the_ordinary_path(
    deflate: bool,
) -> None:
    counted: dict[str, int] = {}

    async def endpoint(sock: ClientSocket) -> None:
        frames0, writes0 = WRITES.frames, WRITES.writes
        # One loop turn: nine frames taken by the direct path, nothing written yet.
        assert all(sock.send_now(payload(i)) for i in range(9))
        # The ordinary (awaited) path writes at once: what is pending must go first.
        await sock.send(payload(9))
        # Later turns: more direct frames, then a close that must follow them.
        assert all(sock.send_now(payload(i)) for i in range(10, 13))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert all(sock.send_now(payload(i)) for i in range(13, 16))
        counted["frames"] = WRITES.frames - frames0
        counted["writes"] = WRITES.writes - writes0
        await sock.close(1000, "done")

    async with serve(endpoint, deflate=deflate) as url:
        async with asyncio.timeout(WAIT_S):
            async with websockets.connect(url, open_timeout=WAIT_S) as client:
                got = await receive_until_closed(client)
                assert client.close_code == 1000
                negotiated = client.response is not None and (
                    "permessage-deflate"
                    in client.response.headers.get("Sec-WebSocket-Extensions", "")
                )

    assert negotiated is deflate
    assert got == [payload(i) for i in range(16)]
    # 15 frames by the direct path in three turns, three writes and not fifteen: the
    # first turn's by the ordinary send, the second by the loop's flusher, the third by
    # the close (after the count was taken: its three frames were not written yet).
    assert counted["frames"] == 12
    assert counted["writes"] == 2


async def test_a_fan_out_to_many_sockets_reaches_each_in_order() -> None:
    """Several sockets get the same payload objects in the same turns (a fan-out): the
    frame is made once and written to each, and every client reads all of it."""
    sockets: list[ClientSocket] = []
    ready = asyncio.Event()
    done = asyncio.Event()
    n_clients, n_frames = 5, 40

    async def endpoint(sock: ClientSocket) -> None:
        sockets.append(sock)
        if len(sockets) == n_clients:
            ready.set()
        await done.wait()

    async with serve(endpoint) as url:
        async with asyncio.timeout(WAIT_S):
            clients = [await websockets.connect(url, open_timeout=WAIT_S) for _ in range(n_clients)]
            await ready.wait()
            for i in range(n_frames):
                data = payload(i)
                for sock in sockets:
                    assert sock.send_now(data)
                if i % 7 == 0:
                    await asyncio.sleep(0)  # turns of different sizes
            results = [[await client.recv() for _ in range(n_frames)] for client in clients]
            done.set()
            for client in clients:
                await client.close()

    expected = [payload(i) for i in range(n_frames)]
    assert all(result == expected for result in results)


async def test_a_turn_past_the_pending_bound_is_written_as_it_goes() -> None:
    """A turn that gives one socket more than PENDING_MAX_BYTES (a burst, a big doc) is
    written as it grows, so the transport's flow control sees it: more than one write,
    every frame still there and in order (the 64-bit length header included)."""
    big = (10, 70000, 300)
    counted: dict[str, int] = {}

    async def endpoint(sock: ClientSocket) -> None:
        writes0 = WRITES.writes
        assert all(sock.send_now(payload(i, big)) for i in range(12))  # ~280 KB, one turn
        counted["writes"] = WRITES.writes - writes0
        await sock.close(1000, "done")

    async with serve(endpoint) as url:
        async with asyncio.timeout(WAIT_S):
            async with websockets.connect(url, open_timeout=WAIT_S, max_size=None) as client:
                got = await receive_until_closed(client)

    assert got == [payload(i, big) for i in range(12)]
    assert counted["writes"] == 4  # each 70 KB frame took its socket past the bound
