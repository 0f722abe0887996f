"""Micro-benchmark: one update applied and broadcast to 30 sockets, in-process.

Measures the server's own cost on the hot path — decode, permission check, apply to the
pycrdt doc, fan-out of the same bytes to 30 peers' send queues, queueing for the
database and the bus — with peers whose transport only counts bytes (the socket write
itself is the kernel's and uvicorn's cost, measured end to end by the load benchmarks).
The update writer drains to a real SQLite file during the run.

With ``--collab`` the same again with every socket a /collab one (api/collab.py): the
frames carry the doc's name, the writer's doc is found by its prefix, each update is
acknowledged (SyncStatus) and every frame sent is prefixed per socket.

Usage: python -m bench.micro [--peers 30] [--updates 20000] [--repeat 5] [--collab]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from pycrdt import Doc, Text
from sqlalchemy.ext.asyncio import AsyncEngine

from server.api.collab import Channel
from server.bus.memory import InMemoryBus
from server.bus.outbox import Outbox
from server.bus.watch import NodeWatch
from server.config import Settings
from server.persistence.db import create_engine, run_migrations
from server.persistence.docs import DocStore
from server.persistence.roster import Roster
from server.persistence.versions import VersionStore
from server.progress.service import Progress
from server.rooms.registry import RoomRegistry
from server.sync import hocuspocus as hp
from server.sync.messages import update_frame
from server.transport.peer import Peer
from server.types import DocAccess, NodeId, RoomAccess, UserId


class CountingTransport:
    def __init__(self) -> None:
        self.frames = 0
        self.bytes = 0

    def send_now(self, data: bytes) -> bool:
        self.frames += 1
        self.bytes += len(data)
        return True

    async def send(self, data: bytes) -> None:
        self.send_now(data)

    async def close(self, code: int, reason: str) -> None:
        return None


def keystrokes(n: int) -> list[bytes]:
    """n real Yjs updates, one per typed character, as a browser would send them."""
    doc: Doc = Doc()
    text = doc.get("content", type=Text)
    frames: list[bytes] = []
    doc.observe(lambda e: frames.append(update_frame(e.update)))
    for i in range(n):
        text.insert(len(text), "abcdefghijklmnopqrstuvwxyz "[i % 27])
    return frames


async def bench_node() -> tuple[Settings, AsyncEngine, Outbox, DocStore, RoomRegistry]:
    """One node's registry in this process, not started: SQLite in a fresh folder, the
    in-process bus, no compaction during the measure."""
    folder = Path(tempfile.mkdtemp(prefix="atelier-bench-"))
    url = f"sqlite+aiosqlite:///{folder}/bench.db"
    await asyncio.to_thread(run_migrations, url)
    settings = Settings(data_dir=folder, database_url=url, compact_after_updates=10**9)
    engine = create_engine(url)
    bus = InMemoryBus(NodeId("bench"))
    outbox = Outbox(bus)
    outbox.start()
    store = DocStore(engine)
    registry = RoomRegistry(settings, store, outbox, NodeWatch(bus, 5.0))
    return settings, engine, outbox, store, registry


async def run(
    peers: int, updates: int, repeat: int, progress: bool = True, collab: bool = False
) -> dict[str, float]:
    settings, engine, outbox, store, registry = await bench_node()
    if progress:
        # Attribution as served: every update queued for the doc's ledger and folded in
        # batches (server/progress/service.py); its cost lands inside the timed loop.
        Progress(settings, registry, store, VersionStore(engine), Roster(engine), lambda *_: None)
    await registry.start()
    frames = keystrokes(updates)
    access = RoomAccess(docs=DocAccess.WRITE, chat=True)
    per_update_us = []
    for r in range(repeat):
        live = await registry.open("bench-room", f"doc-{r}")
        sockets: list[tuple[Peer | Channel, object]] = []
        name = f"bench-room/doc-{r}"
        for i in range(peers):
            peer = Peer(CountingTransport(), max_queue=10**9)
            peer.authorise(UserId(f"u{i}"), access)
            peer.joined()
            handle: Peer | Channel = peer
            if collab:
                handle = Channel(peer, name, access, lambda _: None)
                handle.live = live
            sockets.append((handle, registry.join(live, handle)))
        writer, session = sockets[0]
        await asyncio.sleep(0.05)
        if collab:
            assert isinstance(writer, Channel)
            by_prefix = {writer.prefix: (writer, session)}
            sent = [writer.prefix + frame for frame in frames]
            t0 = time.perf_counter()
            for data in sent:  # api/collab.py Connection._receive's hot path
                parts = hp.split(data)
                assert parts is not None
                channel, sess = by_prefix[parts[0]]
                out = registry.frame(live, channel, sess, parts[1])  # type: ignore[arg-type]
                ack = hp.acknowledge(channel.prefix, parts[1], out.denied is not None)
                if ack is not None:
                    channel.peer.send(ack)
            t1 = time.perf_counter()
        else:
            t0 = time.perf_counter()
            for frame in frames:
                registry.frame(live, writer, session, frame)  # type: ignore[arg-type]
            t1 = time.perf_counter()
        await asyncio.sleep(0)  # let the writers drain before the next round
        per_update_us.append((t1 - t0) / len(frames) * 1e6)
        for peer, _ in sockets:
            peer.close(1000, "done")
            registry.leave(live, peer)
        await asyncio.sleep(0.05)
    flushed_t0 = time.perf_counter()
    await registry.writer.flush()
    flush_s = time.perf_counter() - flushed_t0
    await registry.close(10)
    await outbox.close()
    await engine.dispose()
    return {
        "peers": peers,
        "updates": updates,
        "median_us_per_update": statistics.median(per_update_us),
        "min_us_per_update": min(per_update_us),
        "max_us_per_update": max(per_update_us),
        "final_flush_s": flush_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--peers", type=int, default=30)
    parser.add_argument("--updates", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--collab", action="store_true", help="also over /collab sockets")
    args = parser.parse_args()
    if args.collab:
        for collab in (False, True):
            r = asyncio.run(run(args.peers, args.updates, args.repeat, collab=collab))
            print(
                f"{'/collab' if collab else '/yjs   '} one update to {r['peers']} sockets: "
                f"median {r['median_us_per_update']:.1f} µs "
                f"(min {r['min_us_per_update']:.1f}, max {r['max_us_per_update']:.1f})"
            )
        return
    bare = asyncio.run(run(args.peers, args.updates, args.repeat, progress=False))
    print(
        f"without attribution: median {bare['median_us_per_update']:.1f} µs "
        f"(min {bare['min_us_per_update']:.1f}, max {bare['max_us_per_update']:.1f})"
    )
    result = asyncio.run(run(args.peers, args.updates, args.repeat))
    print(
        f"one update applied and broadcast to {result['peers']} sockets: "
        f"median {result['median_us_per_update']:.1f} µs "
        f"(min {result['min_us_per_update']:.1f}, max {result['max_us_per_update']:.1f}; "
        f"{args.repeat} runs × {result['updates']} updates)"
    )


if __name__ == "__main__":
    main()
