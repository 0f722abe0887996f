"""The assignment store: assignments, their works, and the claims that make a hand-in
or a deadline freeze happen exactly once across nodes.

A work changes state only through a conditional UPDATE (``WHERE status = … AND …``): the
node whose UPDATE matched the row did it, the others matched nothing. A freeze is two
steps: ``claim`` (``open`` → ``freezing``, with a claim token and time) and ``finish``
(``freezing`` with *our* token → ``handed_in`` / ``late`` / ``missed``, in the same
transaction as the rendu's version row). A node that dies between the two leaves a
``freezing`` row whose claim expires after ``lease_s``; any node then claims it again. So
a work is frozen once, by one node, and never left unfrozen.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from server.persistence.audit import Note
from server.persistence.db import writer
from server.persistence.models import assignment_t, aware, unix, utcnow, work_t
from server.persistence.versions import VersionInfo, VersionStore

TARGETS = ("class", "groups", "students")
OPEN, FREEZING, HANDED_IN, LATE, MISSED = "open", "freezing", "handed_in", "late", "missed"
#: Statuses of a work frozen by its deadline (not handed in by a student).
AT_DEADLINE = (LATE, MISSED)


#: The prefix of a hand-in's claim (a deadline freeze's claim is a bare token).
HAND_IN_CLAIM = "h:"


@dataclass(frozen=True, slots=True)
class AssignmentRow:
    id: str
    class_id: str
    title: str
    instructions: str
    resources: list[dict[str, str]]
    target: str
    doc_name: str
    starter: str | None
    due_at: datetime
    allow_late: bool
    archived: bool
    created_by: str
    created_at: datetime

    @classmethod
    def of(cls, row: Any) -> AssignmentRow:
        return cls(
            id=row.id,
            class_id=row.class_id,
            title=row.title,
            instructions=row.instructions,
            resources=list(json.loads(row.resources or "[]")),
            target=row.target,
            doc_name=row.doc_name,
            starter=row.starter,
            due_at=aware(row.due_at),
            allow_late=bool(row.allow_late),
            archived=bool(row.archived),
            created_by=row.created_by,
            created_at=aware(row.created_at),
        )


@dataclass(frozen=True, slots=True)
class WorkRow:
    id: str
    assignment_id: str
    room_id: str
    doc_name: str
    student_id: str | None
    due_at: datetime
    extended: bool
    status: str
    version_id: int | None
    submitted_at: datetime | None
    submitted_by: str | None
    comment: str | None
    appreciation: str | None
    mark: str | None
    feedback_by: str | None
    returned_at: datetime | None
    claim: str | None = None

    @classmethod
    def of(cls, row: Any) -> WorkRow:
        return cls(
            id=row.id,
            assignment_id=row.assignment_id,
            room_id=row.room_id,
            doc_name=row.doc_name,
            student_id=row.student_id,
            due_at=aware(row.due_at),
            extended=bool(row.extended),
            status=row.status,
            version_id=row.version_id,
            submitted_at=aware(row.submitted_at),
            submitted_by=row.submitted_by,
            comment=row.comment,
            appreciation=row.appreciation,
            mark=row.mark,
            feedback_by=row.feedback_by,
            returned_at=aware(row.returned_at),
            claim=row.claim,
        )

    @property
    def key(self) -> tuple[str, str]:
        return (self.room_id, self.doc_name)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "assignment_id": self.assignment_id,
            "room_id": self.room_id,
            "doc": self.doc_name,
            "student_id": self.student_id,
            "due_at": unix(self.due_at),
            "extended": self.extended,
            "status": self.status,
            "version_id": self.version_id,
            "submitted_at": unix(self.submitted_at) if self.submitted_at else None,
            "submitted_by": self.submitted_by,
            "feedback": {
                "comment": self.comment,
                "appreciation": self.appreciation,
                "mark": self.mark,
                "by": self.feedback_by,
            },
            "returned_at": unix(self.returned_at) if self.returned_at else None,
        }


@dataclass(frozen=True, slots=True)
class DocRule:
    """A doc of a class room that belongs to a work: personal (``owner``, a student) or
    the class's shared doc (``owner`` None). See server/auth/permissions.py."""

    owner: str | None


