"""What an import changes: the roster in the database against the file's, kind by kind,
and who loses access to what (for live revocation).

Pure: two snapshots in (server/roster/formats.py), a ``RosterDiff`` and the ``Lowered``
list out. The database side is read by server/roster/importer.py.

Rows are compared by key (``id``; a membership or a parent link is its own key, so it is
only ever added or removed). A user of the file whom an earlier import removed counts as
*added* and is listed in ``RosterDiff.restored``.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from server.roster.formats import (
    KINDS,
    Group,
    Membership,
    ParentLink,
    School,
    SchoolClass,
    Snapshot,
    User,
)
from server.types import Role

T = TypeVar("T")
P = TypeVar("P", Membership, ParentLink)


@dataclass(frozen=True, slots=True)
class Changes(Generic[T]):
    """One kind's changes. ``changed`` holds the rows as the file has them, ``removed``
    the rows as the database had them."""

    added: tuple[T, ...] = ()
    changed: tuple[T, ...] = ()
    removed: tuple[T, ...] = ()

    def counts(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "changed": len(self.changed),
            "removed": len(self.removed),
        }

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)


#: The kinds of a diff, in the order they are shown (same names as the JSON lists).
DIFF_KINDS = tuple(KINDS.values())


@dataclass(frozen=True, slots=True)
class RosterDiff:
    schools: Changes[School] = field(default_factory=Changes)
    classes: Changes[SchoolClass] = field(default_factory=Changes)
    groups: Changes[Group] = field(default_factory=Changes)
    users: Changes[User] = field(default_factory=Changes)
    memberships: Changes[Membership] = field(default_factory=Changes)
    parent_links: Changes[ParentLink] = field(default_factory=Changes)
    #: Ids among ``users.added`` that an earlier import removed: they come back.
    restored: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        return not any(getattr(self, kind) for kind in DIFF_KINDS)

    def counts(self) -> dict[str, dict[str, int]]:
        return {kind: getattr(self, kind).counts() for kind in DIFF_KINDS}


class Why(enum.StrEnum):
    """Why a user's access went down."""

    REMOVED = "removed"  # no longer in the roster: every room, and sign-in
    ROLE_CHANGED = "role_changed"  # every room they had (their access in each changes)
    LEFT_ROOM = "left_room"  # a membership gone (or, a teacher: a group left their class)
    LOST_PARENT_LINK = "lost_parent_link"  # a parent no longer linked to a child
    CHILD_LEFT_ROOM = "child_left_room"  # a parent whose child left a class


@dataclass(frozen=True, slots=True)
class Lowered:
    """A user whose access an import lowered or removed, and the rooms concerned: their
    open sockets in those rooms are to be closed (or their access checked again)."""

    user_id: str
    rooms: frozenset[str]
    reasons: frozenset[Why]

    def to_json(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "rooms": sorted(self.rooms),
            "reasons": sorted(r.value for r in self.reasons),
        }


def _keyed(old: Iterable[T], new: Iterable[T], key: Callable[[T], Hashable]) -> Changes[T]:
    before = {key(r): r for r in old}
    after = {key(r): r for r in new}
    added = []
    changed = []
    for k, row in after.items():
        was = before.get(k)
        if was is None:
            added.append(row)
        elif was != row:
            changed.append(row)
    removed = [row for k, row in before.items() if k not in after]
    return Changes(tuple(added), tuple(changed), tuple(removed))


def _pairs(old: Iterable[P], new: Iterable[P], make: Callable[[str, str], P]) -> Changes[P]:
    """Memberships or parent links: compared as plain (str, str) tuples (hashed in C)."""
    before = {_pair(r) for r in old}
    after = {_pair(r) for r in new}
    return Changes(
        added=tuple(make(a, b) for a, b in sorted(after - before)),
        removed=tuple(make(a, b) for a, b in sorted(before - after)),
    )


def _pair(row: Membership | ParentLink) -> tuple[str, str]:
    if isinstance(row, Membership):
        return row.user_id, row.room_id
    return row.parent_id, row.student_id


def compute(current: Snapshot, new: Snapshot, removed: Iterable[str] = ()) -> RosterDiff:
    """The changes that turn ``current`` (the database's roster, its users those not
    removed) into ``new``. ``removed``: the ids of users an earlier import removed."""
    users = _keyed(current.users, new.users, lambda u: u.id)
    dormant = frozenset(removed)
    return RosterDiff(
        schools=_keyed(current.schools, new.schools, lambda r: r.id),
        classes=_keyed(current.classes, new.classes, lambda r: r.id),
        groups=_keyed(current.groups, new.groups, lambda r: r.id),
        users=users,
        memberships=_pairs(current.memberships, new.memberships, Membership),
        parent_links=_pairs(current.parent_links, new.parent_links, ParentLink),
        restored=frozenset(u.id for u in users.added if u.id in dormant),
    )


