"""An update's origin decides where it goes (``RoomRegistry.integrate``): a CLIENT's is
fanned out, stored by its node and published; one from the BUS is applied and shown,
never stored again; one from the STORE is applied only."""

from __future__ import annotations

from server.persistence.docs import DocStore
from server.types import UpdateOrigin
from tests.rooms.conftest import DOC, KEY, ROOM, TEACHER, Cluster, content_of, edits, text_of
from tests.support.inproc import until


async def test_an_edit_on_a_reaches_b_and_is_stored_once_by_a(cluster: Cluster) -> None:
    a, b = await cluster.node("A"), await cluster.node("B")
    on_a = a.socket(await a.open())
    also_on_a = a.socket(await a.open(), "s-02")
    on_b = b.socket(await b.open(), "t-01", TEACHER)

    on_a.type("Il était une fois")
    assert also_on_a.content == "Il était une fois"  # the same node: at once
    await until(lambda: on_b.content == "Il était une fois", "the edit reaches B")
    assert b.registry.writer.pending_for(ROOM, DOC) == 0  # B queued nothing to store

    await a.flush()
    await b.flush()
    assert (await cluster.stored()).updates == on_a.sent  # one row, the very bytes sent
    assert a.store.appended == [(ROOM, DOC, on_a.sent[0], on_a.user)]
    assert b.store.appended == []


async def test_a_bus_update_is_applied_and_shown_never_stored_nor_relayed(
    cluster: Cluster,
) -> None:
    a, b = await cluster.node("A"), await cluster.node("B")
    live_b = await b.open()
    on_a = a.socket(await a.open())
    on_b = b.socket(live_b, "t-01", TEACHER)
    (update,) = edits("écrit sur un autre nœud")

    b.registry.integrate(live_b, update, UpdateOrigin.BUS)

    assert on_b.content == "écrit sur un autre nœud"  # fanned out to B's sockets at once
    assert b.registry.writer.pending_for(ROOM, DOC) == 0
    # An edit made on B afterwards reaches A alone: had B relayed the bus update, the
    # outbox (first in, first out) would have carried it to A first.
    on_b.type("titre", into="title")
    await until(lambda: str(on_a.title) == "titre", "B's next edit reaches A")
    assert on_a.content == ""
    await b.flush()
    assert b.store.appended == [(ROOM, DOC, on_b.sent[0], on_b.user)]
    assert (await cluster.stored()).updates == on_b.sent


async def test_a_load_applies_the_stored_doc_and_stores_nothing_again(cluster: Cluster) -> None:
    store = DocStore(cluster.engine)
    first, second = edits("Il était ", "une fois")
    await store.append([(ROOM, DOC, first, "s-01")])
    await store.compact(ROOM, DOC)  # the first part is in the snapshot,
    await store.append([(ROOM, DOC, second, "s-01")])  # the second still in the log
    await store.set_locked(ROOM, DOC, True)
    a = await cluster.node("A")

    live = await a.open()

    assert text_of(live) == "Il était une fois"
    assert live.locked
    assert live.log_size == 1
    assert live.bus_updates == 0
    assert a.registry.writer.pending_for(ROOM, DOC) == 0
    teacher = a.socket(live, "t-01", TEACHER)
    assert teacher.content == "Il était une fois"  # what a socket gets at its opening
    await a.flush()
    assert a.store.appended == []
    stored = await cluster.stored()
    assert stored.updates == [second]
    assert content_of(stored.as_update()) == "Il était une fois"
    assert a.registry.docs.get(KEY) is live
