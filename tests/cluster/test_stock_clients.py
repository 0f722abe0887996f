"""Stock y-websocket providers spread over three nodes tell the whole co-editing story."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.integration.test_collab import check_story, story_config
from tests.support.cluster import Cluster, cluster
from tests.support.node import run_node

pytestmark = [pytest.mark.integration, pytest.mark.interop]

GROUP_1 = [f"s-{n:02d}" for n in range(1, 7)]


async def test_six_stock_clients_on_three_nodes_converge(three_nodes: Cluster) -> None:
    config = {
        # c1 and c4 on node-1, c2 and c5 on node-2, c3 and c6 on node-3
        "url": ",".join(f"{node.ws_url}/yjs" for node in three_nodes.nodes),
        "room": "2nde-a-g1",
        "doc": f"interop-{uuid.uuid4().hex[:8]}",
        "tokens": [three_nodes.token(user) for user in GROUP_1],
        "inserts": 20,
        "offlineInserts": 5,
        "timeoutMs": 20_000,
        "idleMs": 0,
    }
    code, stdout, stderr = await run_node("coedit.mjs", config, timeout=180)
    if code != 0:
        pytest.fail(f"the stock clients' story failed across nodes (exit {code}):\n{stderr}")
    report = json.loads(stdout)
    assert report["ok"] is True
    assert all(phase["ok"] for phase in report["phases"].values()), report["phases"]
    assert report["phases"]["awareness"]["statesPerClient"] == 6  # cursors cross nodes
    assert report["final"]["tokens"] == 6 * 20 + 5 + 5 * 5
    assert report["phases"]["lateJoiner"]["textLength"] == report["final"]["textLength"]


async def test_hocuspocus_and_y_websocket_clients_on_two_nodes(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A Hocuspocus provider on node 1, y-websocket clients on node 2: edits, cursors,
    read-only and refusals cross the bus as on one node (tests/interop/hocus_story.mjs)."""
    with cluster(tmp_path_factory.mktemp("cluster"), 2) as two:
        one, other = two.nodes
        config = story_config(one, other, "@hocuspocus/provider")
        code, stdout, stderr = await run_node("hocus_story.mjs", config, timeout=90)
    if code != 0:
        pytest.fail(f"the Hocuspocus story failed across nodes (exit {code}):\n{stderr}")
    check_story(json.loads(stdout))
