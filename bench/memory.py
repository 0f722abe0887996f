"""Memory of an idle connection and of an idle room with one loaded doc.

Starts a real server process, opens idle y-websocket connections from this process
(handshake done, sync step 1/2 exchanged, then silence) and reads the server's RSS:
- connections: N sockets on ONE doc → (RSS after − RSS before) / N;
- rooms: K docs, one socket each → per-doc cost minus the per-connection cost.

Usage: python -m bench.memory [--connections 2000] [--docs 500]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
from pathlib import Path

import websockets
from pycrdt import Doc, create_sync_message

from tests.support.server import make_server


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def open_idle(url: str, n: int, concurrency: int = 100) -> list[websockets.ClientConnection]:
    sem = asyncio.Semaphore(concurrency)
    hello = create_sync_message(Doc())

    async def one() -> websockets.ClientConnection:
        async with sem:
            ws = await websockets.connect(url, max_size=None, ping_interval=None)
            await ws.send(hello)
            await ws.recv()  # the server's sync step 1 arrives first
            return ws

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def settle(pid: int, seconds: float = 2.0) -> int:
    await asyncio.sleep(seconds)
    return rss_kib(pid)


async def _measure_on_fresh_server(body):  # type: ignore[no-untyped-def]
    folder = Path(tempfile.mkdtemp(prefix="atelier-mem-"))
    server = make_server(folder)
    server.start()
    assert server.proc is not None
    try:
        return await body(server, server.proc.pid, server.token("s-01", ttl=3600))
    finally:
        server.stop()


async def measure(connections: int, docs: int) -> dict[str, float]:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    async def idle_sockets(server, pid, token):  # type: ignore[no-untyped-def]
        base = f"{server.ws_url}/yjs/2nde-a-g1"
        for ws in await open_idle(f"{base}/warm?token={token}", 50):
            await ws.close()
        before = await settle(pid)
        t0 = time.perf_counter()
        conns = await open_idle(f"{base}/idle?token={token}", connections)
        connect_s = time.perf_counter() - t0
        after = await settle(pid)
        for ws in conns:
            await ws.close()
        return (after - before) / connections, connections / connect_s, before

    async def idle_docs(server, pid, token):  # type: ignore[no-untyped-def]
        # Each doc in its own room-doc pair, one socket on it: a room with one loaded doc.
        base = f"{server.ws_url}/yjs/2nde-a-g1"
        for ws in await open_idle(f"{base}/warm?token={token}", 50):
            await ws.close()
        before = await settle(pid)
        held = []
        for i in range(docs):
            held += await open_idle(f"{base}/d{i}?token={token}", 1)
        after = await settle(pid)
        for ws in held:
            await ws.close()
        return (after - before) / docs

    per_conn, rate, base_rss = await _measure_on_fresh_server(idle_sockets)
    per_doc_and_conn = await _measure_on_fresh_server(idle_docs)
    return {
        "connections": connections,
        "kib_per_connection": per_conn,
        "connects_per_s": rate,
        "docs": docs,
        "kib_per_idle_room_with_one_doc": per_doc_and_conn - per_conn,
        "rss_base_mib": base_rss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--docs", type=int, default=500)
    args = parser.parse_args()
    r = asyncio.run(measure(args.connections, args.docs))
    print(
        f"idle connection: {r['kib_per_connection']:.1f} KiB "
        f"({r['connections']} sockets, {r['connects_per_s']:.0f} connects/s); "
        f"idle room with one loaded doc: {r['kib_per_idle_room_with_one_doc']:.1f} KiB "
        f"({r['docs']} docs); base RSS {r['rss_base_mib']:.0f} MiB"
    )


if __name__ == "__main__":
    main()