class AssignmentStore:
    def __init__(self, engine: AsyncEngine, versions: VersionStore) -> None:
        self._engine = engine
        self._writer = writer(engine)
        self.versions = versions

    # --- assignments ---

    async def create(self, assignment: dict[str, Any], works: Sequence[dict[str, Any]]) -> None:
        async with self._writer.begin() as conn:
            await conn.execute(assignment_t.insert(), assignment)
            if works:
                await conn.execute(work_t.insert(), list(works))

    async def get(self, assignment_id: str) -> AssignmentRow | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(assignment_t).where(assignment_t.c.id == assignment_id)
                )
            ).first()
        return AssignmentRow.of(row) if row is not None else None

    async def get_many(self, assignment_ids: set[str]) -> list[AssignmentRow]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(assignment_t).where(assignment_t.c.id.in_(sorted(assignment_ids)))
            )
            return [AssignmentRow.of(r) for r in rows]

    async def of_classes(
        self, class_ids: Sequence[str], *, archived: bool = False
    ) -> list[AssignmentRow]:
        """The assignments of these classes, soonest due first."""
        query = sa.select(assignment_t).where(assignment_t.c.class_id.in_(list(class_ids)))
        if not archived:
            query = query.where(assignment_t.c.archived == sa.false())
        async with self._engine.connect() as conn:
            rows = await conn.execute(query.order_by(assignment_t.c.due_at, assignment_t.c.id))
            return [AssignmentRow.of(r) for r in rows]

    async def update(self, assignment_id: str, **values: Any) -> None:
        async with self._writer.begin() as conn:
            await conn.execute(
                assignment_t.update()
                .where(assignment_t.c.id == assignment_id)
                .values(**values, updated_at=utcnow())
            )

    async def postpone(
        self, assignment_id: str, due_at: datetime, audit: Note | None = None
    ) -> list[WorkRow]:
        """Move the assignment's due date and its works' (not those with an extension of
        their own). Works frozen by the old deadline and not yet returned open again.
        Returns the works that moved. ``audit`` is written in the same transaction."""
        async with self._writer.begin() as conn:
            if audit is not None:
                await audit.write(conn)
            await conn.execute(
                assignment_t.update()
                .where(assignment_t.c.id == assignment_id)
                .values(due_at=due_at, updated_at=utcnow())
            )
            rows = await conn.execute(
                work_t.update()
                .where(
                    work_t.c.assignment_id == assignment_id,
                    work_t.c.extended == sa.false(),
                    work_t.c.returned_at.is_(None),
                    work_t.c.status.in_((OPEN, *AT_DEADLINE)),
                )
                .values(due_at=due_at, status=OPEN, reminded=False, claim=None, claimed_at=None)
                .returning(*work_t.c)
            )
            return [WorkRow.of(r) for r in rows]

    # --- works ---

    async def works_of(self, assignment_id: str) -> list[WorkRow]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(work_t)
                .where(work_t.c.assignment_id == assignment_id)
                .order_by(work_t.c.room_id, work_t.c.student_id)
            )
            return [WorkRow.of(r) for r in rows]

    async def works_in(self, assignment_ids: Sequence[str]) -> list[WorkRow]:
        if not assignment_ids:
            return []
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(work_t).where(work_t.c.assignment_id.in_(list(assignment_ids)))
            )
            return [WorkRow.of(r) for r in rows]

    async def work(self, work_id: str) -> WorkRow | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(sa.select(work_t).where(work_t.c.id == work_id))).first()
        return WorkRow.of(row) if row is not None else None

    async def work_of_doc(self, room_id: str, doc_name: str) -> WorkRow | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(work_t).where(
                        work_t.c.room_id == room_id, work_t.c.doc_name == doc_name
                    )
                )
            ).first()
        return WorkRow.of(row) if row is not None else None

    async def works_of_rooms(self, room_ids: Sequence[str]) -> list[WorkRow]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(sa.select(work_t).where(work_t.c.room_id.in_(list(room_ids))))
            return [WorkRow.of(r) for r in rows]

    async def _update_one(
        self, where: sa.ColumnElement[bool], audit: Note | None = None, **values: Any
    ) -> WorkRow | None:
        """Update the one work ``where`` matches; None if it matched nothing. ``audit`` is
        written with the change (not when nothing changed)."""
        async with self._writer.begin() as conn:
            row = (
                await conn.execute(
                    work_t.update().where(where).values(**values).returning(*work_t.c)
                )
            ).first()
            if row is not None and audit is not None:
                await audit.write(conn)
        return WorkRow.of(row) if row is not None else None

    async def reopen(
        self, work_id: str, due_at: datetime, audit: Note | None = None
    ) -> WorkRow | None:
        """An extension for one work: open again until ``due_at`` (None: being frozen)."""
        return await self._update_one(
            sa.and_(work_t.c.id == work_id, work_t.c.status != FREEZING),
            audit,
            status=OPEN,
            due_at=due_at,
            extended=True,
            reminded=False,
            claim=None,
            claimed_at=None,
            returned_at=None,
        )

    async def set_feedback(self, work_id: str, by: str, **feedback: str | None) -> WorkRow | None:
        return await self._update_one(work_t.c.id == work_id, None, **feedback, feedback_by=by)

    async def mark_returned(self, work_id: str, audit: Note | None = None) -> WorkRow | None:
        """Returned with its feedback ("rendu corrigé"): only a frozen work, once."""
        return await self._update_one(
            sa.and_(
                work_t.c.id == work_id,
                work_t.c.status.in_((HANDED_IN, *AT_DEADLINE)),
                work_t.c.returned_at.is_(None),
            ),
            audit,
            returned_at=utcnow(),
        )

    # --- the claims ---

    async def claim_hand_in(self, work_id: str, token: str, now: datetime) -> WorkRow | None:
        """Claim an open work for a student's hand-in, only before its due date. The claim
        says it is a hand-in (``HAND_IN_CLAIM``): if its node dies, the work is given back
        to the students rather than frozen as missed."""
        return await self._update_one(
            sa.and_(work_t.c.id == work_id, work_t.c.status == OPEN, work_t.c.due_at > now),
            status=FREEZING,
            claim=HAND_IN_CLAIM + token,
            claimed_at=now,
        )

    def _overdue(self, now: datetime, lease_s: float) -> sa.ColumnElement[bool]:
        """Open and past due, or a freeze whose node died (its lease is over) — except a
        student's hand-in before the due date: that one is given back (``release_stale``)."""
        return sa.or_(
            sa.and_(work_t.c.status == OPEN, work_t.c.due_at <= now),
            sa.and_(
                work_t.c.status == FREEZING,
                work_t.c.claimed_at < now - timedelta(seconds=lease_s),
                sa.or_(~work_t.c.claim.startswith(HAND_IN_CLAIM), work_t.c.due_at <= now),
            ),
        )

    async def release_stale(self, now: datetime, lease_s: float) -> list[WorkRow]:
        """Hand-ins whose node died before recording the rendu, still before the due
        date: open again, so that the student can hand in anew (their doc is unlocked by
        the caller). Past the due date, such a work is frozen by the clock instead."""
        async with self._writer.begin() as conn:
            rows = await conn.execute(
                work_t.update()
                .where(
                    work_t.c.status == FREEZING,
                    work_t.c.claim.startswith(HAND_IN_CLAIM),
                    work_t.c.claimed_at < now - timedelta(seconds=lease_s),
                    work_t.c.due_at > now,
                )
                .values(status=OPEN, claim=None, claimed_at=None)
                .returning(*work_t.c)
            )
            return [WorkRow.of(r) for r in rows]

    async def claim_overdue(
        self, token: str, now: datetime, lease_s: float, limit: int = 100
    ) -> list[WorkRow]:
        """Claim up to ``limit`` works past their due date (and freezes whose node died).

        The condition is repeated outside the sub-select: on PostgreSQL (READ COMMITTED)
        a row another node claimed meanwhile is re-checked after its lock and skipped."""
        overdue = self._overdue(now, lease_s)
        ids = sa.select(work_t.c.id).where(overdue).order_by(work_t.c.due_at).limit(limit)
        async with self._writer.begin() as conn:
            rows = await conn.execute(
                work_t.update()
                .where(work_t.c.id.in_(ids.scalar_subquery()), overdue)
                .values(status=FREEZING, claim=token, claimed_at=now)
                .returning(*work_t.c)
            )
            return [WorkRow.of(r) for r in rows]

    async def overdue_keys(self, now: datetime) -> set[tuple[str, str]]:
        """(room, doc) of every open work past its due date: locked before the freeze."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(work_t.c.room_id, work_t.c.doc_name).where(
                    work_t.c.status.in_((OPEN, FREEZING)), work_t.c.due_at <= now
                )
            )
            return {(r.room_id, r.doc_name) for r in rows}

    async def upcoming(self, until: datetime, limit: int = 2000) -> list[WorkRow]:
        """Works open or being frozen, due before ``until``, soonest first: the deadline
        clock's agenda. Those being frozen are in it because a node whose clock ticks
        just after another node's claim must still lock its own copies of their docs at
        the deadline: the claimer's lock comes later, and if the claimer dies first,
        only from the node that claims them again once the lease is over."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(work_t)
                .where(work_t.c.status.in_((OPEN, FREEZING)), work_t.c.due_at <= until)
                .order_by(work_t.c.due_at)
                .limit(limit)
            )
            return [WorkRow.of(r) for r in rows]

    async def claim_reminders(
        self, now: datetime, within_s: float, limit: int = 500
    ) -> list[WorkRow]:
        """Open works due within ``within_s`` whose "due tomorrow" reminder is not sent:
        marked sent here, so one node sends each reminder once."""
        cond = sa.and_(
            work_t.c.status == OPEN,
            work_t.c.reminded == sa.false(),
            work_t.c.due_at > now,
            work_t.c.due_at <= now + timedelta(seconds=within_s),
        )
        ids = sa.select(work_t.c.id).where(cond).limit(limit)
        async with self._writer.begin() as conn:
            rows = await conn.execute(
                work_t.update()
                .where(work_t.c.id.in_(ids.scalar_subquery()), cond)
                .values(reminded=True)
                .returning(*work_t.c)
            )
            return [WorkRow.of(r) for r in rows]

    async def finish(
        self,
        work: WorkRow,
        status: str,
        *,
        state: bytes,
        state_vector: bytes,
        contributors: list[str],
        by: str | None,
        name: str,
    ) -> tuple[WorkRow, VersionInfo] | None:
        """Record the rendu and the work's new status, in one transaction, if the claim
        is still ours (None otherwise: another node re-claimed an expired freeze)."""
        now = utcnow()
        async with self._writer.begin() as conn:
            row = (
                await conn.execute(
                    work_t.update()
                    .where(
                        work_t.c.id == work.id,
                        work_t.c.status == FREEZING,
                        work_t.c.claim == work.claim,
                    )
                    .values(
                        status=status,
                        claim=None,
                        claimed_at=None,
                        submitted_at=now,
                        submitted_by=by,
                    )
                    .returning(work_t.c.id)
                )
            ).first()
            if row is None:
                await conn.rollback()
                return None
            version = await self.versions.add_in(
                conn,
                work.room_id,
                work.doc_name,
                "rendu",
                state,
                state_vector,
                contributors=contributors,
                name=name,
                by=by,
            )
            await conn.execute(
                work_t.update().where(work_t.c.id == work.id).values(version_id=version.id)
            )
        done = replace(
            work,
            status=status,
            claim=None,
            submitted_at=now,
            submitted_by=by,
            version_id=version.id,
        )
        return done, version

    async def doc_rules(self, room_id: str) -> dict[str, DocRule]:
        """doc name → rule, for the docs of ``room_id`` that belong to works."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(work_t.c.doc_name, work_t.c.student_id).where(work_t.c.room_id == room_id)
            )
            return {r.doc_name: DocRule(r.student_id) for r in rows}

    async def doc_rule(self, room_id: str, doc_name: str) -> DocRule | None:
        """The rule of one doc (None: an ordinary doc). Not cached: the unique index
        answers it, and a stale answer would show a classmate's personal doc."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(work_t.c.student_id).where(
                        work_t.c.room_id == room_id, work_t.c.doc_name == doc_name
                    )
                )
            ).first()
        return DocRule(row.student_id) if row is not None else None
