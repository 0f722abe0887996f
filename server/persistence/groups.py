"""A class's project groups as its teachers manage them: create, rename, archive, and
move students between groups (server/groups/). The roster's reads are in roster.py."""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from server.persistence.audit import record
from server.persistence.db import writer
from server.persistence.models import (
    class_group_t,
    membership_t,
    school_class_t,
    user_t,
    utcnow,
)
from server.types import Role


@dataclass(frozen=True, slots=True)
class GroupRow:
    id: str
    class_id: str
    name: str
    archived: bool
    students: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Moved:
    student_id: str
    #: The groups of the class the student left (none, or one).
    left: tuple[str, ...]
    joined: str | None


class GroupStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = writer(engine)

    async def of_class(self, class_id: str) -> list[GroupRow]:
        """The class's groups (archived ones too) with their students, by id."""
        async with self._engine.connect() as conn:
            groups = (
                await conn.execute(
                    sa.select(class_group_t)
                    .where(class_group_t.c.class_id == class_id)
                    .order_by(class_group_t.c.id)
                )
            ).all()
            members = await conn.execute(
                sa.select(membership_t.c.room_id, membership_t.c.user_id)
                .join(user_t, user_t.c.id == membership_t.c.user_id)
                .where(
                    membership_t.c.room_id.in_([g.id for g in groups]),
                    user_t.c.role == Role.STUDENT.value,
                )
                .order_by(membership_t.c.user_id)
            )
            by_group: dict[str, list[str]] = {}
            for row in members:
                by_group.setdefault(row.room_id, []).append(row.user_id)
        return [
            GroupRow(
                g.id, g.class_id, g.name, g.archived_at is not None, tuple(by_group.get(g.id, ()))
            )
            for g in groups
        ]

    async def students_of_class(self, class_id: str) -> list[str]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(membership_t.c.user_id)
                .join(user_t, user_t.c.id == membership_t.c.user_id)
                .where(membership_t.c.room_id == class_id, user_t.c.role == Role.STUDENT.value)
                .order_by(membership_t.c.user_id)
            )
            return list(rows.scalars())

    async def create(self, class_id: str, name: str, *, actor: str, node: str) -> GroupRow:
        """A new group ``{class_id}-g{n}``, n the first number no group of the class used.
        Every change here writes its audit row in the same transaction."""
        async with self._writer.begin() as conn:
            exists = await conn.scalar(
                sa.select(school_class_t.c.id).where(school_class_t.c.id == class_id)
            )
            if exists is None:
                raise LookupError(class_id)
            ids = (
                await conn.execute(
                    sa.select(class_group_t.c.id).where(class_group_t.c.class_id == class_id)
                )
            ).scalars()
            pattern = re.compile(rf"^{re.escape(class_id)}-g(\d+)$")
            used = {int(m.group(1)) for i in ids if (m := pattern.match(i))}
            n = next(k for k in range(1, len(used) + 2) if k not in used)
            group_id = f"{class_id}-g{n}"
            await conn.execute(
                class_group_t.insert().values(id=group_id, class_id=class_id, name=name)
            )
            await record(
                conn,
                actor=actor,
                node=node,
                action="group.create",
                target=group_id,
                detail={"class": class_id, "name": name},
            )
        return GroupRow(group_id, class_id, name, False, ())

    async def update(
        self,
        group_id: str,
        *,
        actor: str,
        node: str,
        name: str | None = None,
        archived: bool | None = None,
    ) -> bool:
        values: dict[str, object] = {}
        if name is not None:
            values["name"] = name
        if archived is not None:
            values["archived_at"] = utcnow() if archived else None
        if not values:
            return True
        async with self._writer.begin() as conn:
            result = await conn.execute(
                class_group_t.update().where(class_group_t.c.id == group_id).values(**values)
            )
            await record(
                conn,
                actor=actor,
                node=node,
                action="group.update",
                target=group_id,
                detail={"name": name, "archived": archived},
            )
            return bool(result.rowcount)

    async def move(
        self, class_id: str, student_id: str, to: str | None, *, actor: str, node: str
    ) -> Moved:
        """Out of every group of the class, into ``to`` (a group of the same class), or
        into none. One transaction: the student is never in two groups at once."""
        async with self._writer.begin() as conn:
            groups = sa.select(class_group_t.c.id).where(class_group_t.c.class_id == class_id)
            left = tuple(
                (
                    await conn.execute(
                        sa.select(membership_t.c.room_id).where(
                            membership_t.c.user_id == student_id,
                            membership_t.c.room_id.in_(groups),
                            membership_t.c.room_id != (to or ""),
                        )
                    )
                ).scalars()
            )
            if left:
                await conn.execute(
                    membership_t.delete().where(
                        membership_t.c.user_id == student_id, membership_t.c.room_id.in_(left)
                    )
                )
            if to is not None:
                already = await conn.scalar(
                    sa.select(membership_t.c.user_id).where(
                        membership_t.c.user_id == student_id, membership_t.c.room_id == to
                    )
                )
                if already is None:
                    await conn.execute(membership_t.insert().values(user_id=student_id, room_id=to))
            await record(
                conn,
                actor=actor,
                node=node,
                action="group.move",
                target=student_id,
                detail={"class": class_id, "left": list(left), "joined": to},
            )
        return Moved(student_id, left, to)
