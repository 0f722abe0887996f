"""Several real nodes on one real Redis and one PostgreSQL: rooms shared across nodes."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time

import pytest
import websockets
from pycrdt import Text

from tests.support.cluster import Cluster
from tests.support.liveclient import LiveClient
from tests.support.server import AtelierServer
from tests.support.stored import stored_text
from tests.support.yclient import YClient, eventually

pytestmark = pytest.mark.integration

ROOM = "2nde-a-g1"


def url(node: AtelierServer, user: str, doc: str) -> str:
    return f"{node.ws_url}/yjs/{ROOM}/{doc}?token={node.token(user)}"


async def _stored_is(cluster: Cluster, doc: str, text: str) -> bool:
    return await stored_text(cluster.database_url, ROOM, doc) == text


async def test_edits_and_cursors_travel_between_nodes(three_nodes: Cluster) -> None:
    n1, n2, n3 = three_nodes.nodes
    a = await YClient(url(n1, "s-01", "croise")).connect()
    b = await YClient(url(n2, "s-02", "croise")).connect()
    await a.type("Bonjour de node-1. ")
    await eventually(lambda: b.content() == "Bonjour de node-1. ")
    await b.type("Réponse de node-2.")
    await eventually(lambda: a.content() == b.content() == "Bonjour de node-1. Réponse de node-2.")

    await a.set_awareness(1, {"user": {"name": "Léa"}})
    await eventually(lambda: b.awareness.get(a.doc.client_id) == {"user": {"name": "Léa"}})

    # A third node loads the doc while the others hold it: database + anti-entropy.
    c = await YClient(url(n3, "s-03", "croise")).connect()
    await eventually(lambda: c.content() == a.content())
    await eventually(lambda: a.doc.client_id in c.awareness)  # cursors of the other nodes
    await a.close()
    await eventually(lambda: a.doc.client_id not in b.awareness)
    await eventually(lambda: a.doc.client_id not in c.awareness)
    await b.close()
    await c.close()


async def test_a_lock_set_on_one_node_binds_students_on_another(three_nodes: Cluster) -> None:
    import httpx

    n1, n2, _ = three_nodes.nodes
    student = await YClient(url(n2, "s-01", "verrou")).connect()
    teacher = await YClient(url(n1, "t-martin", "verrou")).connect()
    # The student's room channel, on the student's node: it shows the lock.
    channel = await LiveClient(f"{n2.ws_url}/rooms/{ROOM}/live?token={n2.token('s-01')}").connect()
    await student.type("avant")
    await eventually(lambda: teacher.content() == "avant")
    async with httpx.AsyncClient() as http:
        r = await http.put(
            f"{n1.http_url}/api/rooms/{ROOM}/docs/verrou/lock",
            json={"locked": True},
            headers={"Authorization": f"Bearer {n1.token('t-martin')}"},
        )
        assert r.status_code == 200
    # node-1 publishes the lock to the doc's topic, then the room's doc_locked event, in
    # one ordered batch; node-2 handles its bus messages in order: once the event is on
    # the student's channel, node-2's copy of the doc is locked.
    await eventually(
        lambda: any(
            f["kind"] == "doc_locked" and f["doc"] == "verrou" and f["locked"]
            for f in channel.of_type("event")
        )
    )
    await student.type(" interdit")
    await student.round_trip()  # the edit was handled, the refusal is here
    assert len(student.denied) == 1
    # Barrier across the nodes: an awareness update (readers may send one) that the
    # student's node handles after the refused edit reaches the teacher after anything
    # that node relayed before it.
    await student.set_awareness(1, {"user": {"name": "Léa"}})
    await eventually(lambda: student.doc.client_id in teacher.awareness)
    assert teacher.content() == "avant"
    await channel.close()
    await student.close()
    await teacher.close()


async def _keep_typing(client: YClient, mark: str, stop: asyncio.Event, typed: list[str]) -> None:
    i = 0
    with contextlib.suppress(websockets.ConnectionClosed):
        while not stop.is_set() and not client.closed.is_set() and i < 2000:
            token = f"{mark}{i:03d}|"
            await client.type(token)
            typed.append(token)
            i += 1
            await asyncio.sleep(0.01)


async def test_redis_restart_mid_typing_converges_and_loses_nothing(three_nodes: Cluster) -> None:
    n1, n2, n3 = three_nodes.nodes
    a = await YClient(url(n1, "s-01", "panne")).connect()
    b = await YClient(url(n2, "s-02", "panne")).connect()
    c = await YClient(url(n3, "s-03", "panne")).connect()
    stop = asyncio.Event()
    typed_a: list[str] = []
    typed_b: list[str] = []
    typing = [
        asyncio.create_task(_keep_typing(a, "A", stop, typed_a)),
        asyncio.create_task(_keep_typing(b, "B", stop, typed_b)),
    ]
    await eventually(lambda: len(typed_a) > 20 and len(typed_b) > 20, timeout=10)

    three_nodes.redis.stop()  # the bus goes away while both keep typing
    await asyncio.sleep(2.0)
    three_nodes.redis.start()
    back = time.monotonic()
    await asyncio.sleep(1.0)
    stop.set()
    await asyncio.gather(*typing)

    def converged() -> bool:
        return a.content() == b.content() == c.content()

    await eventually(converged, timeout=10)
    assert time.monotonic() - back < 10
    final = a.content()
    assert all(t in final for t in typed_a) and all(t in final for t in typed_b)
    for client in (a, b, c):
        await client.close()

    # And it is all in the database: read it there, then restart and read it back.
    await eventually(lambda: _stored_is(three_nodes, "panne", final))
    three_nodes.stop_all()
    n1.start()
    fresh = await YClient(url(n1, "s-04", "panne")).connect()
    assert fresh.content() == final
    await fresh.close()


async def test_dead_node_cursors_vanish_within_30_s(three_nodes: Cluster) -> None:
    n1, n2, _ = three_nodes.nodes
    doomed = await YClient(url(n1, "s-01", "fantome")).connect()
    witness = await YClient(url(n2, "s-02", "fantome")).connect()
    await doomed.set_awareness(1, {"user": {"name": "Léa"}})
    await eventually(lambda: doomed.doc.client_id in witness.awareness)
    # The witness keeps its own state fresh meanwhile, as a real client does every 15 s.
    n1.stop(signal.SIGKILL)
    killed = time.monotonic()
    for clock in range(2, 12):
        if doomed.doc.client_id not in witness.awareness:
            break
        await witness.set_awareness(clock, {"user": {"name": "Hugo"}})
        await asyncio.sleep(3)
    await eventually(lambda: doomed.doc.client_id not in witness.awareness, timeout=5)
    assert time.monotonic() - killed < 30
    await witness.close()


async def test_sigkill_mid_typing_clients_move_to_other_nodes_nothing_lost(
    three_nodes: Cluster,
) -> None:
    n1, n2, n3 = three_nodes.nodes
    typist = await YClient(url(n1, "s-01", "bascule")).connect()
    watcher = await YClient(url(n2, "s-02", "bascule")).connect()
    stop = asyncio.Event()
    typed: list[str] = []
    typing = asyncio.create_task(_keep_typing(typist, "T", stop, typed))
    await eventually(lambda: len(typed) > 50, timeout=10)
    n1.stop(signal.SIGKILL)
    await typing
    # The typist's tab reconnects to another node with its local doc, as a provider does.
    again = YClient(url(n3, "s-01", "bascule"))
    again.doc = typist.doc
    again.text = again.doc.get("content", type=Text)
    await again.connect()
    await eventually(lambda: watcher.content() == typist.content(), timeout=10)
    assert all(t in watcher.content() for t in typed)
    await again.close()
    await watcher.close()
    final = typist.content()
    await eventually(lambda: _stored_is(three_nodes, "bascule", final))
    three_nodes.stop_all()
    n2.start()
    fresh = await YClient(url(n2, "s-05", "bascule")).connect()
    assert fresh.content() == final
    await fresh.close()
