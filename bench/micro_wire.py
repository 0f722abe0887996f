"""Micro-benchmark over real sockets: one update applied and written to 30 sockets.

``bench.micro`` stops at the peers' send queues; this one goes on to the wire: the
peers are real sockets of an in-process uvicorn with Atelier's protocol
(transport/protocol.py), read by a Node process (the bench's ``ws``) that only counts
bytes. The writer's frames go through ``RoomRegistry.frame`` as in ``bench.micro``, and
the event loop is given a turn every ``--per-turn`` updates, as a served node does
between reads: 1 is a quiet node (every frame its own write), more is a busy one (a
turn's frames to one socket can share a write). The figure is the CPU time of this
process per update, on uvloop as served (``time.process_time``: user + system, so the
send syscalls count, and a neighbour's load does not), median over the repeats.

Usage: python -m bench.micro_wire [--peers 30] [--updates 5000] [--repeat 5]
                                  [--per-turn 1,4]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from bench.micro import bench_node, keystrokes
from bench.run_load import ensure_loadgen
from server.transport.edge import Edge, SocketRoute
from server.transport.peer import Peer
from server.transport.protocol import AtelierWebSocketProtocol
from server.transport.socket import ClientSocket
from server.types import DocAccess, RoomAccess, UserId

LOADGEN = Path(__file__).resolve().parent / "loadgen"

#: N sockets to 127.0.0.1, each counting the bytes it reads; prints the total on stdin EOF.
READER = """
const WebSocket = require('ws');
const [url, n] = [process.argv[1], Number(process.argv[2])];
let bytes = 0, open = 0;
for (let i = 0; i < n; i++) {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  ws.on('open', () => { if (++open === n) console.log('open'); });
  ws.on('message', (data) => { bytes += data.length; });
}
process.stdin.on('data', () => {});
process.stdin.on('end', () => { console.log(JSON.stringify({ bytes })); process.exit(0); });
setTimeout(() => process.exit(1), 600000);
"""


@contextlib.asynccontextmanager
async def sockets(n: int) -> AsyncIterator[list[ClientSocket]]:
    """n accepted server-side sockets of a real uvicorn, read by a Node process."""
    socks: list[ClientSocket] = []
    all_in = asyncio.Event()
    done = asyncio.Event()

    async def endpoint(sock: ClientSocket, ctx: object) -> None:
        await sock.accept()
        socks.append(sock)
        if len(socks) == n:
            all_in.set()
        await done.wait()

    app = Starlette()
    app.state.ctx = None
    config = uvicorn.Config(
        Edge(app, "bench", [SocketRoute("/s", endpoint)]),
        host="127.0.0.1",
        port=0,
        ws=AtelierWebSocketProtocol,
        lifespan="off",
        log_config=None,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(30):
        while not server.started:
            if task.done():
                task.result()  # raises what made the start fail
            await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    reader = await asyncio.create_subprocess_exec(
        "node",
        "-e",
        READER,
        f"ws://127.0.0.1:{port}/s",
        str(n),
        cwd=LOADGEN,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert reader.stdout is not None
        async with asyncio.timeout(30):
            await reader.stdout.readline()  # "open"
            await all_in.wait()
        yield socks
    finally:
        assert reader.stdin is not None
        reader.stdin.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(30):
                await reader.wait()
        if reader.returncode is None:
            reader.kill()
        done.set()
        server.should_exit = True
        await task


async def run(peers: int, updates: int, repeat: int, per_turn: int) -> list[float]:
    _, engine, outbox, _, registry = await bench_node()
    await registry.start()
    frames = keystrokes(updates)
    access = RoomAccess(docs=DocAccess.WRITE, chat=True)
    cpu_us: list[float] = []
    async with sockets(peers) as socks:
        for r in range(repeat):
            live = await registry.open("bench-room", f"doc-{r}")
            joined = []
            for i, sock in enumerate(socks):
                peer = Peer(sock, max_queue=10**9)
                peer.authorise(UserId(f"u{i}"), access)
                peer.joined()
                joined.append((peer, registry.join(live, peer)))
            writer, session = joined[0]
            await asyncio.sleep(0.2)
            t0 = time.process_time()
            for k, frame in enumerate(frames, 1):
                registry.frame(live, writer, session, frame)
                if k % per_turn == 0:
                    await asyncio.sleep(0)  # a loop turn: what was taken is written
            await asyncio.sleep(0)
            cpu_us.append((time.process_time() - t0) / len(frames) * 1e6)
            for peer, _ in joined:
                registry.leave(live, peer)  # the sockets stay open for the next round
            await asyncio.sleep(0.2)
    await registry.close(10)
    await outbox.close()
    await engine.dispose()
    return cpu_us


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed, as ``atelier serve`` runs (server/cli.py: loop="auto")."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--peers", type=int, default=30)
    parser.add_argument("--updates", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--per-turn", default="1,4", help="updates per loop turn (list)")
    args = parser.parse_args()
    ensure_loadgen()  # the reader is Node's ws, from bench/loadgen
    results = {}
    for per_turn in [int(x) for x in args.per_turn.split(",")]:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            cpu = runner.run(run(args.peers, args.updates, args.repeat, per_turn))
        results[per_turn] = cpu
        print(
            f"{per_turn} update(s) per loop turn, written to {args.peers} sockets: "
            f"CPU {statistics.median(cpu):.1f} µs per update "
            f"(min {min(cpu):.1f}, max {max(cpu):.1f}; {args.repeat} × {args.updates})"
        )
    print(json.dumps({str(k): v for k, v in results.items()}))


if __name__ == "__main__":
    main()
