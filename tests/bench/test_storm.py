"""The storm generator (bench/loadgen/storm.mjs) honours a server's retry signal.

A small real WebSocket server on loopback refuses each socket's first attempts in the
ways a busy server may (HTTP 503 + Retry-After, close 1013 with ``retry_after=`` in the
reason, a close without any signal), then does the y-websocket handshake. The generator
must retry each way, wait at least what it was told, count it all, and give up after
five tries where the server never lets it in. Then the bench report renders the record.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections import defaultdict
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from bench.run_load import LOADGEN_DIR, ensure_loadgen

pytestmark = pytest.mark.interop

# y-websocket sync step 2 carrying an empty update: message type 0 (sync), step 2, then
# the update as a varUint8Array ([0, 0]: no structs, empty delete set).
SYNC_STEP_2_EMPTY = bytes([0, 1, 2, 0, 0])


class BusyServer:
    """Per doc name: "busy" → 503, 1013 with retry_after, 1011, then served; "full" →
    always 503 (Retry-After: 0)."""

    def __init__(self) -> None:
        self.attempts: dict[str, list[float]] = defaultdict(list)

    def doc(self, path: str) -> str:
        return path.split("?")[0].rsplit("/", 1)[-1]

    def process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        doc = self.doc(request.path)
        self.attempts[request.path.split("?")[0]].append(time.monotonic())
        n = len(self.attempts[request.path.split("?")[0]])
        if doc == "full" or n == 1:
            response = conn.respond(503, "busy\n")
            response.headers["Retry-After"] = "0" if doc == "full" else "1"
            return response
        return None

    async def handler(self, ws: ServerConnection) -> None:
        path = ws.request.path.split("?")[0]  # type: ignore[union-attr]
        n = len(self.attempts[path])
        if n == 2:
            await ws.close(1013, "server busy; retry_after=0.5")
            return
        if n == 3:
            await ws.close(1011, "internal error")
            return
        first = await ws.recv()
        assert isinstance(first, bytes) and first[:2] == b"\x00\x00"  # sync step 1
        await ws.send(SYNC_STEP_2_EMPTY)
        await ws.wait_closed()


def loadgen_ready() -> None:
    if shutil.which("node") is None:  # README: Node >= 20 is a requirement of make test
        pytest.fail("the storm generator needs Node >= 20 on PATH")
    ensure_loadgen()  # npm ci in bench/loadgen when its node_modules is missing


async def run_storm(cfg: dict) -> dict:
    proc = await asyncio.create_subprocess_exec(
        "node",
        "storm.mjs",
        json.dumps(cfg),
        cwd=LOADGEN_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert out.strip(), err.decode()
    result: dict = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def test_retry_signals_are_honoured_and_tries_bounded(tmp_path: Path) -> None:
    loadgen_ready()
    busy = BusyServer()
    async with serve(busy.handler, "127.0.0.1", 0, process_request=busy.process_request) as srv:
        port = srv.sockets[0].getsockname()[1]
        rooms = [f"r{k}/busy" for k in range(4)] + ["r9/full"]
        r = await run_storm(
            {
                "url": f"ws://127.0.0.1:{port}",
                "rooms": rooms,
                "perRoom": 1,
                "concurrency": 10,
                "processes": 1,
                "backoffBaseMs": 50,
                "deadlineMs": 60000,
            }
        )

    assert r["total"] == 5
    assert r["synced"] == 4 and r["failed"] == 1 and r["ok"] is False
    # the busy docs: 503, 1013, 1011, then in; the full one: five 503s, then it gave up
    assert r["statuses"] == {"503": 4 + 5}
    assert r["closes"] == {"1013": 4, "1011": 4}
    assert r["retryAfterHonoured"] == {"close1013": 4, "http503": 4 + 4}
    assert r["retries"] == 4 * 3 + 4 and r["retriedSockets"] == 5
    assert len(busy.attempts["/yjs/r9/full"]) == 5
    for k in range(4):
        t = busy.attempts[f"/yjs/r{k}/busy"]
        assert len(t) == 4
        assert t[1] - t[0] >= 1.0  # Retry-After: 1
        assert t[2] - t[1] >= 0.5  # retry_after=0.5 in the close reason

    # the bench report renders such a record
    from bench.report_storm import storm_section

    r["server"] = "atelier"
    text = "\n".join(storm_section([r], {"docs": 5, "per_doc": 1, "concurrency": 10}))
    assert "| atelier ⚠ | 4 / 5 |" in text
    assert "4 × 1013, 8 × 503" in text
    assert "1011×4, 1013×4" in text
