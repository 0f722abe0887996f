"""Between nodes (rooms/relay.py): cursors travel and die with their node; replicas
that missed bus messages converge by anti-entropy; a replica secures what it got from
a node that died before storing it."""

from __future__ import annotations

from server.rooms.livedoc import DocState
from tests.rooms.conftest import DOC, ROOM, TEACHER, Cluster, content_of, text_of
from tests.support.inproc import until

LEA = {"user": {"name": "Léa", "color": "#c00"}, "cursor": 3}


async def test_a_cursor_on_a_shows_on_b_and_is_purged_when_a_dies(cluster: Cluster) -> None:
    a, b = await cluster.node("A"), await cluster.node("B")
    live_b = await b.open()
    on_a = a.socket(await a.open())
    on_b = b.socket(live_b, "t-01", TEACHER)

    on_a.here(LEA)
    await until(lambda: on_b.cursors.get(on_a.client_id) == LEA, "Léa's cursor on B")
    assert live_b.remote == {on_a.client_id: "A"}

    await cluster.kill(a)
    assert await b.watch.check() == {"A"}

    assert on_b.cursors[on_a.client_id] is None  # removed on B's screens
    assert live_b.remote == {}
    assert b.socket(live_b, "t-02", TEACHER).cursors == {}  # a newcomer sees no ghost
    assert await b.watch.check() == set()  # B depends on nobody now


async def test_a_socket_leaving_a_takes_its_cursor_away_on_b(cluster: Cluster) -> None:
    a, b = await cluster.node("A"), await cluster.node("B")
    live_b = await b.open()
    on_a = a.socket(await a.open())
    on_b = b.socket(live_b, "t-01", TEACHER)
    on_a.here(LEA)
    await until(lambda: on_b.cursors.get(on_a.client_id) == LEA, "Léa's cursor on B")

    on_a.leave()

    await until(lambda: on_b.cursors[on_a.client_id] is None, "the cursor removed on B")
    assert live_b.remote == {}


async def test_a_node_loading_the_doc_gets_the_cursors_already_there(cluster: Cluster) -> None:
    a, b = await cluster.node("A"), await cluster.node("B")
    on_a = a.socket(await a.open())
    on_a.here(LEA)

    live_b = await b.open()  # asks its peers (sync1); A answers with its cursors too

    await until(lambda: live_b.awareness.state(on_a.client_id) == LEA, "A's cursors on B")
    assert b.socket(live_b, "t-01", TEACHER).cursors == {on_a.client_id: LEA}


async def test_replicas_that_missed_bus_messages_converge_in_one_round(cluster: Cluster) -> None:
    a, b = await cluster.node("A"), await cluster.node("B")
    live_a, live_b = await a.open(), await b.open()
    on_a = a.socket(live_a)
    on_b = b.socket(live_b, "t-01", TEACHER)
    a.bus.losing = True
    on_a.type("perdu depuis A. ")
    await until(lambda: a.bus.lost, "A's publish lost")
    a.bus.losing, b.bus.losing = False, True
    on_b.type("Perdu depuis B.")
    await until(lambda: b.bus.lost, "B's publish lost")
    b.bus.losing = False
    assert on_a.content == "perdu depuis A. " and on_b.content == "Perdu depuis B."

    b.registry.relay.ask_peers(live_b)  # as after a bus reconnect, or on the timer

    await until(lambda: on_a.content == on_b.content, "both screens converge")
    assert "perdu depuis A. " in on_a.content and "Perdu depuis B." in on_a.content
    assert text_of(live_a) == text_of(live_b) == on_a.content
    await a.flush()
    await b.flush()
    # The repairs are bus updates: each edit is still stored once, by its own node.
    assert a.store.appended == [(ROOM, DOC, on_a.sent[0], on_a.user)]
    assert b.store.appended == [(ROOM, DOC, on_b.sent[0], on_b.user)]


async def test_the_periodic_round_repairs_a_lost_message_by_itself(cluster: Cluster) -> None:
    a = await cluster.node("A")
    b = await cluster.node("B", antientropy_interval_s=0.05)
    on_b = b.socket(await b.open(), "t-01", TEACHER)
    on_a = a.socket(await a.open())
    a.bus.losing = True
    on_a.type("perdu")
    await until(lambda: a.bus.lost, "A's publish lost")
    a.bus.losing = False

    await until(lambda: on_b.content == "perdu", "the periodic anti-entropy round")


async def test_a_replica_secures_the_edits_of_a_node_that_died_before_storing_them(
    cluster: Cluster,
) -> None:
    a = await cluster.node("A", flush_interval_ms=60_000)  # a long write-behind window
    b = await cluster.node("B")
    live_b = await b.open()
    on_a = a.socket(await a.open())
    on_b = b.socket(live_b, "t-01", TEACHER)
    on_a.type("pas encore écrit")
    await until(lambda: on_b.content == "pas encore écrit", "the edit reaches B")
    assert b.store.appended == []

    await cluster.kill(a)  # dies inside its window: its copy is lost
    assert await b.watch.check() == {"A"}
    await b.flush()

    assert a.store.appended == []  # A never wrote it
    assert len(b.store.appended) == 1  # B's whole state, once
    assert content_of((await cluster.stored()).as_update()) == "pas encore écrit"
    on_b.leave()
    await until(lambda: live_b.state is DocState.GONE, "B unloads")
    assert len(b.store.appended) == 1  # secured already: not appended again on unload
    assert content_of((await cluster.stored()).snapshot) == "pas encore écrit"
