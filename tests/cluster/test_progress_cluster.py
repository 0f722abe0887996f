"""Attribution across two nodes on Redis and PostgreSQL: the same figures on each node,
and a client id bound on one node cannot be claimed on the other."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from pycrdt import Doc, Text

from tests.support.cluster import Cluster, cluster
from tests.support.yclient import YClient, eventually

pytestmark = pytest.mark.integration

ROOM, DOC = "2nde-a-g1", "expose"


@pytest.fixture
def two_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with cluster(tmp_path_factory.mktemp("progress"), 2) as c:
        yield c


def ws(c: Cluster, node: int, user: str) -> str:
    return f"{c.nodes[node].ws_url}/yjs/{ROOM}/{DOC}?token={c.token(user)}"


async def figures(c: Cluster, node: int) -> dict[str, dict]:
    async with httpx.AsyncClient(base_url=c.nodes[node].http_url) as http:
        r = await http.get(
            f"/api/rooms/{ROOM}/docs/{DOC}/contributions",
            headers={"Authorization": f"Bearer {c.token('t-martin')}"},
        )
    assert r.status_code == 200, r.text
    return {u["id"]: u for u in r.json()["users"]}


async def test_figures_agree_across_nodes_and_a_forger_on_the_other_node_gains_nothing(
    two_nodes: Cluster,
) -> None:
    lea = await YClient(ws(two_nodes, 0, "s-01")).connect()
    hugo = await YClient(ws(two_nodes, 1, "s-02")).connect()
    await lea.type("Introduction. ")  # 14 on node-1
    await eventually(lambda: hugo.content() == "Introduction. ")
    await hugo.type("Conclusion.")  # 11 on node-2
    await eventually(lambda: lea.content() == "Introduction. Conclusion.")

    want = {"s-01": 14, "s-02": 11}

    def inserted(got: dict[str, dict]) -> dict[str, int]:
        return {u: f["inserted"] for u, f in got.items()}

    for node in (0, 1):
        for _ in range(100):
            if inserted(await figures(two_nodes, node)) == want:
                break
            await asyncio.sleep(0.05)  # a poll of the node's figures, bounded: 100 × 50 ms
        assert inserted(await figures(two_nodes, node)) == want, node

    # Hugo, on node-2, claims the client id Léa's socket bound on node-1.
    forger = YClient(ws(two_nodes, 1, "s-02"))
    forger.doc = Doc(client_id=lea.doc.client_id)
    forger.text = forger.doc.get("content", type=Text)
    await forger.connect()
    await eventually(lambda: forger.content() == lea.content())
    await forger.type(" Plagiat.")
    await eventually(lambda: forger.denied != [])
    await hugo.round_trip()
    await lea.round_trip()
    assert "Plagiat" not in lea.content() and "Plagiat" not in hugo.content()
    for node in (0, 1):
        assert inserted(await figures(two_nodes, node)) == want
    for c in (lea, hugo, forger):
        await c.close()
