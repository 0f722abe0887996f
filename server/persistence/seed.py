"""The demo school of the contract (DESIGN.md, "Demo school"): same ids every time.

``seed_demo`` inserts with ON CONFLICT DO NOTHING in one write transaction, so running it
twice, or on two nodes at once, leaves the same data; rows someone edited stay edited.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from server.persistence.db import is_postgres, writer
from server.persistence.models import (
    class_group_t,
    membership_t,
    parent_link_t,
    school_class_t,
    school_t,
    user_t,
)
from server.types import Role

SCHOOL_ID = "demo"
GROUPS_PER_CLASS = 5
STUDENTS_PER_GROUP = 6

#: 60 distinct French first names: s-01 is Léa, s-60 is Mehdi.
FIRST_NAMES = (
    "Léa Hugo Chloé Lucas Manon Nathan Camille Louis Inès Gabriel "
    "Jade Raphaël Louise Arthur Emma Jules Alice Adam Lina Théo "
    "Zoé Paul Sarah Tom Juliette Noah Clara Ethan Anna Maël "
    "Rose Léo Mila Sacha Lou Nolan Ambre Mathis Agathe Timéo "
    "Lola Enzo Romane Baptiste Eva Clément Margaux Antoine Elsa Victor "
    "Capucine Maxime Pauline Valentin Océane Quentin Charlotte Bastien Yasmine Mehdi"
).split()

#: (class id, class name, teacher id, teacher name, number of its first student)
CLASSES = (
    ("2nde-a", "Seconde A", "t-martin", "M. Martin", 1),
    ("1ere-b", "Première B", "t-durand", "Mme Durand", 31),
)


def demo_rows() -> dict[sa.Table, list[dict[str, Any]]]:
    """Every row of the demo school, by table, in foreign-key order."""
    users: list[dict[str, Any]] = []
    classes: list[dict[str, Any]] = []
    groups: list[dict[str, Any]] = []
    members: list[dict[str, Any]] = []

    def user(uid: str, role: Role, name: str, school: str | None = SCHOOL_ID) -> None:
        users.append({"id": uid, "role": role, "display_name": name, "school_id": school})

    for class_id, class_name, teacher_id, teacher_name, first in CLASSES:
        classes.append({"id": class_id, "school_id": SCHOOL_ID, "name": class_name})
        user(teacher_id, Role.TEACHER, teacher_name)
        members.append({"user_id": teacher_id, "room_id": class_id})
        for g in range(GROUPS_PER_CLASS):
            group_id = f"{class_id}-g{g + 1}"
            groups.append({"id": group_id, "class_id": class_id, "name": f"Groupe {g + 1}"})
            for k in range(STUDENTS_PER_GROUP):
                n = first + g * STUDENTS_PER_GROUP + k
                student_id = f"s-{n:02d}"
                user(student_id, Role.STUDENT, FIRST_NAMES[n - 1])
                members.append({"user_id": student_id, "room_id": class_id})
                members.append({"user_id": student_id, "room_id": group_id})
    user("p-01", Role.PARENT, f"Nadia (parent de {FIRST_NAMES[0]})")
    user("a-admin", Role.ADMIN, "Administration", None)
    return {
        school_t: [{"id": SCHOOL_ID, "name": "Lycée Jean Moulin"}],
        user_t: users,
        school_class_t: classes,
        class_group_t: groups,
        membership_t: members,
        parent_link_t: [{"parent_id": "p-01", "student_id": "s-01"}],
    }


async def _count(conn: AsyncConnection, tables: list[sa.Table]) -> int:
    total = 0
    for table in tables:
        total += int(await conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)
    return total


async def seed_demo(engine: AsyncEngine) -> bool:
    """Insert the demo school where missing. True if anything was inserted."""
    insert = postgresql.insert if is_postgres(engine) else sqlite.insert
    rows = demo_rows()
    async with writer(engine).begin() as conn:
        # Counting beats rowcount here: executemany's rowcount differs between drivers.
        before = await _count(conn, list(rows))
        for table, values in rows.items():
            await conn.execute(insert(table).on_conflict_do_nothing(), values)
        return await _count(conn, list(rows)) > before


async def is_empty(engine: AsyncEngine) -> bool:
    """True if the roster has no user: ``make run`` seeds only such a database."""
    async with engine.connect() as conn:
        return (await conn.execute(sa.select(user_t.c.id).limit(1))).first() is None