class _Reach:
    """Who reaches which rooms in one roster, by the permission table: a student their
    memberships; a teacher their classes and those classes' groups; a parent the classes
    of their children; an admin none. Indexed for ``users`` only (and their children):
    a 1 % change of a region concerns a thousand users, not a hundred thousand."""

    def __init__(self, snap: Snapshot, users: set[str]) -> None:
        self.role = {u.id: u.role for u in snap.users if u.id in users}
        self.classes = {k.id for k in snap.classes}
        self.groups_of: dict[str, set[str]] = defaultdict(set)
        for g in snap.groups:
            self.groups_of[g.class_id].add(g.id)
        self.children: dict[str, set[str]] = defaultdict(set)
        for p in snap.parent_links:
            if p.parent_id in users:
                self.children[p.parent_id].add(p.student_id)
        needed = users.union(*self.children.values())
        self.rooms_of: dict[str, set[str]] = defaultdict(set)
        for m in snap.memberships:
            if m.user_id in needed:
                self.rooms_of[m.user_id].add(m.room_id)

    def rooms(self, user: str) -> set[str]:
        role = self.role.get(user)
        if role is Role.STUDENT:
            return set(self.rooms_of.get(user, ()))
        if role is Role.TEACHER:
            mine = self.rooms_of.get(user, set()) & self.classes
            out = set(mine)
            for class_id in mine:
                out |= self.groups_of.get(class_id, set())
            return out
        if role is Role.PARENT:
            out = set()
            for child in self.children.get(user, ()):
                out |= self.rooms_of.get(child, set()) & self.classes
            return out
        return set()


def lowered(current: Snapshot, new: Snapshot, diff: RosterDiff) -> tuple[Lowered, ...]:
    """Every user whose access ``diff`` lowers or removes, sorted by id, with the rooms
    concerned: all the rooms they had when removed or when their role changed; else the
    rooms they reached before and no longer reach."""
    whole: dict[str, Why] = {u.id: Why.REMOVED for u in diff.users.removed}
    if diff.users.changed:
        role_before = {u.id: u.role for u in current.users}
        for u in diff.users.changed:
            if role_before.get(u.id, u.role) is not u.role:
                whole[u.id] = Why.ROLE_CHANGED
    # Only losses lower access: without any, nothing is indexed (a first import, a
    # re-import, new users and rooms).
    if not (
        whole
        or diff.memberships.removed
        or diff.parent_links.removed
        or diff.groups.removed
        or diff.groups.changed
    ):
        return ()
    candidates: dict[str, set[Why]] = defaultdict(set)
    classes_before = {k.id for k in current.classes}
    left_class: set[str] = set()  # students who left a class: their parents may lose it
    for m in diff.memberships.removed:
        candidates[m.user_id].add(Why.LEFT_ROOM)
        if m.room_id in classes_before:
            left_class.add(m.user_id)
    if left_class:
        for p in current.parent_links:
            if p.student_id in left_class:
                candidates[p.parent_id].add(Why.CHILD_LEFT_ROOM)
    for p in diff.parent_links.removed:
        candidates[p.parent_id].add(Why.LOST_PARENT_LINK)
    # A group that leaves its class (removed, or moved to another) leaves its teachers.
    class_before = {g.id: g.class_id for g in current.groups}
    left = {g.class_id for g in diff.groups.removed}
    left |= {class_before[g.id] for g in diff.groups.changed if class_before[g.id] != g.class_id}
    teachers_of: set[str] = set()
    if left:
        teachers_of = {m.user_id for m in current.memberships if m.room_id in left}
    concerned = set(whole) | set(candidates) | teachers_of
    before, after = _Reach(current, concerned), _Reach(new, concerned)
    for teacher in teachers_of:
        if before.role.get(teacher) is Role.TEACHER:
            candidates[teacher].add(Why.LEFT_ROOM)
    # Removed users and role changes are listed even with no room (an admin): their
    # sign-in, or what their role lets them do, changed.
    out = [Lowered(u, frozenset(before.rooms(u)), frozenset({why})) for u, why in whole.items()]
    for user, reasons in candidates.items():
        if user in whole:
            continue
        lost = before.rooms(user) - after.rooms(user)
        if lost:
            out.append(Lowered(user, frozenset(lost), frozenset(reasons)))
    return tuple(sorted(out, key=lambda lw: lw.user_id))
