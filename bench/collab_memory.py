"""Memory per user with three docs open: one /collab socket vs three /yjs sockets.

A student with three docs open holds three y-websocket sockets, or one Hocuspocus socket
carrying the three (issue 14). For each protocol a fresh server process: the docs are
loaded first (one holder socket each, so the docs' own cost is not counted), then U users
connect (demo students of 2nde-a, each on three docs of their group: handshake, Auth,
sync step 1/2 exchanged, then silence) and the server's RSS is read:
(RSS after − RSS before) / U.

Usage: python -m bench.collab_memory [--users 600]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

import websockets
from pycrdt import Doc, create_sync_message

from bench.memory import settle
from server.sync import hocuspocus as hp
from tests.support.server import AtelierServer, make_server

DOCS = ("m-1", "m-2", "m-3")


def group_of(student: int) -> str:
    return f"2nde-a-g{(student - 1) // 6 + 1}"


def user_of(i: int) -> tuple[str, str]:
    n = i % 30 + 1
    return f"s-{n:02d}", group_of(n)


async def yjs_user(server: AtelierServer, user: str, group: str) -> list[object]:
    hello = create_sync_message(Doc())
    out = []
    for doc in DOCS:
        url = f"{server.ws_url}/yjs/{group}/{doc}?token={server.token(user)}"
        ws = await websockets.connect(url, max_size=None, ping_interval=None)
        await ws.send(hello)
        await ws.recv()
        out.append(ws)
    return out


def _auth(doc: str, token: str) -> bytes:
    raw = token.encode()
    length = (len(raw) & 0x7F | 0x80, len(raw) >> 7)  # tokens are 128..16383 bytes
    return hp.prefix(doc) + bytes((hp.AUTH, hp.AUTH_TOKEN, *length)) + raw


async def collab_user(server: AtelierServer, user: str, group: str) -> list[object]:
    ws = await websockets.connect(f"{server.ws_url}/collab", max_size=None, ping_interval=None)
    token = server.token(user)
    hello = create_sync_message(Doc())
    for doc in DOCS:
        await ws.send(_auth(f"{group}/{doc}", token))
        await ws.send(hp.prefix(f"{group}/{doc}") + hello)
    steps = 0
    while steps < 3:  # the server's step 1 of each doc
        frame = await asyncio.wait_for(ws.recv(), 10)
        assert isinstance(frame, bytes)
        name_len = frame[0]
        if frame[1 + name_len : 3 + name_len] == b"\x00\x00":
            steps += 1
    return [ws]


async def measure(protocol: str, users: int, concurrency: int = 50) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix=f"bench-collab-{protocol}-"))
    server = make_server(folder)
    server.start()
    assert server.proc is not None
    pid = server.proc.pid
    connect = yjs_user if protocol == "yjs" else collab_user
    sockets: list[object] = []
    try:
        for g in range(1, 6):  # the docs loaded once, before measuring
            sockets += await yjs_user(server, f"s-{(g - 1) * 6 + 1:02d}", f"2nde-a-g{g}")
        before = await settle(pid)
        sem = asyncio.Semaphore(concurrency)

        async def one(i: int) -> list[object]:
            async with sem:
                return await connect(server, *user_of(i))

        for held in await asyncio.gather(*(one(i) for i in range(users))):
            sockets += held
        after = await settle(pid, 3.0)
        return {"users": users, "kib_per_user": (after - before) / users, "rss_kib": after}
    finally:
        for ws in sockets:
            await ws.close()  # type: ignore[attr-defined]
        server.stop()


async def main(users: int) -> None:
    for protocol in ("yjs", "collab"):
        r = await measure(protocol, users)
        sockets = 3 if protocol == "yjs" else 1
        print(
            f"{protocol:7s} {users} users × 3 docs ({sockets} socket(s) each): "
            f"{r['kib_per_user']:.1f} KiB per user (server RSS {r['rss_kib'] / 1024:.0f} MiB)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=600)
    args = parser.parse_args()
    asyncio.run(main(args.users))
