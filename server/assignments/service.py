"""Assignments at work: publishing, handing in, the deadline, feedback — theory of
operation.

**Publishing** writes the assignment and its works in one transaction, then the starter
content into each work's doc log (attributed to the teacher; no doc is loaded), then the
notifications. Each group (or student, or the class) finds its doc ready in its room.

**A freeze** (a student hands in, or the deadline passes) is claimed in the database first
(persistence/assignments.py: exactly one node wins), then: the doc is opened here, locked
(``RoomRegistry.set_locked``: stored, applied here and on every node holding it, shown
to every client), and ``rendu_settle_s`` later — once edits accepted elsewhere before the
lock reached there have crossed the bus — its state is recorded as the rendu, with the
work's new status, in one transaction.

**The deadline clock** is the database, not a timer: every node reads the agenda of the
works due soon (``upcoming``), sleeps until the next due date it knows (or
``deadline_poll_s``, or a nudge on the bus when an assignment changes anywhere), and at
each deadline locks at once the docs it holds (no round trip: its editors are read-only
within the loop turn), then claims what is overdue. A node down at the deadline changes
nothing: the others freeze its docs; if every node was down, the first to start freezes
them, and until then a doc loaded after its deadline is locked at load (``loaded``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from server.assignments.french import french_datetime, slug
from server.assignments.starter import starter_update
from server.bus.base import Envelope
from server.bus.outbox import Outbox
from server.config import Settings
from server.notifications.feed import Notifier, Recipient
from server.persistence.assignments import (
    AT_DEADLINE,
    HANDED_IN,
    LATE,
    MISSED,
    OPEN,
    AssignmentRow,
    AssignmentStore,
    WorkRow,
)
from server.persistence.audit import Note
from server.persistence.docs import DocStore, StoredDoc
from server.persistence.models import unix, utcnow
from server.persistence.roster import RoomInfo, Roster
from server.progress.attribution import UNATTRIBUTED
from server.progress.service import Progress
from server.rooms.livedoc import LiveDoc
from server.rooms.registry import RoomRegistry
from server.types import Role, UpdateOrigin

log = logging.getLogger(__name__)

TOPIC = "assignments"
KIND_CHANGED = "changed"
#: Works one node claims at each step of the clock (it loops while batches come full):
#: at a deadline, the nodes of a cluster share the freezes.
CLAIM_BATCH = 16
FREEZES_IN_FLIGHT = 16


class Refused(Exception):
    """A request the state of the work does not allow (the API answers 409)."""


@dataclass(frozen=True, slots=True)
class Spec:
    """What a teacher gives to publish (validated by the API)."""

    title: str
    instructions: str
    resources: list[dict[str, str]]
    due_at: datetime
    target: str
    starter: str | None
    allow_late: bool


class Assignments:
    def __init__(
        self,
        settings: Settings,
        store: AssignmentStore,
        registry: RoomRegistry,
        docs: DocStore,
        roster: Roster,
        notifier: Notifier,
        progress: Progress,
        outbox: Outbox,
    ) -> None:
        self.settings = settings
        self.store = store
        self.registry = registry
        self.docs = docs
        self.roster = roster
        self.notifier = notifier
        self.progress = progress
        self.outbox = outbox
        self.bus = outbox.bus
        self.node = str(self.bus.node_id)
        #: (room, doc) of works past due and not frozen yet: locked at load.
        self.overdue: set[tuple[str, str]] = set()
        #: (work id, due) already locked here by the clock (once per due date).
        self._locked_here: set[tuple[str, float]] = set()
        #: The works due soon, as last read (the clock's agenda).
        self._agenda: list[WorkRow] = []
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._freezing: set[asyncio.Task[None]] = set()
        self._gate = asyncio.Semaphore(FREEZES_IN_FLIGHT)
        #: Called with (room id, event) for the room channel (LiveHub.room_event).
        self.room_event: Any = None
        #: Called with (class id, event) for its teachers only (LiveHub.class_teachers).
        self.teacher_event: Any = None

    # --- lifecycle ---

    async def start(self) -> None:
        await self.bus.subscribe(TOPIC, self._on_bus)
        self.overdue = await self.store.overdue_keys(utcnow())
        for key in self.overdue:
            live = self.registry.docs.get(key)
            if live is not None:
                live.set_locked(True)
        self._tasks = [asyncio.get_running_loop().create_task(self._clock(), name="deadlines")]

    async def close(self) -> None:
        for task in [*self._tasks, *self._freezing]:
            task.cancel()
        for task in [*self._tasks, *self._freezing]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self.bus.unsubscribe(TOPIC)

    def nudge(self) -> None:
        """An assignment changed: every node's clock reads its agenda again."""
        self._wake.set()
        self.outbox.publish(TOPIC, KIND_CHANGED, b"")

    async def _on_bus(self, topic: str, env: Envelope) -> None:
        if env.kind == KIND_CHANGED:
            self._wake.set()

    # --- the registry's watcher: a doc loaded after its deadline is locked ---

    def loaded(self, live: LiveDoc, stored: StoredDoc) -> None:
        if live.key in self.overdue:
            live.set_locked(True)

    def integrated(
        self, live: LiveDoc, update: bytes, origin: UpdateOrigin, author: str | None
    ) -> None:
        pass

    async def settling(self, live: LiveDoc) -> None:
        pass

    def gone(self, live: LiveDoc) -> None:
        pass

    # --- who ---

    async def unit_students(self, work: WorkRow) -> list[str]:
        """The students a work belongs to."""
        if work.student_id is not None:
            return [work.student_id]
        return await self.roster.members_with_role(work.room_id, Role.STUDENT)

    async def with_parents(self, students: Sequence[str]) -> list[Recipient]:
        out = [Recipient(s) for s in students]
        out.extend(Recipient(p, child) for p, child in await self.roster.parents_of(list(students)))
        return out

    async def rooms_of_class(self, class_id: str) -> list[str]:
        return [class_id, *(g.id for g in await self.roster.groups_of_class(class_id))]

    def when(self, at: datetime) -> str:
        return french_datetime(unix(at), self.settings.timezone)

    # --- publishing and editing ---

    async def publish(self, teacher_id: str, klass: RoomInfo, spec: Spec) -> AssignmentRow:
        aid = "a-" + secrets.token_hex(6)
        base = slug(spec.title)
        doc_name = f"{base}-{secrets.token_hex(3)}"
        now = utcnow()
        works: list[dict[str, Any]] = []

        def work(room_id: str, name: str, student: str | None = None) -> None:
            works.append(
                {
                    "id": "w-" + secrets.token_hex(6),
                    "assignment_id": aid,
                    "room_id": room_id,
                    "doc_name": name,
                    "student_id": student,
                    "due_at": spec.due_at,
                    "status": OPEN,
                    # Published less than a reminder's lead before it is due: no reminder
                    # right after the news itself.
                    "reminded": (spec.due_at - now).total_seconds()
                    <= self.settings.reminder_before_s,
                }
            )

        if spec.target == "groups":
            for group in await self.roster.groups_of_class(klass.id):
                work(group.id, doc_name)
        elif spec.target == "class":
            work(klass.id, doc_name)
        else:
            for student in await self.roster.members_with_role(klass.id, Role.STUDENT):
                work(klass.id, f"{base[:36]}-{secrets.token_hex(4)}", student)
        if not works:
            raise Refused("this class has no group or student to give the work to")
        await self.store.create(
            {
                "id": aid,
                "class_id": klass.id,
                "title": spec.title,
                "instructions": spec.instructions,
                "resources": _json(spec.resources),
                "target": spec.target,
                "doc_name": doc_name,
                "starter": spec.starter,
                "due_at": spec.due_at,
                "allow_late": spec.allow_late,
                "created_by": teacher_id,
                "created_at": now,
                "updated_at": now,
            },
            works,
        )
        if spec.starter:
            update = starter_update(spec.starter)
            if update:
                await self.docs.append(
                    [(w["room_id"], w["doc_name"], update, teacher_id) for w in works]
                )
        assignment = await self.store.get(aid)
        assert assignment is not None
        students: list[str] = []
        for w in works:
            if w["student_id"] is not None:
                students.append(w["student_id"])
            else:
                students.extend(await self.roster.members_with_role(w["room_id"], Role.STUDENT))
        await self.notifier.send(
            await self.with_parents(sorted(set(students))),
            "assigned",
            f"Nouveau travail : {spec.title}",
            f"À rendre le {self.when(spec.due_at)}.",
            rooms=await self.rooms_of_class(klass.id),
            assignment_id=aid,
        )
        self.nudge()
        return assignment

    async def postpone(
        self, assignment: AssignmentRow, due_at: datetime, audit: Note | None = None
    ) -> list[WorkRow]:
        before = {w.id: w.status for w in await self.store.works_of(assignment.id)}
        moved = await self.store.postpone(assignment.id, due_at, audit)
        students: list[str] = []
        for w in moved:
            self._forget(w)
            if before.get(w.id) in AT_DEADLINE:
                await self.registry.set_locked(w.room_id, w.doc_name, False, "deadline")
            students.extend(await self.unit_students(w))
        if moved:
            await self.notifier.send(
                [Recipient(s) for s in sorted(set(students))],
                "reopened",
                f"Date de rendu repoussée : {assignment.title}",
                f"À rendre le {self.when(due_at)}.",
                rooms=await self.rooms_of_class(assignment.class_id),
                assignment_id=assignment.id,
            )
        self.nudge()
        return moved

    def _forget(self, work: WorkRow) -> None:
        self.overdue.discard(work.key)

    async def _announce(self, work: WorkRow) -> None:
        """The work's new state (without the feedback: a draft until returned) on its
        group's channel, and for the class's teachers on the class channel. A personal
        work's state goes to the teachers only: classmates share the class channel."""
        event = {"kind": "work", "work": {**work.to_json(), "feedback": None}}
        if work.student_id is None and self.room_event is not None:
            self.room_event(work.room_id, event)
        info = await self.roster.get_room(work.room_id)
        class_id = info.class_id if info is not None else work.room_id
        if self.teacher_event is not None and (
            work.student_id is not None or class_id != work.room_id
        ):
            self.teacher_event(class_id, event)

    # --- handing in ---

    async def hand_in(self, work: WorkRow, assignment: AssignmentRow, by: str) -> WorkRow:
        claimed = await self.store.claim_hand_in(work.id, uuid.uuid4().hex, utcnow())
        if claimed is None:
            raise Refused("this work is already handed in, or past its due date")
        done = await self._freeze(claimed, HANDED_IN, by, assignment)
        if done is None:
            raise Refused("this work was frozen by its deadline meanwhile")
        teachers = await self.roster.members_with_role(assignment.class_id, Role.TEACHER)
        unit = await self._unit_name(done)
        await self.notifier.send(
            [Recipient(t) for t in teachers],
            "handed_in",
            f"Travail rendu : {assignment.title}",
            f"{unit} a rendu le travail le {self.when(done.submitted_at or utcnow())}.",
            rooms=[assignment.class_id],
            assignment_id=assignment.id,
            work_id=done.id,
        )
        return done

    async def _unit_name(self, work: WorkRow) -> str:
        if work.student_id is not None:
            names = await self.roster.display_names([work.student_id])
            return names.get(work.student_id, work.student_id)
        room = await self.roster.get_room(work.room_id)
        return room.name if room is not None else work.room_id

    async def _freeze(
        self, work: WorkRow, status: str, by: str | None, assignment: AssignmentRow | None
    ) -> WorkRow | None:
        """Lock the work's doc everywhere, wait for in-flight edits, record the rendu.
        None if the claim was lost meanwhile (another node re-claimed an expired one)."""
        live = await self.registry.open(work.room_id, work.doc_name)
        try:
            await self.registry.set_locked(work.room_id, work.doc_name, True, by or "deadline")
            await asyncio.sleep(self.settings.rendu_settle_s)
            state, vector = live.doc.get_update(), live.doc.get_state()
            ledger = self.progress.ledger(live)
            contributors = (
                sorted(u for u, f in ledger.figures().items() if u != UNATTRIBUTED and f.inserted)
                if ledger is not None
                else []
            )
            title = assignment.title if assignment is not None else "Rendu"
            finished = await self.store.finish(
                work,
                status,
                state=state,
                state_vector=vector,
                contributors=contributors,
                by=by,
                name=f"Rendu : {title}"[:200],
            )
        finally:
            self.registry.release(live)
        if finished is None:
            return None
        done = finished[0]
        self._forget(done)
        await self._announce(done)
        return done

    # --- the teacher's side ---

    async def reopen(
        self,
        work: WorkRow,
        assignment: AssignmentRow,
        due_at: datetime,
        audit: Note | None = None,
    ) -> WorkRow:
        opened = await self.store.reopen(work.id, due_at, audit)
        if opened is None:
            raise Refused("this work is being frozen; try again in a moment")
        self._forget(opened)
        await self.registry.set_locked(work.room_id, work.doc_name, False, assignment.created_by)
        await self.notifier.send(
            [Recipient(s) for s in await self.unit_students(opened)],
            "reopened",
            f"Travail rouvert : {assignment.title}",
            f"À rendre le {self.when(due_at)}.",
            rooms=await self.rooms_of_class(assignment.class_id),
            assignment_id=assignment.id,
            work_id=opened.id,
        )
        await self._announce(opened)
        self.nudge()
        return opened

    async def give_back(
        self, work: WorkRow, assignment: AssignmentRow, audit: Note | None = None
    ) -> WorkRow:
        """Return the rendu with its feedback ("rendu corrigé")."""
        done = await self.store.mark_returned(work.id, audit)
        if done is None:
            raise Refused("only a work handed in (or frozen at its deadline) can be returned")
        await self.notifier.send(
            await self.with_parents(await self.unit_students(done)),
            "returned",
            f"Travail corrigé : {assignment.title}",
            "Le professeur a rendu sa correction.",
            rooms=await self.rooms_of_class(assignment.class_id),
            assignment_id=assignment.id,
            work_id=done.id,
        )
        await self._announce(done)
        return done

    # --- the clock ---

    async def _clock(self) -> None:
        while True:
            try:
                wait = await self._tick()
            except Exception:
                log.exception("deadline clock: tick failed; retrying")
                wait = self.settings.deadline_poll_s
            self._wake.clear()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)

    async def _tick(self) -> float:
        """One step: lock what is due here, claim and freeze what is overdue, send the
        reminders; returns how long to sleep."""
        poll = self.settings.deadline_poll_s
        now = utcnow()
        # First from the agenda this node already holds (the clock woke for its first due
        # date): the docs held here lock without waiting for the database's answer.
        early = self._lock_due(self._agenda, now)
        agenda = await self.store.upcoming(now + timedelta(seconds=poll * 2))
        self._agenda = agenda
        # Replaced, not added to: a work another node reopened or postponed (its
        # ``_forget`` is its own) must not stay locked at load here.
        self.overdue = {w.key for w in agenda if w.due_at <= now}
        self._lock_due(agenda, now)
        for key in early - self.overdue:
            # Locked from the held agenda, but not due any more: moved meanwhile (an
            # extension, a postponement) — open again, unless it was handed in.
            fresh = await self.store.work_of_doc(*key)
            live = self.registry.docs.get(key)
            if fresh is not None and fresh.status == OPEN and fresh.due_at > now and live:
                live.set_locked(False)
        if len(self._locked_here) > 100_000:
            self._locked_here.clear()
        while len(self._freezing) < FREEZES_IN_FLIGHT:
            claimed = await self.store.claim_overdue(
                uuid.uuid4().hex, now, self.settings.deadline_lease_s, CLAIM_BATCH
            )
            for w in claimed:
                task = asyncio.get_running_loop().create_task(
                    self._freeze_overdue(w), name=f"freeze {w.id}"
                )
                self._freezing.add(task)
                task.add_done_callback(self._freezing.discard)
            if len(claimed) < CLAIM_BATCH:
                break
        for back in await self.store.release_stale(now, self.settings.deadline_lease_s):
            log.warning("hand-in of %s interrupted (its node died): open again", back.id)
            await self.registry.set_locked(back.room_id, back.doc_name, False, "system")
            await self._announce(back)
        await self._remind(now)
        future = [w.due_at for w in agenda if w.due_at > now]
        if future:
            return max(0.0, min(poll, (min(future) - utcnow()).total_seconds()))
        return poll

    def _lock_due(self, agenda: list[WorkRow], now: datetime) -> set[tuple[str, str]]:
        """Lock the docs held here of the works due by ``now`` (once per due date);
        returns the keys locked by this call."""
        locked: set[tuple[str, str]] = set()
        for w in agenda:
            if w.due_at > now:
                continue
            mark = (w.id, unix(w.due_at))
            if mark not in self._locked_here:
                self._locked_here.add(mark)
                live = self.registry.docs.get(w.key)
                if live is not None:
                    live.set_locked(True)  # here at once; the freeze stores and relays it
                    locked.add(w.key)
        return locked

    async def _freeze_overdue(self, work: WorkRow) -> None:
        async with self._gate:
            try:
                assignment = await self.store.get(work.assignment_id)
                status = LATE if assignment is not None and assignment.allow_late else MISSED
                await self._freeze(work, status, None, assignment)
            except Exception:
                log.exception("freeze of %s failed; another try after its lease", work.id)

    async def _remind(self, now: datetime) -> None:
        for w in await self.store.claim_reminders(now, self.settings.reminder_before_s):
            assignment = await self.store.get(w.assignment_id)
            if assignment is None or assignment.archived:
                continue
            await self.notifier.send(
                [Recipient(s) for s in await self.unit_students(w)],
                "due_soon",
                f"À rendre bientôt : {assignment.title}",
                f"À rendre le {self.when(w.due_at)}.",
                rooms=await self.rooms_of_class(assignment.class_id),
                assignment_id=assignment.id,
                work_id=w.id,
            )


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)
