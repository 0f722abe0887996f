"""Presence (live/presence.py, live/room.py), as docs/protocol.md puts it: a user is a
key holding one meta per connection; clients get ``joins``/``leaves`` diffs; a changed
meta is a leave and a join of the same ``conn``; a node's entries are replaced or purged
as a whole; parents never see who is here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from server.live.presence import Meta
from tests.live.conftest import PARENT, TEACHER, Channel, Screen
from tests.support.inproc import until

Make = Callable[..., Channel]


def side(*metas: Meta) -> dict[str, Any]:
    """One side of a diff (``joins`` or ``leaves``), as the protocol shapes it."""
    users: dict[str, Any] = {}
    for m in metas:
        users.setdefault(m.user_id, {"name": m.name, "role": m.role, "metas": []})
        users[m.user_id]["metas"].append(m.wire())
    return users


def diff(joins: tuple[Meta, ...] = (), leaves: tuple[Meta, ...] = ()) -> dict[str, Any]:
    return {"joins": side(*joins), "leaves": side(*leaves)}


def meta_of(room: Channel, screen: Screen) -> Meta:
    meta = room.live.presence.get(screen.conn.conn_id)
    assert meta is not None
    return meta


def remote(conn: str, user: str, name: str, node: str = "B", doc: str | None = None) -> Meta:
    return Meta(conn, node, user, name, "student", 1700000000.0, doc)


async def test_arrivals_and_departures_are_joins_and_leaves(channel: Make) -> None:
    room = channel()
    tom = room.arrive("s-02", "Tom")
    tom_meta = meta_of(room, tom)

    lea = room.arrive("s-01", "Léa")
    lea_meta = meta_of(room, lea)
    second_tab = room.arrive("s-01", "Léa")  # two tabs: one person, two metas
    tab_meta = meta_of(room, second_tab)
    room.leave(second_tab)

    assert tom.diffs() == [
        diff(joins=(tom_meta,)),
        diff(joins=(lea_meta,)),
        diff(joins=(tab_meta,)),
        diff(leaves=(tab_meta,)),
    ]
    assert lea.diffs() == tom.diffs()[1:]
    assert len(room.live.presence.state()["users"]["s-01"]["metas"]) == 1
    assert room.published == [
        ("p_join", tom_meta.record()),
        ("p_join", lea_meta.record()),
        ("p_join", tab_meta.record()),
        ("p_leave", {"conn": second_tab.conn.conn_id}),
    ]
    assert lea_meta.record()["node"] == "A"


async def test_a_changed_meta_is_a_leave_and_a_join_of_the_same_conn(channel: Make) -> None:
    room = channel()
    tom = room.arrive("s-02", "Tom")
    lea = room.arrive("s-01", "Léa")
    before = meta_of(room, lea)
    room.published.clear()

    room.live.update_presence(lea.conn, "rapport", True)
    after = meta_of(room, lea)
    room.live.update_presence(lea.conn, "rapport", True)  # no change: nothing sent

    assert (after.conn, after.doc, after.typing) == (before.conn, "rapport", True)
    assert tom.diffs()[-1] == diff(joins=(after,), leaves=(before,))
    assert len(tom.diffs()) == 3
    assert room.published == [("p_join", after.record())]


async def test_other_nodes_metas_join_and_leave_by_node(channel: Make) -> None:
    room = channel()
    tom = room.arrive("s-02", "Tom")
    zoe = remote("b1", "s-03", "Zoé")

    room.live.remote_joined(zoe)
    room.live.remote_left("b1", "C")  # only its own node may take it away
    room.live.remote_left("b1", "B")

    assert tom.diffs()[1:] == [diff(joins=(zoe,)), diff(leaves=(zoe,))]
    assert room.published == [("p_join", meta_of(room, tom).record())]  # nothing relayed


async def test_a_node_s_full_state_replaces_its_entries(channel: Make) -> None:
    room = channel()
    tom = room.arrive("s-02", "Tom")
    tom_meta = meta_of(room, tom)
    zoe, ali = remote("b1", "s-03", "Zoé"), remote("b2", "s-04", "Ali")
    room.live.remote_state("B", [zoe, ali])
    zoe_moved, noe = remote("b1", "s-03", "Zoé", doc="annexe"), remote("b3", "s-05", "Noé")

    room.live.remote_state("B", [zoe_moved, noe])
    room.live.remote_state("B", [zoe_moved, noe])  # the same state again: nothing sent

    assert tom.diffs()[1:] == [
        diff(joins=(zoe, ali)),
        diff(joins=(zoe_moved, noe), leaves=(ali, zoe)),
    ]
    assert room.live.presence.get(tom_meta.conn) == tom_meta  # A's entries untouched


async def test_a_dead_node_s_entries_are_purged_and_only_those(channel: Make) -> None:
    room = channel()
    tom = room.arrive("s-02", "Tom")
    zoe, ali = remote("b1", "s-03", "Zoé"), remote("c1", "s-04", "Ali", node="C")
    room.live.remote_joined(zoe)
    room.live.remote_joined(ali)

    room.live.node_gone("B")
    room.live.node_gone("B")  # nothing left of B: nothing sent

    assert tom.diffs()[-1] == diff(leaves=(zoe,))
    assert len(tom.diffs()) == 4
    assert room.live.presence.nodes() == {"A", "C"}


async def test_parents_never_get_presence_frames(channel: Make) -> None:
    room = channel()
    parent = room.arrive("p-01", "M. Martin", "parent", PARENT)
    assert room.live.presence.get(parent.conn.conn_id) is None
    assert room.published == []  # a parent is never shown to anyone either

    lea = room.arrive("s-01", "Léa")
    teacher = room.arrive("t-01", "Mme Durand", "teacher", TEACHER)
    room.live.update_presence(lea.conn, "rapport", False)
    room.live.remote_joined(remote("b1", "s-03", "Zoé"))
    room.live.remote_state("B", [remote("b2", "s-04", "Ali")])
    room.live.node_gone("B")
    room.live.set_muted("s-01", True, "t-01", relay=False)
    room.leave(lea)
    room.live.event({"t": "event", "kind": "doc_locked", "doc": "rapport", "locked": True})

    assert [f["t"] for f in parent.frames] == ["event"]  # room events only
    assert len(teacher.diffs()) == 6
    assert [f["t"] for f in teacher.of_type("muted")] == ["muted"]


async def test_presence_updates_past_ten_a_second_are_coalesced_into_the_last(
    channel: Make,
) -> None:
    room = channel()
    tom = room.arrive("s-02", "Tom")
    lea = room.arrive("s-01", "Léa")
    docs = [f"page-{i}" for i in range(14)]

    for doc in docs:
        room.live.update_presence(lea.conn, doc, False)

    shown = [d["joins"]["s-01"]["metas"][0]["doc"] for d in tom.diffs()[2:]]
    assert shown == docs[:10]  # the burst
    await until(lambda: meta_of(room, lea).doc == docs[-1], "the last update, applied late")
    shown = [d["joins"]["s-01"]["metas"][0]["doc"] for d in tom.diffs()[2:]]
    assert shown == [*docs[:10], docs[-1]]
