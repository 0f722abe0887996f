"""The limits that protect the service (docs/operations.md, Limits), each against a real
server process started with a small value of its setting, over real sockets.

Each test checks what the refused client is told (close code and reason, or the
y-protocols auth message), that the room and the other sockets go on, and that the doc
stays as it was.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.node import run_node
from tests.support.server import AtelierServer, make_server
from tests.support.services import postgres_database
from tests.support.stored import compacted, stored_text
from tests.support.yclient import YClient, eventually

pytestmark = pytest.mark.integration

TOO_LARGE = b"document too large"
Node = Callable[..., AtelierServer]


def doc_url(server: AtelierServer, user: str, doc: str, room: str = "2nde-a-g1") -> str:
    return f"{server.ws_url}/yjs/{room}/{doc}?token={server.token(user)}"


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Callable[..., AtelierServer]]:
    """Start a node of this test's own with the given settings (stopped at the end)."""
    started: list[AtelierServer] = []

    def start(**env: str) -> AtelierServer:
        server = make_server(tmp_path / f"node{len(started)}", **env)
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        if server.proc is not None and server.proc.poll() is None:
            server.stop()


def refusals(client: YClient) -> list[bytes]:
    return [frame for frame in client.denied if TOO_LARGE in frame]


# --- the size of a doc ---


async def test_an_edit_past_the_doc_size_is_refused_and_the_doc_stays(node: Node) -> None:
    limited = node(ATELIER_MAX_DOC_BYTES="4096")
    lea = await YClient(doc_url(limited, "s-01", "rapport")).connect()
    hugo = await YClient(doc_url(limited, "s-02", "rapport")).connect()
    await lea.type("x" * 1000)
    await eventually(lambda: hugo.content() == "x" * 1000)

    await lea.type("y" * 5000)  # 6 KB: past the limit
    await lea.round_trip()
    assert len(refusals(lea)) == 1
    await lea.type("z")  # builds on the refused structs: refused too, never pending
    await lea.round_trip()
    assert len(refusals(lea)) == 2
    assert lea.close_code is None  # still connected: a reader now

    # The doc, the other sockets and the room go on as before.
    await hugo.type("ok", index=0)
    await eventually(lambda: lea.content().startswith("okx"))
    late = await YClient(doc_url(limited, "s-03", "rapport")).connect()
    await eventually(lambda: late.content() == "ok" + "x" * 1000)
    assert not refusals(hugo) and not refusals(late)
    del hugo.text[0:502]  # deleting always fits
    await hugo.flush()
    await eventually(lambda: late.content() == "x" * 500)

    # A reload (a new replica, as the web client does) may write again.
    await lea.close()
    again = await YClient(doc_url(limited, "s-01", "rapport")).connect()
    await again.type("!")
    await eventually(lambda: late.content() == "x" * 500 + "!")
    for c in (hugo, late, again):
        await c.close()
    await eventually(
        lambda: _stored_is(limited, "2nde-a-g1", "rapport", "x" * 500 + "!"), timeout=15
    )
    # One log line per refused socket, with sizes and no content.
    log = limited.log()
    assert log.count("document too large") == 1, log
    assert "yyyy" not in log


async def _stored_is(server: AtelierServer, room: str, doc: str, text: str) -> bool:
    return await stored_text(server.database_url, room, doc) == text


async def test_a_reconnecting_replica_past_the_size_is_refused_in_its_sync_step_2(
    node: Node,
) -> None:
    limited = node(ATELIER_MAX_DOC_BYTES="4096")
    # A client that typed offline brings it back in sync step 2: the same limit holds.
    first = await YClient(doc_url(limited, "s-01", "notes")).connect()
    await first.type("a" * 3000)
    await first.round_trip()
    offline = YClient(doc_url(limited, "s-02", "notes"))
    offline.doc.apply_update(first.doc.get_update())
    offline.text.insert(0, "b" * 3000)
    await offline.connect()
    await eventually(lambda: bool(refusals(offline)))
    watcher = await YClient(doc_url(limited, "s-03", "notes")).connect()
    await watcher.round_trip()
    assert watcher.content() == "a" * 3000
    for c in (first, offline, watcher):
        await c.close()


# --- docs per room ---


