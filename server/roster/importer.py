"""Apply a roster snapshot to the database: one transaction, idempotent, guarded.

``import_roster`` reads the roster inside its write transaction, computes the diff
(server/roster/diff.py) and, unless it is a dry run or refused, applies it with bulk
statements (one executemany per kind and operation) and writes one ``roster.import`` row
to the audit trail, all in the same transaction: an import is applied whole or not at
all. The same file twice: the second diff is empty, nothing of the roster is written, and
the report says so.

Removed users keep their row (``app_user.removed_at``), so that chat messages,
attribution and versions still name them; their memberships and parent links go (the
file cannot list them: it refuses a membership of a user it does not list). A removed
user is unknown at sign-in (server/persistence/roster.py ``get_user``). A later import
that lists them again clears ``removed_at``.

Removing a class deletes its assignments and works (foreign keys, ON DELETE CASCADE);
its docs, versions and chat stay under the room id. The report counts those assignments
so that a dry run shows it.

Guard: a file that would remove more than ``max_removed_share`` of the current users is
refused unless forced.

Two imports at once: on SQLite the write transaction (BEGIN IMMEDIATE) already orders
them; on PostgreSQL a transaction-scoped advisory lock does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from server.persistence import audit
from server.persistence.db import is_postgres, writer
from server.persistence.models import (
    assignment_t,
    class_group_t,
    membership_t,
    parent_link_t,
    school_class_t,
    school_t,
    user_t,
    utcnow,
)
from server.roster import diff as diffs
from server.roster.diff import Lowered, RosterDiff
from server.roster.formats import (
    Group,
    Membership,
    ParentLink,
    School,
    SchoolClass,
    Snapshot,
    User,
    snapshot,
)
from server.types import Role

ACTION = "roster.import"
#: pg_advisory_xact_lock key of roster imports ("ROSTER" in ASCII).
_PG_LOCK = 0x524F53544552
#: Rows per executemany / IN list: bounds one statement (SQLite's variable limit too).
CHUNK = 5000
#: Ids of removed / restored users kept in the audit row's detail (the counts are whole).
AUDIT_IDS = 1000


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import found and did. ``lowered`` is for live revocation: the users whose
    access went down, with the rooms concerned."""

    diff: RosterDiff
    lowered: tuple[Lowered, ...]
    dry_run: bool
    forced: bool
    applied: bool
    #: Users of the roster before the import (not counting removed ones).
    users_before: int
    removed_share: float
    max_removed_share: float
    #: Why the import was refused (too many removals), or None.
    refused: str | None = None
    audit_id: int | None = None
    #: Assignments (and their works) deleted with the classes the file removes.
    assignments_deleted: int = 0

    @property
    def changed(self) -> bool:
        return not self.diff.empty

    @property
    def status(self) -> str:
        if self.refused is not None:
            return "refused"
        if self.dry_run:
            return "dry_run"
        return "applied" if self.changed else "unchanged"

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "dry_run": self.dry_run,
            "forced": self.forced,
            "applied": self.applied,
            "changed": self.changed,
            "refused": self.refused,
            "counts": self.diff.counts(),
            "restored": sorted(self.diff.restored),
            "users": {
                "before": self.users_before,
                "removed": len(self.diff.users.removed),
                "removed_share": round(self.removed_share, 4),
                "max_removed_share": self.max_removed_share,
            },
            "assignments_deleted": self.assignments_deleted,
            "lowered": [lw.to_json() for lw in self.lowered],
            "audit_id": self.audit_id,
        }


# --- reading ------------------------------------------------------------------------


async def _fetch(conn: AsyncConnection, query: sa.Select[Any]) -> list[tuple[Any, ...]]:
    """All rows of ``query`` as plain tuples, fetched by the driver itself (aiosqlite,
    psycopg) on the connection of the transaction: a region's roster is ~350,000 rows,
    and SQLAlchemy's per-row result machinery would be most of the import's time. The
    columns read this way are strings (and one timestamp only tested for NULL)."""
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    if conn.dialect.name == "postgresql":
        async with driver.cursor() as cur:
            await cur.execute(str(compiled))
            return list(await cur.fetchall())
    async with driver.execute(str(compiled)) as cur:
        return list(await cur.fetchall())


async def read_roster(conn: AsyncConnection) -> tuple[Snapshot, frozenset[str]]:
    """The roster as the database holds it (users: those not removed), and the ids of
    the removed users. Memberships and parent links are read whole, so that a stray row
    of a removed user is removed by the next import. The rows become a snapshot in a
    worker thread (a region: ~350,000 objects, off the event loop)."""
    s, k, g, u = school_t.c, school_class_t.c, class_group_t.c, user_t.c
    m, p = membership_t.c, parent_link_t.c
    rows = [
        await _fetch(conn, query)
        for query in (
            sa.select(s.id, s.name),
            sa.select(k.id, k.school_id, k.name),
            sa.select(g.id, g.class_id, g.name),
            sa.select(u.id, u.role, u.display_name, u.school_id, u.removed_at),
            sa.select(m.user_id, m.room_id),
            sa.select(p.parent_id, p.student_id),
        )
    ]
    return await asyncio.to_thread(_snapshot_of, *rows)


