"""The diff between two rosters, and who loses access to what (pure: no database)."""

from __future__ import annotations

from dataclasses import replace

from server.roster import diff as diffs
from server.roster.diff import Lowered, Why
from server.roster.formats import Group, Membership, ParentLink, SchoolClass, User
from server.types import Role
from tests.roster.rosters import demo_snapshot, edit, moved, new_class

DEMO = demo_snapshot()
G = [f"2nde-a-g{i}" for i in range(1, 6)]


def lowered(new):  # type: ignore[no-untyped-def]
    d = diffs.compute(DEMO, new)
    return {lw.user_id: lw for lw in diffs.lowered(DEMO, new, d)}


def test_the_same_roster_is_an_empty_diff() -> None:
    d = diffs.compute(DEMO, demo_snapshot())
    assert d.empty
    assert d.counts() == {
        kind: {"added": 0, "changed": 0, "removed": 0}
        for kind in ("schools", "classes", "groups", "users", "memberships", "parent_links")
    }
    assert diffs.lowered(DEMO, DEMO, d) == ()


def test_a_new_class_is_added_rows_and_lowers_nobody() -> None:
    new = new_class(DEMO)
    d = diffs.compute(DEMO, new)
    assert d.counts() == {
        "schools": {"added": 0, "changed": 0, "removed": 0},
        "classes": {"added": 1, "changed": 0, "removed": 0},
        "groups": {"added": 2, "changed": 0, "removed": 0},
        "users": {"added": 5, "changed": 0, "removed": 0},
        "memberships": {"added": 7, "changed": 0, "removed": 0},
        "parent_links": {"added": 1, "changed": 0, "removed": 0},
    }
    assert d.restored == frozenset()
    assert diffs.lowered(DEMO, new, d) == ()


def test_renames_are_changes_with_the_new_values() -> None:
    lea = next(u for u in DEMO.users if u.id == "s-01")
    a = next(k for k in DEMO.classes if k.id == "2nde-a")
    new = edit(
        DEMO,
        drop=[lea, a],
        add=[replace(lea, name="Léa M."), replace(a, name="Seconde A (bis)")],
    )
    d = diffs.compute(DEMO, new)
    assert d.users.changed == (User("s-01", Role.STUDENT, "Léa M.", "demo"),)
    assert d.classes.changed == (SchoolClass("2nde-a", "demo", "Seconde A (bis)"),)
    assert d.counts()["users"] == {"added": 0, "changed": 1, "removed": 0}
    assert diffs.lowered(DEMO, new, d) == ()  # a name is no access


def test_a_move_between_groups_is_two_membership_changes_and_lowers_the_student() -> None:
    new = moved(DEMO, "s-01", G[0], G[1])
    d = diffs.compute(DEMO, new)
    assert d.memberships.added == (Membership("s-01", G[1]),)
    assert d.memberships.removed == (Membership("s-01", G[0]),)
    # Léa leaves her group; her parent keeps the class (parents see no group room).
    assert lowered(new) == {"s-01": Lowered("s-01", frozenset({G[0]}), frozenset({Why.LEFT_ROOM}))}


def test_a_move_to_another_class_lowers_the_parent_too() -> None:
    new = edit(
        DEMO,
        drop=[Membership("s-01", "2nde-a"), Membership("s-01", G[0])],
        add=[Membership("s-01", "1ere-b"), Membership("s-01", "1ere-b-g1")],
    )
    assert lowered(new) == {
        "s-01": Lowered("s-01", frozenset({"2nde-a", G[0]}), frozenset({Why.LEFT_ROOM})),
        "p-01": Lowered("p-01", frozenset({"2nde-a"}), frozenset({Why.CHILD_LEFT_ROOM})),
    }


def test_a_removed_user_loses_every_room() -> None:
    new = edit(DEMO, drop_users=["s-02", "a-admin"])
    d = diffs.compute(DEMO, new)
    assert [u.id for u in d.users.removed] == ["a-admin", "s-02"]
    assert d.counts()["memberships"]["removed"] == 2
    assert lowered(new) == {
        "s-02": Lowered("s-02", frozenset({"2nde-a", G[0]}), frozenset({Why.REMOVED})),
        # An admin has no room, and is listed all the same: they can no longer sign in.
        "a-admin": Lowered("a-admin", frozenset(), frozenset({Why.REMOVED})),
    }


def test_a_lost_parent_link() -> None:
    new = edit(DEMO, drop=[ParentLink("p-01", "s-01")])
    assert lowered(new) == {
        "p-01": Lowered("p-01", frozenset({"2nde-a"}), frozenset({Why.LOST_PARENT_LINK}))
    }


def test_a_role_change_concerns_every_room_the_user_had() -> None:
    durand = next(u for u in DEMO.users if u.id == "t-durand")
    new = edit(
        DEMO,
        drop=[durand, Membership("t-durand", "1ere-b")],
        add=[replace(durand, role=Role.ADMIN, school_id=None)],
    )
    found = lowered(new)
    assert found["t-durand"].reasons == frozenset({Why.ROLE_CHANGED})
    assert found["t-durand"].rooms == frozenset({"1ere-b", *(f"1ere-b-g{i}" for i in range(1, 6))})


def test_a_teacher_who_leaves_a_class_leaves_its_groups() -> None:
    new = edit(DEMO, drop=[Membership("t-martin", "2nde-a")])
    assert lowered(new) == {
        "t-martin": Lowered("t-martin", frozenset({"2nde-a", *G}), frozenset({Why.LEFT_ROOM}))
    }


def test_a_group_removed_or_moved_leaves_its_class_teachers() -> None:
    g5 = next(g for g in DEMO.groups if g.id == G[4])
    members = [m for m in DEMO.memberships if m.room_id == G[4]]
    removed = edit(DEMO, drop=[g5, *members])
    found = lowered(removed)
    assert found["t-martin"].rooms == frozenset({G[4]})
    assert found["s-25"].rooms == frozenset({G[4]})
    assert diffs.compute(DEMO, removed).counts()["groups"]["removed"] == 1
    # Moved to 1ere-b (its students with it): t-martin loses it, nobody else does.
    move = edit(DEMO, drop=[g5], add=[Group(G[4], "1ere-b", "Groupe 5")])
    assert set(lowered(move)) == {"t-martin"}


def test_a_user_removed_earlier_comes_back_as_added_and_restored() -> None:
    current = edit(DEMO, drop_users=["s-02"])
    d = diffs.compute(current, DEMO, removed={"s-02"})
    assert [u.id for u in d.users.added] == ["s-02"]
    assert d.restored == frozenset({"s-02"})
    assert diffs.lowered(current, DEMO, d) == ()


def test_lowered_json() -> None:
    lw = Lowered("s-01", frozenset({G[1], G[0]}), frozenset({Why.LEFT_ROOM}))
    assert lw.to_json() == {"user_id": "s-01", "rooms": G[:2], "reasons": ["left_room"]}
