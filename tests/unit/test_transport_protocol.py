"""Our uvicorn protocol subclass (server/transport/protocol.py) on a real uvicorn server.

``AtelierWebSocketProtocol`` leans on attributes of uvicorn's internal sans-I/O protocol
(``UVICORN_ATTRIBUTES``), which is why pyproject pins uvicorn to one minor. These tests
are what an upgrade of that pin must pass: an uvicorn server started in the test's own
event loop, the edge in front of a one-route app, and a stock ``websockets`` client. The
endpoint finds the live protocol in uvicorn's own connection set, so the attribute
check runs against an instance uvicorn built, mid-connection, not one we made by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
import websockets
from starlette.applications import Starlette
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from server.transport.edge import Edge, SocketRoute
from server.transport.protocol import (
    UVICORN_ATTRIBUTES,
    AtelierHttpProtocol,
    AtelierWebSocketProtocol,
)
from server.transport.socket import ClientSocket

WAIT_S = 5.0


@dataclass
class Seen:
    """What the echo endpoint observed, for the test to assert on."""

    protocol: AtelierWebSocketProtocol | None = None
    missing_attributes: list[str] = field(default_factory=list)
    asyncio_leftovers: list[str] | None = None
    handshake_held_before_accept: bool = False
    send_now_before_accept: bool | None = None
    direct: bool | None = None
    request_after_accept: Any = "unset"
    response_after_accept: Any = "unset"
    echoed_directly: bool | None = None
    send_now_after_disconnect: bool | None = None
    #: The scope's server and client addresses (taken from the upgraded HTTP protocol).
    addresses: tuple[Any, Any] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


def _only_protocol(server: uvicorn.Server) -> AtelierWebSocketProtocol:
    (protocol,) = server.server_state.connections
    assert isinstance(protocol, AtelierWebSocketProtocol)
    return protocol


@contextlib.asynccontextmanager
async def echo_server(seen: Seen) -> AsyncIterator[tuple[str, uvicorn.Server]]:
    """A real uvicorn on 127.0.0.1 (a free port) serving one echo socket at /echo/{name}."""
    holder: dict[str, uvicorn.Server] = {}

    async def echo(sock: ClientSocket, ctx: object) -> None:
        try:
            protocol = _only_protocol(holder["server"])
            seen.protocol = protocol
            seen.addresses = (sock.ws.scope["server"], sock.ws.scope["client"])
            seen.missing_attributes = [n for n in UVICORN_ATTRIBUTES if not hasattr(protocol, n)]
            seen.handshake_held_before_accept = (
                protocol.request is not None and protocol.response is not None
            )
            seen.send_now_before_accept = sock.send_now(b"too early")
            await sock.accept()
            seen.direct = sock.direct
            seen.request_after_accept = protocol.request
            seen.response_after_accept = protocol.response
            message = await sock.ws.receive()
            # `queue` and `writable` exist whatever uvicorn does (our __init__ sets them);
            # what shows a rename is uvicorn making its own asyncio ones beside ours.
            seen.asyncio_leftovers = [
                name
                for name, value in vars(protocol).items()
                if isinstance(value, asyncio.Queue | asyncio.Event)
            ]
            reply = b"echo:" + message["bytes"]
            seen.echoed_directly = sock.send_now(reply)
            if not seen.echoed_directly:
                await sock.send(reply)
            message = await sock.ws.receive()
            assert message["type"] == "websocket.disconnect"
            seen.send_now_after_disconnect = sock.send_now(b"too late")
        finally:
            seen.done.set()

    app = Starlette()
    app.state.ctx = None  # the edge hands endpoints the app's context; this one needs none
    edge = Edge(app, "node-t", [SocketRoute("/echo/{name}", echo)])
    config = uvicorn.Config(
        edge,
        host="127.0.0.1",
        port=0,
        http=AtelierHttpProtocol,
        ws=AtelierWebSocketProtocol,
        lifespan="off",
        log_config=None,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    holder["server"] = server
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(WAIT_S):
            while not server.started:
                if task.done():
                    task.result()  # raises what made startup fail
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        async with asyncio.timeout(WAIT_S):
            await task


async def test_the_direct_path_is_found_and_used_on_a_real_uvicorn() -> None:
    seen = Seen()
    async with echo_server(seen) as (url, _server):
        async with asyncio.timeout(WAIT_S):
            async with websockets.connect(f"{url}/echo/a", open_timeout=WAIT_S) as client:
                local, remote = client.local_address[:2], client.remote_address[:2]
                assert client.response is not None
                assert client.response.headers["x-atelier-node"] == "node-t"
                await client.send(b"bonjour")
                assert await client.recv() == b"echo:bonjour"
            await seen.done.wait()

    assert seen.protocol is not None
    # The addresses the WebSocket protocol took from the HTTP protocol it replaced.
    assert seen.addresses == (tuple(remote), tuple(local))
    # Every uvicorn attribute protocol.py relies on exists on uvicorn's own instance.
    assert seen.missing_attributes == []
    # ...and uvicorn uses our queue and writable event, not asyncio ones of its own.
    assert seen.asyncio_leftovers == []
    # The edge found the protocol behind uvicorn's `send` and the frame went out directly.
    assert seen.direct is True
    assert seen.echoed_directly is True
    # The direct path refuses before the handshake is done and once the client is gone.
    assert seen.send_now_before_accept is False
    assert seen.send_now_after_disconnect is False


async def test_the_handshake_is_dropped_once_accepted() -> None:
    seen = Seen()
    async with echo_server(seen) as (url, _server):
        async with asyncio.timeout(WAIT_S):
            async with websockets.connect(f"{url}/echo/a", open_timeout=WAIT_S) as client:
                await client.send(b"x")
                await client.recv()
            await seen.done.wait()

    # Held until accept (so the names are the ones uvicorn fills), dropped after it.
    assert seen.handshake_held_before_accept is True
    assert seen.request_after_accept is None
    assert seen.response_after_accept is None


async def test_the_http_protocol_sets_up_a_connection_as_uvicorns_does() -> None:
    """``AtelierHttpProtocol.connection_made`` replaces uvicorn's (for cheaper address
    look-ups): on two real connections, one per class, it sets the same attributes, the
    same addresses and scheme."""
    config = uvicorn.Config(Starlette(), http=AtelierHttpProtocol, lifespan="off", log_config=None)
    config.load()
    state = ServerState()
    made: list[HttpToolsProtocol] = []
    both_made = asyncio.Event()

    def factory() -> HttpToolsProtocol:
        cls = HttpToolsProtocol if not made else AtelierHttpProtocol
        protocol = cls(config=config, server_state=state, app_state={})
        made.append(protocol)
        its_own = protocol.connection_made

        def connection_made(transport: asyncio.BaseTransport) -> None:
            its_own(transport)  # type: ignore[arg-type]
            if len(made) == 2 and all(p.transport is not None for p in made):
                both_made.set()

        protocol.connection_made = connection_made  # type: ignore[method-assign]
        return protocol

    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    clients = []
    try:
        async with asyncio.timeout(WAIT_S):
            for _ in range(2):
                _reader, writer = await asyncio.open_connection("127.0.0.1", port)
                clients.append(writer)
            await both_made.wait()
        theirs, ours = made
        assert set(vars(theirs)) <= set(vars(ours))
        assert ours.server == theirs.server == ("127.0.0.1", port)
        assert ours.client == tuple(clients[1].get_extra_info("sockname")[:2])
        assert theirs.client == tuple(clients[0].get_extra_info("sockname")[:2])
        assert ours.scheme == theirs.scheme == "http"
        assert ours in state.connections and theirs in state.connections
    finally:
        for writer in clients:
            writer.close()
        server.close()
