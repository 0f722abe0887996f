"""Back-pressure on client frames (issue 15): a socket over its rate is slowed, not cut.

Real server processes, real sockets: raw websockets clients, the room channel's client,
and the stock npm y-websocket provider. Each server runs with a small frame rate so that
a burst "far over the rate" takes seconds, not minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families
from pycrdt import Doc, Text

from server.sync.messages import update_frame
from tests.support.liveclient import LiveClient
from tests.support.node import run_node
from tests.support.server import AtelierServer, free_port, make_server
from tests.support.yclient import YClient, eventually

pytestmark = pytest.mark.integration

LETTERS = "abcdefghijklmnopqrstuvwxyz "

#: 200 frames/s after a burst of 50; abuse only after 30 s held back (never reached here).
#: Keepalive pings every second: a held socket's pong waits behind its frames for longer,
#: and it must not be closed for that (1011).
PACED = {
    "ATELIER_RATE_FRAMES_PER_SECOND": "200",
    "ATELIER_RATE_BURST": "50",
    "ATELIER_RATE_ABUSE_AFTER_S": "30",
    "ATELIER_WS_PING_INTERVAL_S": "1",
}


@pytest.fixture(scope="module")
def paced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AtelierServer]:
    server = make_server(tmp_path_factory.mktemp("paced"), **PACED)
    server.start()
    yield server
    server.stop()


def doc_url(server: AtelierServer, user: str, doc: str, room: str = "2nde-a-g1") -> str:
    return f"{server.ws_url}/yjs/{room}/{doc}?token={server.token(user)}"


def live_url(server: AtelierServer, user: str, room: str = "2nde-a") -> str:
    return f"{server.ws_url}/rooms/{room}/live?token={server.token(user)}"


def typed_frames(n: int) -> tuple[list[bytes], str]:
    """``n`` update frames, one character each appended, as an editor sends them."""
    doc = Doc()
    text = doc.get("content", type=Text)
    frames = []
    for i in range(n):
        before = doc.get_state()
        text.insert(i, LETTERS[i % 27])
        frames.append(update_frame(doc.get_update(before)))
    return frames, str(text)


def kernel_buffers_max() -> int:
    """The largest TCP receive plus send buffer this kernel gives a socket, in bytes."""
    total = 0
    for name in ("tcp_rmem", "tcp_wmem"):
        total += int(Path(f"/proc/sys/net/ipv4/{name}").read_text().split()[2])
    return total


def rss_kib(server: AtelierServer) -> int:
    assert server.proc is not None
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_burst_far_over_the_rate_arrives_whole_in_order_and_others_go_on(
    paced: AtelierServer,
) -> None:
    doc = f"burst-{uuid.uuid4().hex[:8]}"
    n = 1500  # 30 times the burst: ~7 s at 200 frames/s
    frames, expected = typed_frames(n)
    writer = await YClient(doc_url(paced, "s-01", doc)).connect()
    other = await YClient(doc_url(paced, "s-02", doc)).connect()
    observer = await YClient(doc_url(paced, "s-03", doc)).connect()

    seen: list[str] = []

    def writer_part() -> str:
        content = observer.content()
        seen.append(content.replace("B", "", 1))
        return seen[-1]

    for frame in frames:  # as fast as the socket takes them
        await writer.send_raw(frame)
    # The writer is held back now; another socket's edit still fans out at once: the
    # observer gets it while the writer's burst is still being read.
    await other.type("B", index=0)
    await eventually(lambda: "B" in observer.content(), timeout=10)
    assert len(writer_part()) < n, "the other socket waited for the flooder's backlog"

    await eventually(lambda: writer_part() == expected, timeout=60)
    # In order, nothing dropped: every state the observer went through is a prefix.
    assert all(expected.startswith(s) for s in seen)
    assert writer.close_code is None and not writer.closed.is_set()
    await writer.round_trip()  # still served
    for c in (writer, other, observer):
        await c.close()


async def test_room_channel_burst_is_answered_in_order_not_closed(paced: AtelierServer) -> None:
    client = await LiveClient(live_url(paced, "s-01")).connect()
    refs = [await client.send({"t": "ping"}) for _ in range(400)]  # 8 times the burst
    await eventually(lambda: client.answer(refs[-1]) is not None, timeout=30)
    pongs = [f["ref"] for f in client.of_type("pong")]
    assert pongs == refs
    assert client.close_code is None
    await client.close()


@pytest.mark.interop
async def test_stock_provider_big_burst_is_slowed_not_cut(paced: AtelierServer) -> None:
    config = {
        "url": f"{paced.ws_url}/yjs",
        "room": "2nde-a-g1",
        "doc": f"stock-burst-{uuid.uuid4().hex[:8]}",
        "writerToken": paced.token("s-01"),
        "observerToken": paced.token("s-02"),
        "edits": 2000,
        "timeoutMs": 60000,
    }
    code, stdout, stderr = await run_node("burst.mjs", config, timeout=120)
    assert code == 0, stderr
    report = json.loads(stdout.strip().splitlines()[-1])
    assert report["length"] == 2000 and report["same"], report
    assert report["writerCloses"] == [] and report["observerCloses"] == [], report


async def test_sustained_flood_is_closed_1008_after_the_threshold(tmp_path: Path) -> None:
    metrics_port = free_port()
    server = make_server(
        tmp_path,
        ATELIER_RATE_FRAMES_PER_SECOND="50",
        ATELIER_RATE_BURST="20",
        ATELIER_RATE_ABUSE_AFTER_S="1",
        ATELIER_METRICS_PORT=str(metrics_port),
        ATELIER_METRICS_TOKEN="metrics-" + secrets.token_hex(24),
    )
    server.start()
    try:
        doc = "flood"
        frames, expected = typed_frames(3000)  # 60 s of frames at the rate: sustained
        flooder = await YClient(doc_url(server, "s-01", doc)).connect()
        for frame in frames:
            try:
                await flooder.send_raw(frame)
            except websockets.ConnectionClosed:
                break
        assert await flooder.wait_closed(timeout=30) == 1008
        assert "frame rate exceeded for too long" in flooder.close_reason
        # Slowed first, not cut at the end of its burst: what was read was applied.
        fresh = await YClient(doc_url(server, "s-02", doc)).connect()
        applied = fresh.content()
        assert len(applied) > 20 and expected.startswith(applied)
        await fresh.close()

        # The room channel is held to the same rule.
        live = await LiveClient(live_url(server, "s-01")).connect()
        for _ in range(3000):
            try:
                await live.send({"t": "ping"})
            except websockets.ConnectionClosed:
                break
        assert await live.wait_closed(timeout=30) == 1008
        assert len(live.of_type("pong")) > 20
        assert "over the frame rate" in server.log()
        # Counted: both slowed first, then both refused by the abuse threshold.
        async with httpx.AsyncClient(timeout=10) as http:
            scraped = (await http.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(scraped)
            for s in family.samples
        }
        assert samples[("atelier_sockets_slowed_total", ())] == 2
        assert samples[("atelier_limit_refusals_total", (("limit", "rate_abuse_after"),))] == 2
    finally:
        server.stop()


async def test_a_paused_flooder_is_held_in_tcp_not_in_server_memory(tmp_path: Path) -> None:
    server = make_server(
        tmp_path,
        ATELIER_RATE_FRAMES_PER_SECOND="2",
        ATELIER_RATE_BURST="2",
        ATELIER_RATE_ABUSE_AFTER_S="600",
    )
    server.start()
    try:
        scratch = Doc()
        scratch.get("content", type=Text).insert(0, "x" * 65536)
        frame = update_frame(scratch.get_update())  # 64 KiB; resent, it changes nothing
        flooder = await YClient(doc_url(server, "s-01", "lourd")).connect()
        await flooder.round_trip()
        before = rss_kib(server)
        # What TCP may hold between the two ends: the kernel's largest receive and send
        # buffers (autotuned on loopback), plus a margin for the server's one read.
        held = kernel_buffers_max() + 8 * 2**20
        to_send = max(64 * 2**20, 2 * held) // len(frame)
        sent = 0

        async def push() -> None:
            nonlocal sent
            while sent < to_send:
                await flooder.send_raw(frame)
                sent += 1

        pushing = asyncio.create_task(push())
        # Until the buffers are full the sender moves freely; then at the server's pace
        # (2 frames/s). How long filling takes depends on the kernel's autotuning and on
        # the machine's load: watch second by second, for at most 20 s.
        await asyncio.sleep(2)
        last, stalled_step = sent, None
        for _ in range(18):
            await asyncio.sleep(1)
            if sent - last < 16:
                stalled_step = sent - last
                break
            last = sent
        pushing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pushing
        grown_mib = (rss_kib(server) - before) / 1024
        # TCP held the sender: what it got out is the kernel buffers' worth, not all it
        # had to send, and once they were full it moved at the server's pace (2 frames/s),
        # blocked, not at loopback speed; the server's memory did not take the rest.
        assert sent * len(frame) < held, f"the sender was never blocked ({sent} frames out)"
        assert stalled_step is not None, f"still sending freely after 20 s ({sent} frames out)"
        assert grown_mib < 32, f"the server grew by {grown_mib:.0f} MiB"
        # The paused socket is still open, and the node serves others meanwhile.
        assert not flooder.closed.is_set()
        other = await YClient(doc_url(server, "s-02", "autre")).connect()
        await other.type("ça passe")
        await other.round_trip()
        await other.close()
        flooder.ws.transport.abort()
    finally:
        server.stop()
