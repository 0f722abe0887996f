"""The bus's metrics on two real nodes sharing a real Redis and PostgreSQL: updates that
crossed the bus, a Redis restart (reconnects, failed sends), and the anti-entropy diffs
that repair what the bus lost meanwhile."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.cluster import Cluster
from tests.support.server import AtelierServer, free_port
from tests.support.services import postgres_database, redis_server
from tests.support.yclient import YClient, eventually

pytestmark = pytest.mark.integration

ROOM = "2nde-a-g1"


@pytest.fixture
def two_nodes(tmp_path: Path) -> Iterator[Cluster]:
    """Two nodes, each with its own metrics port; anti-entropy every 2 s so that a repair
    the reconnect's own round missed comes soon."""
    with redis_server() as redis, postgres_database("atelier_m") as db_url:
        c = Cluster(tmp_path, redis, db_url)
        for name in ("node-1", "node-2"):
            c.add_node(
                name, ATELIER_METRICS_PORT=str(free_port()), ATELIER_ANTIENTROPY_INTERVAL_S="2"
            )
        c.nodes[0].prepare()
        try:
            for node in c.nodes:
                node.start()
            yield c
        finally:
            c.stop_all()


async def metric(node: AtelierServer, name: str, **labels: str) -> float:
    port = node.extra_env["ATELIER_METRICS_PORT"]
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    want = set(labels.items())
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and want <= set(s.labels.items())
    )


def url(node: AtelierServer, user: str, doc: str) -> str:
    return f"{node.ws_url}/yjs/{ROOM}/{doc}?token={node.token(user)}"


async def test_bus_updates_reconnects_and_repairs_are_counted(two_nodes: Cluster) -> None:
    n1, n2 = two_nodes.nodes
    lea = await YClient(url(n1, "s-01", "mesures")).connect()
    hugo = await YClient(url(n2, "s-02", "mesures")).connect()
    bus_before = await metric(n2, "atelier_doc_updates_received_total", origin="bus")
    for ch in "abc":
        await lea.type(ch)
    await eventually(lambda: hugo.content() == "abc")
    # Node 2 got Léa's keystrokes from the bus: applied, fanned out to Hugo, not stored.
    assert await metric(n2, "atelier_doc_updates_received_total", origin="bus") >= bus_before + 3
    assert await metric(n2, "atelier_doc_apply_seconds_count", origin="bus") >= 3
    assert await metric(n2, "atelier_doc_fanout_seconds_count", origin="bus") >= 3
    assert await metric(n2, "atelier_doc_update_bytes_received_total", origin="bus") > 0
    assert await metric(n1, "atelier_bus_publish_lag_seconds_count") >= 1
    for node in (n1, n2):
        assert await metric(node, "atelier_bus_reconnects_total") == 0

    # Redis goes away; Léa types on; her node cannot publish. Redis comes back.
    two_nodes.redis.stop()
    await asyncio.sleep(0.5)
    for ch in "def":
        await lea.type(ch)
        await asyncio.sleep(0.1)
    await asyncio.sleep(2.0)  # past the client's retries: those publishes failed
    two_nodes.redis.start()

    async def reconnected() -> bool:
        return all([await metric(n, "atelier_bus_reconnects_total") >= 1 for n in (n1, n2)])

    await eventually(reconnected, timeout=20)
    # What the bus lost came back through anti-entropy (state vectors, then a diff).
    await eventually(lambda: hugo.content() == "abcdef", timeout=20)
    received = sum(
        [await metric(n, "atelier_antientropy_diffs_total", direction="received") for n in (n1, n2)]
    )
    sent = sum(
        [await metric(n, "atelier_antientropy_diffs_total", direction="sent") for n in (n1, n2)]
    )
    assert received >= 1 and sent >= 1
    assert await metric(n1, "atelier_bus_send_failures_total") >= 1
    for client in (lea, hugo):
        await client.close()
