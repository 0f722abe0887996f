"""Rosters for the tests: the demo school as a snapshot, and the edits a year brings."""

from __future__ import annotations

from collections.abc import Iterable

from server.persistence.models import (
    class_group_t,
    membership_t,
    parent_link_t,
    school_class_t,
    school_t,
    user_t,
)
from server.persistence.seed import demo_rows
from server.roster import formats
from server.roster.formats import (
    Group,
    Membership,
    ParentLink,
    School,
    SchoolClass,
    Snapshot,
    User,
)
from server.types import Role


def demo_snapshot() -> Snapshot:
    """The demo school (server/persistence/seed.py) in the file's terms."""
    rows = demo_rows()
    return formats.snapshot(
        [School(r["id"], r["name"]) for r in rows[school_t]],
        [SchoolClass(r["id"], r["school_id"], r["name"]) for r in rows[school_class_t]],
        [Group(r["id"], r["class_id"], r["name"]) for r in rows[class_group_t]],
        [User(r["id"], Role(r["role"]), r["display_name"], r["school_id"]) for r in rows[user_t]],
        [Membership(r["user_id"], r["room_id"]) for r in rows[membership_t]],
        [ParentLink(r["parent_id"], r["student_id"]) for r in rows[parent_link_t]],
    )


def edit(
    snap: Snapshot,
    *,
    add: Iterable[object] = (),
    drop: Iterable[object] = (),
    drop_users: Iterable[str] = (),
) -> Snapshot:
    """``snap`` with rows added and dropped (any kind), and users dropped with their
    memberships and parent links."""
    added = list(add)
    gone = set(drop)
    users_gone = set(drop_users)

    def keep(rows: Iterable[object], kind: type) -> list:  # type: ignore[type-arg]
        out = [r for r in rows if r not in gone and r not in added]
        return out + [r for r in added if isinstance(r, kind)]

    return formats.snapshot(
        keep(snap.schools, School),
        keep(snap.classes, SchoolClass),
        keep(snap.groups, Group),
        [u for u in keep(snap.users, User) if u.id not in users_gone],
        [m for m in keep(snap.memberships, Membership) if m.user_id not in users_gone],
        [
            p
            for p in keep(snap.parent_links, ParentLink)
            if p.parent_id not in users_gone and p.student_id not in users_gone
        ],
    )


def moved(snap: Snapshot, user: str, from_room: str, to_room: str) -> Snapshot:
    return edit(snap, add=[Membership(user, to_room)], drop=[Membership(user, from_room)])


def new_class(snap: Snapshot) -> Snapshot:
    """The demo school and a third class: 3e-c (teacher t-leroy), groups 3e-c-g1 (s-61,
    s-62) and 3e-c-g2 (s-63), parent p-02 of s-61."""
    rows: list[object] = [
        SchoolClass("3e-c", "demo", "Troisième C"),
        Group("3e-c-g1", "3e-c", "Groupe 1"),
        Group("3e-c-g2", "3e-c", "Groupe 2"),
        User("t-leroy", Role.TEACHER, "Mme Leroy", "demo"),
        User("p-02", Role.PARENT, "Karim (parent d'Inès)", "demo"),
        Membership("t-leroy", "3e-c"),
        ParentLink("p-02", "s-61"),
    ]
    students = (
        ("s-61", "Inès", "3e-c-g1"),
        ("s-62", "Yanis", "3e-c-g1"),
        ("s-63", "Maya", "3e-c-g2"),
    )
    for sid, name, group in students:
        rows += [
            User(sid, Role.STUDENT, name, "demo"),
            Membership(sid, "3e-c"),
            Membership(sid, group),
        ]
    return edit(snap, add=rows)
