"""/metrics on one real node: real clients move the numbers, the public path refuses.

The node serves its metrics on a listener of its own (ATELIER_METRICS_PORT) and, with
ATELIER_METRICS_TOKEN, on the serving port to the token's bearer. Every scrape is parsed
with prometheus_client's own parser, and the dashboard's expressions are checked against
what a real scrape exports.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jwt
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from server.sync.messages import update_frame
from tests.support.liveclient import LiveClient
from tests.support.receiver import Receiver
from tests.support.server import AtelierServer, free_port, make_server
from tests.support.yclient import YClient, eventually

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "atelier.json"
WEBHOOK_SECRET = "ent-webhook-secret-for-the-metrics-tests"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver(WEBHOOK_SECRET, fail_first=2).start()  # two failed POSTs, then taken
    yield r
    r.stop()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[AtelierServer]:
    server = make_server(
        tmp_path_factory.mktemp("metrics"),
        ATELIER_METRICS_PORT=str(free_port()),
        ATELIER_METRICS_TOKEN="metrics-" + secrets.token_hex(24),  # made here, not at collection
        ATELIER_ENT_WEBHOOK_URL=receiver.url,
        ATELIER_ENT_WEBHOOK_SECRET=WEBHOOK_SECRET,
        ATELIER_WEBHOOK_MAX_BACKOFF_S="1",
    )
    server.start()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        server.stop()


def listener_url(server: AtelierServer) -> str:
    return f"http://127.0.0.1:{server.extra_env['ATELIER_METRICS_PORT']}/metrics"


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def scrape(server: AtelierServer) -> Samples:
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.get(listener_url(server))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=")
    return parse(r.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def yjs(server: AtelierServer, user: str, room: str, doc: str, token: str | None = None) -> str:
    return f"{server.ws_url}/yjs/{room}/{doc}?token={token or server.token(user)}"


async def test_real_traffic_moves_the_numbers(node: AtelierServer, receiver: Receiver) -> None:
    before = await scrape(node)
    room, doc = "2nde-a-g1", "metrics-rapport"
    lea = await YClient(yjs(node, "s-01", room, doc)).connect()
    hugo = await YClient(yjs(node, "s-02", room, doc)).connect()
    teacher = LiveClient(f"{node.ws_url}/rooms/2nde-a/live?token={node.token('t-martin')}")
    await teacher.connect()
    for ch in "Bonjour":
        await lea.type(ch)
    await eventually(lambda: hugo.content() == "Bonjour")
    during = await scrape(node)
    # Gauges read at scrape time: these sockets, this doc.
    assert value(during, "atelier_sockets", endpoint="yjs", role="student") == 2
    assert value(during, "atelier_sockets", endpoint="live", role="teacher") == 1
    assert value(during, "atelier_docs_loaded") >= 1
    assert value(during, "atelier_rooms_loaded") >= 1

    # A chat message, a refused socket (bad token: 4401), a notification to a class.
    chat = LiveClient(f"{node.ws_url}/rooms/2nde-a-g2/live?token={node.token('s-07')}")
    await chat.connect()
    assert (await chat.request({"t": "post", "text": "Salut la classe"}))["t"] == "ok"
    await chat.close()
    intruder = await YClient(yjs(node, "s-01", room, doc, token="not-a-token")).connect(
        wait_synced=False
    )
    assert await intruder.wait_closed() == 4401
    # An admin revokes the token of a socket: it closes with 4401 too.
    stolen = node.token("s-04")
    revoked = await YClient(yjs(node, "s-04", room, doc, token=stolen)).connect()
    jti = jwt.decode(stolen, options={"verify_signature": False})["jti"]
    async with httpx.AsyncClient(base_url=node.http_url, timeout=20) as http:
        r = await http.post(
            "/api/admin/revocations",
            json={"jti": jti},
            headers={"Authorization": f"Bearer {node.token('a-admin')}"},
        )
    assert r.status_code == 200 and r.json()["closed_here"] == 1, r.text
    assert await revoked.wait_closed() == 4401
    big = await YClient(yjs(node, "s-03", room, doc)).connect()  # default limit: 2 MiB
    # uvicorn closes with 1009 as soon as the frame's header announces its size, so the
    # rest of our send may meet a reset socket and the close frame may never reach us:
    # the server's count of 1009 closes (below) is what this checks.
    with contextlib.suppress(ConnectionError, websockets.ConnectionClosed):
        await big.send_raw(update_frame(b"\x00" * (2 * 1024 * 1024 + 16)))
    await big.wait_closed()
    due = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    async with httpx.AsyncClient(
        base_url=node.http_url,
        headers={"Authorization": f"Bearer {node.token('t-martin')}"},
        timeout=20,
    ) as http:
        r = await http.post(
            "/api/classes/2nde-a/assignments",
            json={"title": "Mesurer", "due_at": due, "target": "class"},
        )
    assert r.status_code == 201, r.text
    await eventually(lambda: len(receiver.taken) >= 31, timeout=30)  # 30 students + p-01

    async def settled() -> bool:
        now = await scrape(node)
        return (
            value(now, "atelier_notifications_total", channel="webhook", outcome="sent")
            >= (
                value(before, "atelier_notifications_total", channel="webhook", outcome="sent") + 31
            )
            and value(now, "atelier_writer_queue_depth") == 0
        )

    await eventually(settled, timeout=15)
    after = await scrape(node)
    for c in (lea, hugo, teacher):
        await c.close()

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # Seven keystrokes from Léa (plus the assignment's own doc writes), each fanned out
    # to Hugo: updates in, bytes in, frames and bytes out, one apply and one fan-out each.
    assert moved("atelier_doc_updates_received_total", origin="client") >= 7
    assert moved("atelier_doc_update_bytes_received_total", origin="client") >= 7 * 10
    assert moved("atelier_doc_frames_sent_total") >= 7
    assert moved("atelier_doc_bytes_sent_total") >= 7 * 10
    # They left by the direct path: never more writes than frames (coalesced per turn).
    assert moved("atelier_direct_frames_sent_total") >= 7
    assert 1 <= moved("atelier_direct_writes_total") <= moved("atelier_direct_frames_sent_total")
    assert moved("atelier_doc_apply_seconds_count", origin="client") >= 7
    assert moved("atelier_doc_fanout_seconds_count", origin="client") >= 7
    assert moved("atelier_doc_apply_seconds_bucket", origin="client", le="+Inf") >= 7
    assert moved("atelier_doc_apply_seconds_sum", origin="client") > 0
    assert moved("atelier_doc_updates_received_total", origin="bus") == 0  # one node
    # Stored by the write-behind queue, in timed group commits.
    assert moved("atelier_writer_committed_updates_total") >= 7
    assert moved("atelier_writer_commit_seconds_count") >= 1
    assert moved("atelier_bus_publish_lag_seconds_count") >= 1
    assert moved("atelier_socket_closes_total", code="4401") == 2  # the intruder, the revoked
    assert moved("atelier_revocations_total", outcome="closed") == 1
    assert moved("atelier_revocations_total", outcome="regraded") == 0
    assert moved("atelier_socket_closes_total", code="1009") == 1
    assert moved("atelier_socket_closes_total", code="4403") == 0
    assert moved("atelier_chat_posts_total", role="student") == 1
    assert moved("atelier_chat_posts_total", role="teacher") == 0
    assert moved("atelier_notifications_total", channel="feed", outcome="sent") >= 31
    assert moved("atelier_notifications_total", channel="feed", outcome="failed") == 0
    assert moved("atelier_notifications_total", channel="webhook", outcome="failed") == 2
    assert value(after, "process_resident_memory_bytes") > 10_000_000
    # The serving process set its collector up (server/heap.py): collections are timed.
    assert value(after, "atelier_gc_pause_seconds_count", generation="0") >= 1
    assert value(after, "atelier_gc_pause_seconds_bucket", generation="0", le="+Inf") >= 1
    # No room id, user id or doc name ever becomes a label.
    labels = {v for (_, ls) in after for _, v in ls}
    for word in (room, doc, "s-01", "2nde-a", "t-martin"):
        assert not any(word in v for v in labels), word

    # The listeners close when the sockets do: the gauges come back down.
    async def gone() -> bool:
        now = await scrape(node)
        return value(now, "atelier_sockets") == 0

    await eventually(gone, timeout=10)


async def test_the_serving_port_answers_the_token_bearer_only(node: AtelierServer) -> None:
    url = f"{node.http_url}/metrics"
    token = node.extra_env["ATELIER_METRICS_TOKEN"]
    async with httpx.AsyncClient(timeout=10) as http:
        anonymous = await http.get(url)
        wrong = await http.get(url, headers={"Authorization": "Bearer " + "x" * len(token)})
        basic = await http.get(url, headers={"Authorization": f"Basic {token}"})
        right = await http.get(url, headers={"Authorization": f"Bearer {token}"})
    for refused in (anonymous, wrong, basic):
        assert refused.status_code == 401
        assert refused.json()["error"] == "unauthenticated"
        assert "atelier_" not in refused.text
    assert right.status_code == 200
    assert value(parse(right.text), "atelier_docs_loaded") >= 0
    assert "atelier_sockets" in right.text


async def test_without_a_token_the_public_path_does_not_exist(tmp_path: Path) -> None:
    server = make_server(tmp_path)  # the defaults: no METRICS_PORT, no METRICS_TOKEN
    server.start()
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            r = await http.get(f"{server.http_url}/metrics")
            bearer = await http.get(
                f"{server.http_url}/metrics", headers={"Authorization": "Bearer anything"}
            )
        assert r.status_code == 404 and r.json()["error"] == "not_found"
        assert bearer.status_code == 404
        assert "atelier_" not in r.text + bearer.text
    finally:
        server.stop()


def raw_request(port: int, data: bytes, timeout: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(data)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


async def test_the_listener_answers_only_get_metrics(node: AtelierServer) -> None:
    port = int(node.extra_env["ATELIER_METRICS_PORT"])

    def status(data: bytes) -> bytes:
        return raw_request(port, data).split(b"\r\n", 1)[0]

    ok = await asyncio.to_thread(raw_request, port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert ok.startswith(b"HTTP/1.1 200 ") and b"atelier_docs_loaded" in ok
    head = await asyncio.to_thread(raw_request, port, b"HEAD /metrics HTTP/1.1\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and head.endswith(b"\r\n\r\n")
    assert (await asyncio.to_thread(status, b"GET / HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 404")
    assert (await asyncio.to_thread(status, b"POST /metrics HTTP/1.1\r\n\r\n")).endswith(
        b"405 Method Not Allowed"
    )
    # A head past 8 KiB, or bytes that never form one: 400, and the node keeps serving.
    huge = b"GET /metrics HTTP/1.1\r\nX-Pad: " + b"a" * 20_000 + b"\r\n\r\n"
    assert (await asyncio.to_thread(status, huge)).startswith(b"HTTP/1.1 400")
    assert (await asyncio.to_thread(status, b"\x00\xff garbage")).startswith(b"HTTP/1.1 400")
    assert (await scrape(node))[("atelier_docs_loaded", ())] >= 0


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads: our prefixes, outside braces and quotes."""
    bare = re.sub(r"\{[^}]*\}", "", re.sub(r'"[^"]*"', "", expr))
    return set(re.findall(r"\b((?:atelier|process|python)_[a-z0-9_]+)\b", bare))


