"""The room channel across real nodes on one Redis: chat order, presence, purge."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from tests.support.cluster import Cluster
from tests.support.liveclient import LiveClient
from tests.support.server import AtelierServer
from tests.support.yclient import eventually

pytestmark = pytest.mark.integration


def live(node: AtelierServer, user: str, room: str = "2nde-a") -> str:
    return f"{node.ws_url}/rooms/{room}/live?token={node.token(user)}"


async def test_chat_one_order_exactly_once_across_nodes(three_nodes: Cluster) -> None:
    n1, n2, n3 = three_nodes.nodes
    # Five students post at once from two nodes; readers sit on all three.
    writers = [
        await LiveClient(live(n1 if i % 2 else n2, f"s-{i:02d}")).connect() for i in range(1, 6)
    ]
    readers = [
        await LiveClient(live(n, f"s-{10 + k:02d}")).connect() for k, n in enumerate((n1, n2, n3))
    ]
    teacher = await LiveClient(live(n3, "t-martin")).connect()

    async def burst(client: LiveClient, name: str) -> None:
        for i in range(5):
            await client.send({"t": "post", "text": f"{name}-{i}"})
            await asyncio.sleep(0.01)

    await asyncio.gather(*(burst(w, f"w{k}") for k, w in enumerate(writers)))
    everyone = [*writers, *readers, teacher]
    await eventually(lambda: all(len(c.messages) == 25 for c in everyone), timeout=15)
    for c in everyone:
        assert c.order == list(range(1, 26)), c.url  # each seq once, in order
        assert c.texts() == everyone[0].texts()

    # A deletion by the teacher on node 3 reaches everybody.
    target = next(iter(readers[0].messages))
    assert (await teacher.request({"t": "delete", "id": target}))["t"] == "ok"
    await eventually(lambda: all(c.messages[target]["deleted"] for c in everyone))
    # A mute on node 3 binds the student on node 1.
    assert (await teacher.request({"t": "mute", "user": "s-01"}))["t"] == "ok"
    # node-1 records the mute and then tells its sockets, in one step: no wait needed.
    await eventually(lambda: any(f["user"] == "s-01" for f in writers[0].of_type("muted")))
    assert (await writers[0].request({"t": "post", "text": "chut"}))["code"] == "muted"
    for c in everyone:
        await c.close()


async def test_presence_across_nodes_and_purge_after_sigkill(three_nodes: Cluster) -> None:
    n1, n2, _ = three_nodes.nodes
    here = await LiveClient(live(n2, "s-02")).connect()
    tab1 = await LiveClient(live(n1, "s-01")).connect()
    tab2 = await LiveClient(live(n2, "s-01")).connect()  # the same student, another node
    await eventually(lambda: here.online() == {"s-01": 2, "s-02": 1})
    late = await LiveClient(live(n2, "s-03")).connect()
    assert late.online().get("s-01") == 2  # the hello's state includes the other node
    await tab1.send({"t": "presence", "doc": "rapport", "typing": True})
    await eventually(
        lambda: any(m["typing"] for m in here.presence["s-01"]["metas"].values()), timeout=5
    )
    n1.stop(signal.SIGKILL)
    killed = time.monotonic()
    await eventually(lambda: here.online().get("s-01") == 1, timeout=30)
    assert time.monotonic() - killed < 30
    assert late.online().get("s-01") == 1  # tab 2, on the living node, is still there
    for c in (here, tab2, late):
        await c.close()
