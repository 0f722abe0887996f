"""Where a node's CPU went: a py-spy ``raw`` (folded) record summed into the shares that
guided issue 15's work, for the event-loop thread only (database driver threads left out).

    py-spy record -f raw -o prof.folded -p PID -d 20
    python -m bench.profile prof.folded [--top 30] [--self]

Prints each phase of a connection (HTTP parse, WebSocket handshake, token, roster,
doc load, first sync, logging) and of a frame's path (apply, fan-out, socket writes) as
a share of the loop thread's samples, then the top frames by inclusive (or self) share.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

#: Phase → frames whose presence in a stack puts the sample in that phase (first match
#: wins, in this order, so that e.g. a log line written during the accept counts as log).
PHASES: list[tuple[str, tuple[str, ...]]] = [
    ("logging", ("Logger._log", "Logger.info", "Logger.warning")),
    ("token verification", ("Verifier.verify",)),
    ("roster and permissions", ("identify (", "access_to (", "doc_access (", "Loads.get")),
    ("doc load (database)", ("Residency._load", "RoomRegistry.may_load", "DocStore.")),
    ("HTTP request head", ("HttpToolsProtocol.data_received", "H11Protocol.")),
    ("WebSocket accept (response)", ("WebSocket.accept", "ClientSocket.accept")),
    ("first sync (join)", ("RoomRegistry.join",)),
    ("frames in (apply, decide)", ("RoomRegistry.frame", "RoomRegistry.integrate")),
    ("fan-out and socket writes", ("fan_out", "Peer.send", "send_now")),
    ("frames read (websockets parse)", ("WebSocketsSansIOProtocol.data_received",)),
    ("database (other)", ("sqlalchemy/", "aiosqlite/", "psycopg/")),
    ("bus and outbox", ("Outbox.", "RedisBus.", "InMemoryBus.")),
    ("progress (attribution)", ("Progress.", "Ledger.")),
    ("TCP connection set-up", ("connection_made", "create_protocol")),
    ("socket endpoint glue (edge, admission)", ("Edge._socket", "admit (", "wait_turn")),
]


def _clean(frame: str) -> str:
    return re.sub(r" \((?:[^)]*/)?([^/)]+?)(?::\d+)?\)$", r" (\1)", frame)


def read(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        frames = stack.split(";")
        if any("_connection_worker_thread" in f or "Thread._bootstrap" in f for f in frames):
            continue  # a database driver thread, not the event loop
        stacks.append((frames[1:], int(n)))
    return stacks


def phases(stacks: list[tuple[list[str], int]]) -> tuple[int, Counter[str]]:
    total = sum(n for _, n in stacks)
    out: Counter[str] = Counter()
    for frames, n in stacks:
        joined = ";".join(frames)
        for name, marks in PHASES:
            if any(m in joined for m in marks):
                out[name] += n
                break
        else:
            leaf = _clean(frames[-1]) if frames else ""
            idle = not frames or leaf.startswith(("Runner.run", "EpollSelector.select"))
            out["event loop (idle or native)" if idle else "other"] += n
    return total, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folded", type=Path)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--self", action="store_true", help="top frames by self share")
    args = ap.parse_args()
    stacks = read(args.folded)
    total, share = phases(stacks)
    print(f"{total} samples of the event-loop thread")
    for name, n in share.most_common():
        print(f"  {100 * n / total:5.1f} %  {name}")
    frames: Counter[str] = Counter()
    for fs, n in stacks:
        for f in {_clean(f) for f in (fs[-1:] if args.self else fs)}:
            frames[f] += n
    print("top frames" + (" (self)" if args.self else " (inclusive)"))
    for f, n in frames.most_common(args.top):
        print(f"  {100 * n / total:5.1f} %  {f}")


if __name__ == "__main__":
    main()
