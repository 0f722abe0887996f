"""permessage-deflate: what it saves on the wire, and what it costs per socket.

Bytes: real frames (keystroke updates, awareness, a newcomer's sync step 2 of a long
doc) compressed with the parameters uvicorn uses (window 2^12, memLevel 5, a context
kept across messages as permessage-deflate does). Memory: an idle socket with and
without deflate, on a real server (bench/memory.py's method).

Usage: python -m bench.deflate [--connections 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import zlib

from pycrdt import Doc, Text

from bench.memory import measure
from server.sync.messages import awareness_frame, sync_step2_frame, update_frame


def _deflater() -> zlib._Compress:  # type: ignore[name-defined]
    return zlib.compressobj(6, zlib.DEFLATED, -12, 5)


def wire(frames: list[bytes]) -> tuple[int, int, float]:
    """(raw bytes, deflated bytes, µs of CPU per frame) with one context for the stream."""
    c = _deflater()
    raw = out = 0
    t0 = time.process_time()
    for f in frames:
        raw += len(f)
        out += len(c.compress(f) + c.flush(zlib.Z_SYNC_FLUSH)) - 4  # RFC 7692 drops 00 00 ff ff
    cpu = (time.process_time() - t0) / max(1, len(frames)) * 1e6
    return raw, out, cpu


def frames() -> dict[str, list[bytes]]:
    doc: Doc = Doc()
    text = doc.get("content", type=Text)
    updates: list[bytes] = []
    doc.observe(lambda e: updates.append(update_frame(e.update)))
    sentence = "Les élèves de seconde rédigent leur rapport sur la biodiversité du lycée. "
    for i in range(20000):
        text.insert(len(text), sentence[i % len(sentence)])
    cursor = json.dumps({"user": {"name": "Léa", "color": "#1e6fd9"}, "cursor": {"anchor": 123}})
    aw = [
        awareness_frame(b"\x01\x05" + bytes([i % 100]) + bytes([len(cursor)]) + cursor.encode())
        for i in range(500)
    ]
    return {
        "keystroke updates": updates[-2000:],
        "awareness (cursor moves)": aw,
        "newcomer sync step 2 (20,000-character doc)": [sync_step2_frame(doc.get_update())],
    }


async def run(connections: int) -> None:
    print("| traffic | raw bytes | deflated | ratio | CPU µs/frame |")
    print("|---|---|---|---|---|")
    for name, fs in frames().items():
        raw, out, cpu = wire(fs)
        print(f"| {name} | {raw:,} | {out:,} | {out / raw:.2f} | {cpu:.1f} |")
    results = {}
    for flag in ("false", "true"):
        os.environ["ATELIER_WS_DEFLATE"] = flag
        results[flag] = await measure(connections, 1)
    os.environ.pop("ATELIER_WS_DEFLATE", None)
    off = results["false"]["kib_per_connection"]
    on = results["true"]["kib_per_connection"]
    print(
        f"\nidle socket: {off:.1f} KiB without deflate, {on:.1f} KiB with it "
        f"(a browser always offers it; uvicorn accepts when enabled)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=1000)
    args = parser.parse_args()
    asyncio.run(run(args.connections))


if __name__ == "__main__":
    main()
