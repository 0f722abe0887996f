"""Who is who and who is where: read-only queries on the roster, for auth and the API.

A room is a class (``kind=class``) or a group (``kind=group``); their ids share one
namespace, so :meth:`Roster.get_room` looks in classes, then in groups.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from server.persistence.models import (
    class_group_t,
    membership_t,
    parent_link_t,
    school_class_t,
    user_t,
)
from server.types import Role, RoomKind


@dataclass(frozen=True, slots=True)
class UserInfo:
    id: str
    role: Role
    display_name: str
    school_id: str | None


@dataclass(frozen=True, slots=True)
class RoomInfo:
    id: str
    kind: RoomKind
    class_id: str  # for a class room, its own id; for a group, its class
    name: str
    school_id: str
    #: A group its teacher archived: read-only for its students.
    archived: bool = False


_classes = sa.select(
    school_class_t.c.id,
    school_class_t.c.id.label("class_id"),
    school_class_t.c.name,
    school_class_t.c.school_id,
)
_groups = sa.select(
    class_group_t.c.id,
    class_group_t.c.class_id,
    class_group_t.c.name,
    school_class_t.c.school_id,
    class_group_t.c.archived_at,
).join(school_class_t, school_class_t.c.id == class_group_t.c.class_id)


def _room(row: sa.Row[*tuple[Any, ...]], kind: RoomKind) -> RoomInfo:
    return RoomInfo(
        id=row.id,
        kind=kind,
        class_id=row.class_id,
        name=row.name,
        school_id=row.school_id,
        archived=row._mapping.get("archived_at") is not None,
    )


class Roster:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get_user(self, user_id: str) -> UserInfo | None:
        """The user, or None if unknown or removed from the roster (``removed_at``): a
        removed user's token is refused like a stranger's."""
        query = sa.select(user_t).where(user_t.c.id == user_id, user_t.c.removed_at.is_(None))
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return UserInfo(
            id=row.id, role=Role(row.role), display_name=row.display_name, school_id=row.school_id
        )

    async def get_room(self, room_id: str) -> RoomInfo | None:
        async with self._engine.connect() as conn:
            found = (await conn.execute(_classes.where(school_class_t.c.id == room_id))).first()
            if found is not None:
                return _room(found, RoomKind.CLASS)
            group = (await conn.execute(_groups.where(class_group_t.c.id == room_id))).first()
        return _room(group, RoomKind.GROUP) if group is not None else None

    async def is_member(self, user_id: str, room_id: str) -> bool:
        query = sa.select(membership_t.c.user_id).where(
            membership_t.c.user_id == user_id, membership_t.c.room_id == room_id
        )
        async with self._engine.connect() as conn:
            return (await conn.execute(query)).first() is not None

    async def members(self, room_id: str) -> frozenset[str]:
        """The ids of the room's members (its students, and a class's teachers)."""
        query = sa.select(membership_t.c.user_id).where(membership_t.c.room_id == room_id)
        async with self._engine.connect() as conn:
            return frozenset((await conn.execute(query)).scalars())

    async def is_parent_of_member(self, parent_id: str, room_id: str) -> bool:
        """True if some child of ``parent_id`` is a member of ``room_id``."""
        query = (
            sa.select(membership_t.c.user_id)
            .join(parent_link_t, parent_link_t.c.student_id == membership_t.c.user_id)
            .where(parent_link_t.c.parent_id == parent_id, membership_t.c.room_id == room_id)
            .limit(1)
        )
        async with self._engine.connect() as conn:
            return (await conn.execute(query)).first() is not None

    async def children_of(self, parent_id: str) -> set[str]:
        """The students ``parent_id`` is a parent of."""
        query = sa.select(parent_link_t.c.student_id).where(parent_link_t.c.parent_id == parent_id)
        async with self._engine.connect() as conn:
            return set((await conn.execute(query)).scalars())

    async def rooms_of(self, user_id: str) -> list[RoomInfo]:
        """The user's rooms, classes first then groups, each sorted by id.

        For a parent: the class rooms of their children (a parent sees no group room).
        """
        async with self._engine.connect() as conn:
            role = await conn.scalar(sa.select(user_t.c.role).where(user_t.c.id == user_id))
            if role is None:
                return []
            if Role(role) is Role.PARENT:
                members = (
                    sa.select(membership_t.c.room_id)
                    .join(parent_link_t, parent_link_t.c.student_id == membership_t.c.user_id)
                    .where(parent_link_t.c.parent_id == user_id)
                )
            else:
                members = sa.select(membership_t.c.room_id).where(membership_t.c.user_id == user_id)
            classes = await conn.execute(
                _classes.where(school_class_t.c.id.in_(members)).order_by(school_class_t.c.id)
            )
            rooms = [_room(r, RoomKind.CLASS) for r in classes]
            if Role(role) is not Role.PARENT:
                groups = await conn.execute(
                    _groups.where(class_group_t.c.id.in_(members)).order_by(class_group_t.c.id)
                )
                rooms.extend(_room(r, RoomKind.GROUP) for r in groups)
        return rooms

    async def groups_of_class(self, class_id: str) -> list[RoomInfo]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                _groups.where(class_group_t.c.class_id == class_id).order_by(class_group_t.c.id)
            )
            return [_room(r, RoomKind.GROUP) for r in rows]

    async def members_with_role(self, room_id: str, role: Role) -> list[str]:
        """The ids of the room's members who have ``role`` (a group's students, a class's
        teachers), sorted."""
        query = (
            sa.select(membership_t.c.user_id)
            .join(user_t, user_t.c.id == membership_t.c.user_id)
            .where(membership_t.c.room_id == room_id, user_t.c.role == role.value)
            .order_by(membership_t.c.user_id)
        )
        async with self._engine.connect() as conn:
            return list((await conn.execute(query)).scalars())

    async def parents_of(self, student_ids: list[str]) -> list[tuple[str, str]]:
        """(parent, child) for every parent link of these students."""
        if not student_ids:
            return []
        query = sa.select(parent_link_t.c.parent_id, parent_link_t.c.student_id).where(
            parent_link_t.c.student_id.in_(student_ids)
        )
        async with self._engine.connect() as conn:
            return [(r.parent_id, r.student_id) for r in await conn.execute(query)]

    async def display_names(self, user_ids: list[str]) -> dict[str, str]:
        """Names for history (authors, contributors, hand-ins): removed users included."""
        if not user_ids:
            return {}
        query = sa.select(user_t.c.id, user_t.c.display_name).where(user_t.c.id.in_(user_ids))
        async with self._engine.connect() as conn:
            return {r.id: r.display_name for r in await conn.execute(query)}
