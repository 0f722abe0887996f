"""The room permission table (DESIGN.md, "Identity and permissions").

``room_access`` is the table itself: a pure function of the user's role and their
relation to the room, tested row by row. ``resolve`` gathers those facts from the roster.

| who                  | own group rooms             | own class room          | other |
|----------------------|-----------------------------|-------------------------|-------|
| student (member)     | docs read-write, chat       | docs read-only, chat    | none  |
| teacher of the class | read-write, moderate, lock  | read-write, moderate    | none  |
| parent of a student  | nothing                     | docs read-only, no chat | none  |
| admin                | roster management only, no room content                   |

A locked doc is read-only for students (``RoomAccess.bound_by_locks``).

Docs of assignments in a class room (``work_doc_access``) refine the table for that doc:
the class's shared work doc is read-write for the class's students; a student's personal
work doc is read-write for that student, read-only for their parents, and closed to the
other students and parents (another minor's work). Teachers keep the class room's row.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

from server.types import NO_ACCESS, DocAccess, Role, RoomAccess, RoomKind


@dataclass(frozen=True, slots=True)
class Relation:
    """What links a user to a room, as read from the roster."""

    member: bool = False  # a student of the class / of the group
    teaches: bool = False  # teacher of the room's class
    parent_of_member: bool = False  # one of their children is a member


def room_access(role: Role, kind: RoomKind, rel: Relation) -> RoomAccess:
    if role is Role.STUDENT and rel.member:
        if kind is RoomKind.GROUP:
            return RoomAccess(docs=DocAccess.WRITE, chat=True, bound_by_locks=True)
        return RoomAccess(docs=DocAccess.READ, chat=True, bound_by_locks=True)
    if role is Role.TEACHER and rel.teaches:
        return RoomAccess(
            docs=DocAccess.WRITE, chat=True, moderate=True, lock=kind is RoomKind.GROUP
        )
    if role is Role.PARENT and rel.parent_of_member and kind is RoomKind.CLASS:
        return RoomAccess(docs=DocAccess.READ)
    return NO_ACCESS


def archived_group_access(role: Role, access: RoomAccess) -> RoomAccess:
    """A group its teacher archived: its students read its docs, and write and chat no
    more (their history stays); teachers keep their access."""
    if role is Role.STUDENT and access.may_enter:
        return replace(access, docs=DocAccess.READ, chat=False)
    return access


class RosterView(Protocol):
    async def is_member(self, user_id: str, room_id: str) -> bool: ...

    async def is_parent_of_member(self, parent_id: str, room_id: str) -> bool: ...


async def resolve(
    roster: RosterView, user_id: str, role: Role, room_id: str, kind: RoomKind, class_id: str
) -> RoomAccess:
    """The access of a user to a room, from the roster's facts."""
    if role is Role.STUDENT:
        rel = Relation(member=await roster.is_member(user_id, room_id))
    elif role is Role.TEACHER:
        # Teachers are members of their class; that makes them teachers of its groups.
        rel = Relation(teaches=await roster.is_member(user_id, class_id))
    elif role is Role.PARENT:
        rel = Relation(parent_of_member=await roster.is_parent_of_member(user_id, room_id))
    else:
        rel = Relation()
    return room_access(role, kind, rel)


def work_doc_access(
    base: RoomAccess,
    role: Role,
    kind: RoomKind,
    user_id: str,
    owner: str | None,
    children: frozenset[str] = frozenset(),
) -> RoomAccess:
    """The access to one doc of an assignment's work: ``owner`` is the student of a
    personal work, None for the class's shared work doc. Only class rooms are refined
    (a group's work doc is an ordinary doc of the group)."""
    if kind is not RoomKind.CLASS or not base.may_enter:
        return base
    if role is Role.STUDENT:
        if owner is None or owner == user_id:
            return replace(base, docs=DocAccess.WRITE)
        return replace(base, docs=DocAccess.NONE)
    if role is Role.PARENT and owner is not None and owner not in children:
        return replace(base, docs=DocAccess.NONE)
    return base