def _snapshot_of(
    schools: list[tuple[Any, ...]],
    classes: list[tuple[Any, ...]],
    groups: list[tuple[Any, ...]],
    users: list[tuple[Any, ...]],
    memberships: list[tuple[Any, ...]],
    links: list[tuple[Any, ...]],
) -> tuple[Snapshot, frozenset[str]]:
    roles = {r.value: r for r in Role}
    active = []
    removed = set()
    for uid, role, name, school, removed_at in users:
        if removed_at is not None:
            removed.add(uid)
        else:
            active.append(User(uid, roles[role], name, school))
    snap = snapshot(
        [School(*r) for r in schools],
        [SchoolClass(*r) for r in classes],
        [Group(*r) for r in groups],
        active,
        [Membership(*r) for r in memberships],
        [ParentLink(*r) for r in links],
    )
    return snap, frozenset(removed)


async def export_roster(engine: AsyncEngine) -> Snapshot:
    """The current roster in the file's terms (``atelier roster export``): removed users
    and anything of theirs left out, so that importing it back changes nothing."""
    async with engine.connect() as conn:
        snap, _ = await read_roster(conn)
    active = {u.id for u in snap.users}
    return Snapshot(
        schools=snap.schools,
        classes=snap.classes,
        groups=snap.groups,
        users=snap.users,
        memberships=tuple(m for m in snap.memberships if m.user_id in active),
        parent_links=tuple(
            p for p in snap.parent_links if p.parent_id in active and p.student_id in active
        ),
    )


# --- importing ----------------------------------------------------------------------


async def import_roster(
    engine: AsyncEngine,
    new: Snapshot,
    *,
    actor: str,
    node: str,
    max_removed_share: float,
    dry_run: bool = False,
    force: bool = False,
    detail: Mapping[str, Any] | None = None,
) -> ImportReport:
    """Make the roster ``new``; see the module's docstring. ``actor`` (a user id, or
    ``cli``), ``node`` and ``detail`` go to the audit row."""
    source = engine if dry_run else writer(engine)
    async with source.connect() as conn:
        tx = await conn.begin()
        try:
            if not dry_run and is_postgres(engine):
                await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_LOCK)))
            current, removed = await read_roster(conn)
            diff, lowered = await asyncio.to_thread(_compare, current, new, removed)
            before = len(current.users)
            share = len(diff.users.removed) / before if before else 0.0
            refused = None
            if share > max_removed_share and not force:
                refused = (
                    f"the file removes {len(diff.users.removed)} of {before} users "
                    f"({share:.1%}), more than the {max_removed_share:.0%} allowed "
                    "(ROSTER_MAX_REMOVED_SHARE); check the file, or force the import"
                )
            cascade = await _assignments_of(conn, [k.id for k in diff.classes.removed])
            report = ImportReport(
                diff=diff,
                lowered=lowered,
                dry_run=dry_run,
                forced=force,
                applied=False,
                users_before=before,
                removed_share=share,
                max_removed_share=max_removed_share,
                refused=refused,
                assignments_deleted=cascade,
            )
            if dry_run or refused is not None:
                await tx.rollback()
                return report
            await _apply(conn, diff)
            audit_id = await audit.record(
                conn,
                actor=actor,
                node=node,
                action=ACTION,
                target="roster",
                detail=_audit_detail(report, detail),
            )
            await tx.commit()
        except BaseException:
            if tx.is_active:
                await tx.rollback()
            raise
    return replace(report, applied=True, audit_id=audit_id)


def _compare(
    current: Snapshot, new: Snapshot, removed: frozenset[str]
) -> tuple[RosterDiff, tuple[Lowered, ...]]:
    diff = diffs.compute(current, new, removed)
    return diff, diffs.lowered(current, new, diff)


def _audit_detail(report: ImportReport, extra: Mapping[str, Any] | None) -> dict[str, Any]:
    diff = report.diff
    removed = sorted(u.id for u in diff.users.removed)
    restored = sorted(diff.restored)
    # Role changes by name (who became what is in the roster; the trail says who changed).
    roles = sorted(lw.user_id for lw in report.lowered if diffs.Why.ROLE_CHANGED in lw.reasons)
    return {
        **(extra or {}),
        "counts": diff.counts(),
        "changed": report.changed,
        "forced": report.forced,
        "users_before": report.users_before,
        "lowered": len(report.lowered),
        "assignments_deleted": report.assignments_deleted,
        "removed_users": removed[:AUDIT_IDS],
        "restored_users": restored[:AUDIT_IDS],
        "role_changed_users": roles[:AUDIT_IDS],
        "ids_truncated": max(len(removed), len(restored), len(roles)) > AUDIT_IDS,
    }


async def _assignments_of(conn: AsyncConnection, class_ids: list[str]) -> int:
    total = 0
    for part in _chunks(class_ids):
        query = sa.select(sa.func.count()).where(assignment_t.c.class_id.in_(part))
        total += int(await conn.scalar(query) or 0)
    return total