async def test_a_new_doc_past_the_room_limit_is_refused_with_1008(node: Node) -> None:
    limited = node(ATELIER_MAX_DOCS_PER_ROOM="2")
    a = await YClient(doc_url(limited, "s-07", "un", room="2nde-a-g2")).connect()
    b = await YClient(doc_url(limited, "s-08", "deux", room="2nde-a-g2")).connect()
    await a.type("premier")
    await b.type("second")
    await b.round_trip()
    third = await YClient(doc_url(limited, "s-07", "trois", room="2nde-a-g2")).connect()
    assert await third.wait_closed() == 1008
    assert "limit of 2 documents" in third.close_reason
    # The room's docs go on, and other rooms are not concerned.
    await a.type(" encore")
    await a.round_trip()
    other = await YClient(doc_url(limited, "s-01", "trois")).connect()
    assert other.close_code is None
    await other.close()
    # Once unloaded the stored docs still count; an existing doc still opens.
    await a.close()
    await b.close()
    await eventually(lambda: _stored_is(limited, "2nde-a-g2", "un", "premier encore"))
    for name in ("un", "deux"):  # unloaded: the fold into the snapshot is its trace
        await eventually(lambda n=name: compacted(limited.database_url, "2nde-a-g2", n))
    refused = await YClient(doc_url(limited, "s-08", "quatre", room="2nde-a-g2")).connect()
    assert await refused.wait_closed() == 1008
    back = await YClient(doc_url(limited, "s-08", "un", room="2nde-a-g2")).connect()
    await eventually(lambda: back.content() == "premier encore")
    await back.close()


# --- sockets per user and per node ---


async def admitted(url: str, timeout: float = 10) -> bool:
    """Does a socket to ``url`` get in (and sync) within ``timeout``? A slot freed by a
    close is free once the server has seen that close, a moment after the client."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        c = await YClient(url).connect()
        ok = c.close_code is None and c.synced.is_set()
        await c.close()
        if ok:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_sockets_past_the_users_limit_are_refused_with_1008(node: Node) -> None:
    limited = node(ATELIER_MAX_SOCKETS_PER_USER="2")
    one = await YClient(doc_url(limited, "s-01", "rapport")).connect()
    two = await YClient(doc_url(limited, "s-01", "notes")).connect()
    three = await YClient(doc_url(limited, "s-01", "brouillon")).connect()
    assert await three.wait_closed() == 1008
    assert "too many open connections" in three.close_reason
    classmate = await YClient(doc_url(limited, "s-02", "rapport")).connect()
    await one.type("toujours là")
    await eventually(lambda: classmate.content() == "toujours là")
    await two.close()
    assert await admitted(doc_url(limited, "s-01", "brouillon"))  # once the server saw it go
    for c in (one, classmate):
        await c.close()


async def test_sockets_past_the_nodes_limit_are_refused_with_1013(node: Node) -> None:
    limited = node(ATELIER_MAX_SOCKETS_PER_NODE="3")
    clients = [await YClient(doc_url(limited, f"s-0{i}", "rapport")).connect() for i in (1, 2, 3)]
    extra = await YClient(doc_url(limited, "s-04", "rapport")).connect()
    assert await extra.wait_closed() == 1013
    assert extra.close_reason == "node at capacity, try again later"
    await clients[0].type("on continue")
    await eventually(lambda: all(c.content() == "on continue" for c in clients))
    await clients[2].close()
    assert await admitted(doc_url(limited, "s-04", "rapport"))
    for c in clients[:2]:
        await c.close()


# --- the pre-auth timeout ---


def _raw(port: int, data: bytes, wait: float) -> tuple[bytes, float]:
    """Send ``data``, then read until the server closes (or ``wait`` passes)."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        s.sendall(data)
        got = b""
        try:
            while chunk := s.recv(4096):
                got += chunk
        except TimeoutError:
            return got + b"<timeout>", time.monotonic() - start
    return got, time.monotonic() - start