def test_metric_names_are_read_from_exprs() -> None:
    expr = 'histogram_quantile(0.99, sum by (le) (rate(atelier_x_bucket{a="atelier_no"}[5m])))'
    assert metric_names(expr) == {"atelier_x_bucket"}
    assert metric_names("process_open_fds + atelier_y_total") == {
        "process_open_fds",
        "atelier_y_total",
    }


async def test_every_dashboard_expression_names_an_exported_metric(node: AtelierServer) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    variables = [v["definition"] for v in dashboard["templating"]["list"] if v.get("definition")]
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(listener_url(node))).text
    exported: set[str] = set()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    for family in text_string_to_metric_families(text):
        exported |= {s.name for s in family.samples}
        # A labelled counter with no child yet (no refusal so far) has no sample: its
        # name is still exported, by its HELP and TYPE lines.
        exported |= {family.name + s for s in suffixes.get(family.type, ("",))}
    named = set().union(*(metric_names(e) for e in exprs + variables))
    assert len(exprs) >= 20 and len(named) >= 20
    missing = sorted(named - exported)
    assert missing == [], f"the dashboard reads metrics no node exports: {missing}"
    # And each family the node declares is on the dashboard (process_* and python_* aside).
    ours = {f.name for f in text_string_to_metric_families(text) if f.name.startswith("atelier_")}
    shown = {n for n in named if n.startswith("atelier_")}
    unshown = sorted(f for f in ours if not any(s.startswith(f) for s in shown))
    assert unshown == [], f"metrics no panel shows: {unshown}"


def test_a_metrics_port_already_taken_stops_the_node(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = make_server(tmp_path, ATELIER_METRICS_PORT=str(port))
        with pytest.raises(RuntimeError, match="exited early"):
            server.start()
        assert "address already in use" in server.log().lower()
