"""The trivial relay of ``loadgen/relay.mjs``, on Atelier's own stack: the floor of Python.

Same behaviour as the Node relay: it keeps no document; on connect it sends sync step 1
with an empty state vector, answers a client's step 1 with an empty step 2, drops the
clients' step 2 and relays every other frame as is to the other sockets of the same
path. Served as ``atelier serve`` serves (uvicorn on uvloop, request heads parsed by
httptools, Atelier's transport protocols with their direct send path, the garbage
collector settled by ``server/heap.py``), without anything of Atelier's own: no
framework, no token, no roster, no doc, no log line.

So that a connection storm shows two floors beside the servers: what Node does with the
least work per socket (``relay``), and what this Python stack does with it
(``relay-python``). What Atelier spends above the second is its own work; what the
second spends above the first is the stack's.

    python -m bench.relay_py [--port 0] [--host 127.0.0.1]   prints "listening PORT"
"""

from __future__ import annotations

import argparse
import socket
import sys
from typing import Any

import uvicorn

from server import heap
from server.transport.protocol import AtelierHttpProtocol, AtelierWebSocketProtocol

STEP1_EMPTY = bytes((0, 0, 1, 0))  # sync, step 1, state vector [0]
STEP2_EMPTY = bytes((0, 1, 2, 0, 0))  # sync, step 2, update [0, 0]


class Relay:
    """The ASGI application: one set of sockets per path."""

    def __init__(self) -> None:
        self.paths: dict[str, dict[Any, AtelierWebSocketProtocol | None]] = {}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "websocket":
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        owner = getattr(send, "__self__", None)
        direct = owner if isinstance(owner, AtelierWebSocketProtocol) else None
        peers = self.paths.setdefault(scope["path"], {})
        peers[send] = direct
        try:
            await self._send(send, direct, STEP1_EMPTY)
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    return
                data = message.get("bytes")
                if data is None:
                    await send({"type": "websocket.close", "code": 4400, "reason": "text frame"})
                    return
                if data[:2] == b"\x00\x00":
                    await self._send(send, direct, STEP2_EMPTY)
                elif data[:2] != b"\x00\x01":
                    for other, other_direct in list(peers.items()):
                        if other is not send:
                            await self._send(other, other_direct, data)
        finally:
            peers.pop(send, None)
            if not peers:
                self.paths.pop(scope["path"], None)

    @staticmethod
    async def _send(send: Any, direct: AtelierWebSocketProtocol | None, data: bytes) -> None:
        if direct is None or not direct.send_now(data):
            try:
                await send({"type": "websocket.send", "bytes": data})
            except Exception:  # a socket gone meanwhile: the relay goes on
                return


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    args = ap.parse_args(argv)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    config = uvicorn.Config(
        Relay(),
        http=AtelierHttpProtocol,
        ws=AtelierWebSocketProtocol,
        ws_max_size=64 * 1024 * 1024,
        ws_per_message_deflate=False,
        loop="uvloop",
        lifespan="on",
        log_config=None,
        access_log=False,
        log_level="warning",
        server_header=False,
    )

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                heap.settle()
                print(f"listening {sock.getsockname()[1]}", flush=True)

    Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