async def test_a_connection_that_never_finishes_its_headers_is_closed(node: Node) -> None:
    limited = node(ATELIER_PREAUTH_TIMEOUT_S="1")
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
    got, took = await asyncio.to_thread(_raw, limited.port, head, 10)
    assert got == b"" and 0.8 < took < 5, (got, took)
    upgrade = (
        f"GET /yjs/2nde-a-g1/rapport?token={limited.token('s-01')} HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    ).encode()
    got, took = await asyncio.to_thread(_raw, limited.port, upgrade, 10)
    assert got == b"" and 0.8 < took < 5, (got, took)
    # Whole requests on a kept-alive connection are served; other clients too.
    async with httpx.AsyncClient(base_url=limited.http_url) as http:
        for _ in range(3):
            assert (await http.get("/healthz")).status_code == 200
            await asyncio.sleep(0.5)
    c = await YClient(doc_url(limited, "s-01", "rapport")).connect()
    await c.round_trip()
    await c.close()
    assert limited.log().count("request head not complete within 1 s") == 2
    assert "eyJ" not in limited.log()  # no token, not even of a head cut short


async def test_a_socket_not_authorised_in_time_is_closed_with_1013(tmp_path: Path) -> None:
    # The roster read waits on a table lock taken by another session: a database that
    # is slow to answer, for real.
    import psycopg

    with postgres_database() as url:
        server = AtelierServer(
            data_dir=tmp_path, database_url=url, extra_env={"ATELIER_PREAUTH_TIMEOUT_S": "1"}
        )
        server.prepare()
        server.start()
        try:
            plain = url.replace("postgresql+psycopg", "postgresql", 1)
            with psycopg.connect(plain) as locker:
                locker.execute("LOCK TABLE app_user IN ACCESS EXCLUSIVE MODE")
                started = time.monotonic()
                slow = await YClient(doc_url(server, "s-05", "rapport")).connect()
                assert await slow.wait_closed() == 1013
                assert slow.close_reason == "authentication took too long, try again later"
                assert time.monotonic() - started < 5
                locker.rollback()
            ok = await YClient(doc_url(server, "s-05", "rapport")).connect()
            await ok.type("entré")
            await ok.round_trip()
            await ok.close()
        finally:
            server.stop()


# --- the memory budget ---


def _rss_mib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no VmRSS")


async def test_past_the_memory_budget_new_loads_are_refused_and_not_ready(tmp_path: Path) -> None:
    # The node's resident size once it serves a doc, measured on a first run; then a
    # budget 40 MiB above it, crossed by one doc holding ~64 MB of text.
    probe = make_server(tmp_path / "probe")
    probe.start()
    try:
        c = await YClient(doc_url(probe, "s-01", "rapport")).connect()
        await c.type("mesure")
        await c.round_trip()
        assert probe.proc is not None
        baseline = _rss_mib(probe.proc.pid)
        await c.close()
    finally:
        probe.stop()
    server = make_server(
        tmp_path / "node",
        ATELIER_MEMORY_BUDGET_MB=str(baseline + 40),
        ATELIER_MAX_FRAME_BYTES=str(16 * 1024 * 1024),
        ATELIER_MAX_DOC_BYTES=str(512 * 1024 * 1024),
    )
    server.start()
    try:
        async with httpx.AsyncClient(base_url=server.http_url) as http:
            assert (await http.get("/readyz")).status_code == 200
            big = await YClient(doc_url(server, "s-01", "rapport")).connect()
            reader = await YClient(doc_url(server, "s-02", "rapport")).connect()
            for i in range(8):
                await big.type(chr(ord("a") + i) * (8 * 1024 * 1024))
                await big.round_trip(timeout=30)

            async def not_ready() -> bool:
                return (await http.get("/readyz")).status_code == 503

            await eventually(not_ready, timeout=20)
            ready = (await http.get("/readyz")).json()
            assert ready["memory"].startswith("node memory budget reached"), ready
            assert ready["database"] == "ok"

            refused = await YClient(doc_url(server, "s-03", "notes")).connect()
            assert await refused.wait_closed() == 1013
            assert refused.close_reason.startswith("node memory budget reached")
            # Connected clients go on; a loaded doc still takes new sockets.
            await big.type("fin", index=0)
            await eventually(lambda: reader.content().startswith("fina"), timeout=20)
            joiner = await YClient(doc_url(server, "s-04", "rapport")).connect(timeout=30)
            assert joiner.close_code is None
            for c in (big, reader, joiner):
                await c.close()
    finally:
        server.stop()


@pytest.mark.interop
async def test_a_stock_y_websocket_client_is_told_and_stays_connected(node: Node) -> None:
    limited = node(ATELIER_MAX_DOC_BYTES="4096")
    config = {
        "url": f"{limited.ws_url}/yjs",
        "room": "2nde-a-g1",
        "doc": "stock",
        "writerToken": limited.token("s-01"),
        "readerToken": limited.token("s-02"),
    }
    code, stdout, stderr = await run_node("too_large.mjs", config, timeout=60)
    assert code == 0, stderr
    report = json.loads(stdout)
    assert len(report["denied"]) == 2
    assert all(reason.startswith("document too large") for reason in report["denied"])
    assert report["writerConnected"] is True and report["writerCloses"] == []
    assert report["readerText"] == "accepté "  # nothing refused reached the other client
    assert await stored_text(limited.database_url, "2nde-a-g1", "stock") == "accepté "