def _chunks(rows: Sequence[Any]) -> list[Sequence[Any]]:
    return [rows[i : i + CHUNK] for i in range(0, len(rows), CHUNK)]


async def _many(conn: AsyncConnection, statement: Any, rows: list[dict[str, Any]]) -> None:
    for part in _chunks(rows):
        await conn.execute(statement, list(part))


#: From this many rows, PostgreSQL inserts go by COPY.
COPY_FROM = 1000


async def _insert(
    conn: AsyncConnection, table: sa.Table, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> None:
    """Insert many rows on the transaction's own connection, by the driver: PostgreSQL
    by COPY (SQLAlchemy renders an executemany INSERT as multi-row VALUES in Python,
    ~40 µs a row; COPY streams them), SQLite by sqlite3's executemany (no per-row bind
    processing). Values are plain strings or None; the names are the tables' own."""
    if not rows:
        return
    postgres = conn.dialect.name == "postgresql"
    if postgres and len(rows) < COPY_FROM:
        await _many(conn, table.insert(), [dict(zip(columns, r, strict=True)) for r in rows])
        return
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    names = ", ".join(columns)
    if postgres:
        async with driver.cursor() as cur:
            async with cur.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
                for row in rows:
                    await copy.write_row(row)
        return
    marks = ", ".join("?" for _ in columns)
    for part in _chunks(rows):
        await driver.executemany(f"INSERT INTO {table.name} ({names}) VALUES ({marks})", part)


def _update(table: sa.Table, *columns: str) -> Any:
    """UPDATE table SET column = :b_column ... WHERE id = :b_id, for executemany."""
    return (
        table.update()
        .where(table.c.id == sa.bindparam("b_id"))
        .values({c: sa.bindparam(f"b_{c}") for c in columns})
    )


async def _apply(conn: AsyncConnection, diff: RosterDiff) -> None:
    """Write the diff, parents before children: insert and update schools, classes,
    groups, users; replace memberships and parent links; mark the removed users; delete
    groups, classes and schools last (a group may have moved out of a class removed)."""
    await _insert(conn, school_t, ("id", "name"), [(s.id, s.name) for s in diff.schools.added])
    await _many(
        conn,
        _update(school_t, "name"),
        [{"b_id": s.id, "b_name": s.name} for s in diff.schools.changed],
    )
    await _insert(
        conn,
        school_class_t,
        ("id", "school_id", "name"),
        [(k.id, k.school_id, k.name) for k in diff.classes.added],
    )
    await _many(
        conn,
        _update(school_class_t, "school_id", "name"),
        [
            {"b_id": k.id, "b_school_id": k.school_id, "b_name": k.name}
            for k in diff.classes.changed
        ],
    )
    await _insert(
        conn,
        class_group_t,
        ("id", "class_id", "name"),
        [(g.id, g.class_id, g.name) for g in diff.groups.added],
    )
    await _many(
        conn,
        _update(class_group_t, "class_id", "name"),
        [{"b_id": g.id, "b_class_id": g.class_id, "b_name": g.name} for g in diff.groups.changed],
    )
    await _insert(
        conn,
        user_t,
        ("id", "role", "display_name", "school_id"),
        [
            (u.id, u.role.value, u.name, u.school_id)
            for u in diff.users.added
            if u.id not in diff.restored
        ],
    )
    updated = [
        {
            "b_id": u.id,
            "b_role": u.role,
            "b_display_name": u.name,
            "b_school_id": u.school_id,
            "b_removed_at": None,
        }
        for u in [*diff.users.changed, *(u for u in diff.users.added if u.id in diff.restored)]
    ]
    await _many(
        conn,
        _update(user_t, "role", "display_name", "school_id", "removed_at"),
        updated,
    )
    await _many(
        conn,
        parent_link_t.delete().where(
            parent_link_t.c.parent_id == sa.bindparam("b_parent"),
            parent_link_t.c.student_id == sa.bindparam("b_student"),
        ),
        [{"b_parent": p.parent_id, "b_student": p.student_id} for p in diff.parent_links.removed],
    )
    await _many(
        conn,
        membership_t.delete().where(
            membership_t.c.user_id == sa.bindparam("b_user"),
            membership_t.c.room_id == sa.bindparam("b_room"),
        ),
        [{"b_user": m.user_id, "b_room": m.room_id} for m in diff.memberships.removed],
    )
    await _insert(
        conn,
        membership_t,
        ("user_id", "room_id"),
        [(m.user_id, m.room_id) for m in diff.memberships.added],
    )
    await _insert(
        conn,
        parent_link_t,
        ("parent_id", "student_id"),
        [(p.parent_id, p.student_id) for p in diff.parent_links.added],
    )
    now = utcnow()
    for part in _chunks([u.id for u in diff.users.removed]):
        await conn.execute(user_t.update().where(user_t.c.id.in_(part)).values(removed_at=now))
    for table, ids in (
        (class_group_t, [g.id for g in diff.groups.removed]),
        (school_class_t, [k.id for k in diff.classes.removed]),
        (school_t, [s.id for s in diff.schools.removed]),
    ):
        for part in _chunks(ids):
            await conn.execute(table.delete().where(table.c.id.in_(part)))
