"""One person's data, read and erased (the RGPD's rights of access and erasure).

Reading (:func:`holdings`, :func:`counts`) gathers every row Atelier keeps that names a
user, across the tables; erasing (:func:`erase_rows`) rewrites or deletes them in one
write transaction. Erasure *pseudonymises* what belongs to a group (the log of a shared
doc, versions, hand-ins of a group's work): the user's id is replaced by a random
pseudonym that is kept nowhere beside the id, so the group's work stays whole and no
longer names them. What is theirs alone (chat text, notifications, their sessions, their
roster entry) is deleted.

The attribution summaries beside snapshots (``doc.attribution``) are msgpack; they are
rewritten here with a function from server/progress/ passed in (``Rename``), so that this
package keeps knowing nothing of the ledger's format.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from server.persistence.chat import ChatMessage
from server.persistence.db import is_postgres, writer
from server.persistence.models import (
    assignment_t,
    audit_t,
    auth_session_t,
    chat_message_t,
    chat_mute_t,
    doc_t,
    doc_update_t,
    doc_version_t,
    membership_t,
    notification_t,
    parent_link_t,
    unix,
    user_t,
    utcnow,
    work_t,
)

#: (attribution summary bytes, old user id, new id) → the rewritten summary, or None when
#: the summary does not name the user (the row is then left alone).
Rename = Callable[[bytes, str, str], bytes | None]

#: What a chat message of an erased person reads as (its text is gone from the database).
ERASED_AUTHOR = "Personne effacée"


def _ts(value: Any) -> float | None:
    return None if value is None else unix(value)


def _mentions(column: sa.ColumnElement[str], user_id: str) -> sa.ColumnElement[bool]:
    """A JSON list of ids (``doc_version.contributors``) holding ``user_id``."""
    return column.like(f"%{json.dumps(user_id)}%")


def _rooms_touched(user_id: str) -> sa.CompoundSelect[tuple[str]]:
    """Every room where the user is, or left a trace: memberships, doc log, versions,
    chat, works. The docs to look at for contributions (and to pseudonymise)."""
    return sa.union(
        sa.select(membership_t.c.room_id).where(membership_t.c.user_id == user_id),
        sa.select(doc_update_t.c.room_id).where(doc_update_t.c.author_id == user_id),
        sa.select(doc_version_t.c.room_id).where(
            sa.or_(
                doc_version_t.c.created_by == user_id,
                _mentions(doc_version_t.c.contributors, user_id),
            )
        ),
        sa.select(chat_message_t.c.room_id).where(chat_message_t.c.author_id == user_id),
        sa.select(work_t.c.room_id).where(
            sa.or_(work_t.c.student_id == user_id, work_t.c.submitted_by == user_id)
        ),
    )


async def docs_touched(engine: AsyncEngine, user_id: str) -> list[tuple[str, str]]:
    """(room, doc) of every doc in the rooms the user is in or wrote in."""
    rooms = _rooms_touched(user_id).subquery()
    query = (
        sa.select(doc_t.c.room_id, doc_t.c.name)
        .where(doc_t.c.room_id.in_(sa.select(rooms.c[0])))
        .order_by(doc_t.c.room_id, doc_t.c.name)
    )
    async with engine.connect() as conn:
        return [(r.room_id, r.name) for r in await conn.execute(query)]


@dataclass(slots=True)
class Holdings:
    """Everything the database holds that names one user (for the export)."""

    user: dict[str, Any]
    memberships: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    sessions: list[dict[str, Any]] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    chat: list[dict[str, Any]] = field(default_factory=list)
    works: list[dict[str, Any]] = field(default_factory=list)
    versions: list[dict[str, Any]] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)
    doc_updates: int = 0


async def holdings(engine: AsyncEngine, user_id: str) -> Holdings | None:
    """The user's rows, or None for an id the roster does not hold (removed included)."""
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(user_t).where(user_t.c.id == user_id))).first()
        if row is None:
            return None
        out = Holdings(
            user={
                "id": row.id,
                "role": row.role.value if hasattr(row.role, "value") else str(row.role),
                "display_name": row.display_name,
                "school_id": row.school_id,
                "removed_at": _ts(row.removed_at),
            }
        )
        out.memberships = list(
            await conn.scalars(
                sa.select(membership_t.c.room_id)
                .where(membership_t.c.user_id == user_id)
                .order_by(membership_t.c.room_id)
            )
        )
        out.children = list(
            await conn.scalars(
                sa.select(parent_link_t.c.student_id).where(parent_link_t.c.parent_id == user_id)
            )
        )
        out.parents = list(
            await conn.scalars(
                sa.select(parent_link_t.c.parent_id).where(parent_link_t.c.student_id == user_id)
            )
        )
        out.sessions = [
            {
                "created_at": _ts(r.created_at),
                "expires_at": _ts(r.expires_at),
                "ended_at": _ts(r.ended_at),
            }
            for r in await conn.execute(
                sa.select(auth_session_t)
                .where(auth_session_t.c.user_id == user_id)
                .order_by(auth_session_t.c.created_at)
            )
        ]
        out.notifications = [
            {
                "id": r.id,
                "kind": r.kind,
                "child_id": r.child_id,
                "title": r.title,
                "body": r.body,
                "created_at": _ts(r.created_at),
                "read_at": _ts(r.read_at),
            }
            for r in await conn.execute(
                sa.select(notification_t)
                .where(notification_t.c.user_id == user_id)
                .order_by(notification_t.c.created_at)
            )
        ]
        out.chat = [
            {
                "room_id": r.room_id,
                "seq": r.seq,
                "text": "" if r.deleted else r.text,
                "deleted": bool(r.deleted),
                "created_at": _ts(r.created_at),
                "edited_at": _ts(r.edited_at),
            }
            for r in await conn.execute(
                sa.select(chat_message_t)
                .where(chat_message_t.c.author_id == user_id)
                .order_by(chat_message_t.c.created_at, chat_message_t.c.id)
            )
        ]
        works_q = (
            sa.select(work_t, assignment_t.c.title)
            .join(assignment_t, assignment_t.c.id == work_t.c.assignment_id)
            .where(
                sa.or_(
                    work_t.c.student_id == user_id,
                    work_t.c.submitted_by == user_id,
                    work_t.c.room_id.in_(
                        sa.select(membership_t.c.room_id).where(membership_t.c.user_id == user_id)
                    )
                    & work_t.c.student_id.is_(None),
                )
            )
            .order_by(work_t.c.due_at)
        )
        out.works = [
            {
                "assignment": r.title,
                "room_id": r.room_id,
                "doc_name": r.doc_name,
                "status": r.status,
                "due_at": _ts(r.due_at),
                "handed_in_by_me": r.submitted_by == user_id,
                "submitted_at": _ts(r.submitted_at),
                "comment": r.comment if r.submitted_by == user_id else None,
                "appreciation": r.appreciation,
                "mark": r.mark,
                "returned_at": _ts(r.returned_at),
            }
            for r in await conn.execute(works_q)
        ]
        out.versions = [
            {
                "room_id": r.room_id,
                "doc_name": r.doc_name,
                "kind": r.kind,
                "name": r.name,
                "created_at": _ts(r.created_at),
                "created_by_me": r.created_by == user_id,
            }
            for r in await conn.execute(
                sa.select(
                    doc_version_t.c.room_id,
                    doc_version_t.c.doc_name,
                    doc_version_t.c.kind,
                    doc_version_t.c.name,
                    doc_version_t.c.created_at,
                    doc_version_t.c.created_by,
                )
                .where(
                    sa.or_(
                        doc_version_t.c.created_by == user_id,
                        _mentions(doc_version_t.c.contributors, user_id),
                    )
                )
                .order_by(doc_version_t.c.id)
            )
        ]
        out.audit = [
            {
                "at": _ts(r.at),
                "action": r.action,
                "by_me": r.actor == user_id,
                "target": r.target,
            }
            for r in await conn.execute(
                sa.select(audit_t.c.at, audit_t.c.action, audit_t.c.actor, audit_t.c.target)
                .where(sa.or_(audit_t.c.actor == user_id, audit_t.c.target == user_id))
                .order_by(audit_t.c.id)
            )
        ]
        out.doc_updates = int(
            await conn.scalar(sa.select(sa.func.count()).where(doc_update_t.c.author_id == user_id))
            or 0
        )
    return out


async def counts(engine: AsyncEngine, user_id: str) -> dict[str, int]:
    """How many rows of each class of data name the user ("Mes données")."""
    queries = {
        "chat": sa.select(sa.func.count()).where(chat_message_t.c.author_id == user_id),
        "doc_updates": sa.select(sa.func.count()).where(doc_update_t.c.author_id == user_id),
        "versions": sa.select(sa.func.count()).where(
            sa.or_(
                doc_version_t.c.created_by == user_id,
                _mentions(doc_version_t.c.contributors, user_id),
            )
        ),
        "works": sa.select(sa.func.count()).where(
            sa.or_(work_t.c.student_id == user_id, work_t.c.submitted_by == user_id)
        ),
        "notifications": sa.select(sa.func.count()).where(notification_t.c.user_id == user_id),
        "sessions": sa.select(sa.func.count()).where(auth_session_t.c.user_id == user_id),
        "memberships": sa.select(sa.func.count()).where(membership_t.c.user_id == user_id),
        "audit": sa.select(sa.func.count()).where(
            sa.or_(audit_t.c.actor == user_id, audit_t.c.target == user_id)
        ),
    }
    async with engine.connect() as conn:
        return {name: int(await conn.scalar(q) or 0) for name, q in queries.items()}


async def find_people(engine: AsyncEngine, text: str, limit: int = 20) -> list[dict[str, str]]:
    """Users whose id or display name contains ``text`` (admins looking for a person)."""
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    query = (
        sa.select(user_t.c.id, user_t.c.display_name, user_t.c.role)
        .where(
            sa.or_(
                user_t.c.id.ilike(pattern, escape="\\"),
                user_t.c.display_name.ilike(pattern, escape="\\"),
            )
        )
        .order_by(user_t.c.id)
        .limit(limit)
    )
    async with engine.connect() as conn:
        return [
            {"id": r.id, "name": r.display_name, "role": getattr(r.role, "value", str(r.role))}
            for r in await conn.execute(query)
        ]


async def messages_of(
    engine: AsyncEngine, author_id: str, room_ids: Sequence[str], limit: int = 5000
) -> list[ChatMessage]:
    """The chat messages of ``author_id`` in these rooms, oldest first (an erasure shows
    the open room channels its emptied messages)."""
    if not room_ids:
        return []
    query = (
        sa.select(chat_message_t)
        .where(chat_message_t.c.author_id == author_id, chat_message_t.c.room_id.in_(room_ids))
        .order_by(chat_message_t.c.id)
        .limit(limit)
    )
    async with engine.connect() as conn:
        return [ChatMessage._from_row(r) for r in await conn.execute(query)]


async def shut_out(engine: AsyncEngine, user_id: str) -> bool:
    """Mark the user removed from the roster (unknown to sign-in and access checks) ahead
    of their erasure. False if the roster does not hold them."""
    async with writer(engine).begin() as conn:
        result = await conn.execute(
            user_t.update()
            .where(user_t.c.id == user_id)
            .values(removed_at=sa.func.coalesce(user_t.c.removed_at, utcnow()))
        )
    return bool(result.rowcount)


async def open_sessions(engine: AsyncEngine, user_id: str) -> list[str]:
    """The user's sign-in sessions still open (not ended, not expired)."""
    query = sa.select(auth_session_t.c.id).where(
        auth_session_t.c.user_id == user_id,
        auth_session_t.c.ended_at.is_(None),
        auth_session_t.c.expires_at > utcnow(),
    )
    async with engine.connect() as conn:
        return list(await conn.scalars(query))


async def _rename_summaries(
    conn: AsyncConnection,
    pg: bool,
    docs: Sequence[tuple[str, str]],
    user_id: str,
    pseudonym: str,
    rename: Rename,
) -> int:
    changed = 0
    for room_id, name in docs:
        where = (doc_t.c.room_id == room_id) & (doc_t.c.name == name)
        query = sa.select(doc_t.c.attribution).where(where, doc_t.c.attribution.is_not(None))
        if pg:
            # Wait for a fold in progress (it holds FOR NO KEY UPDATE) and read what it wrote.
            query = query.with_for_update(key_share=True)
        blob = await conn.scalar(query)
        if blob is None:
            continue
        new = rename(bytes(blob), user_id, pseudonym)
        if new is not None:
            await conn.execute(doc_t.update().where(where).values(attribution=new))
            changed += 1
    return changed


async def pseudonymise_docs(
    engine: AsyncEngine,
    docs: Sequence[tuple[str, str]],
    user_id: str,
    pseudonym: str,
    rename: Rename,
) -> dict[str, int]:
    """The doc log's authors and the snapshots' attribution summaries, again: updates a
    socket of the user sent just before it closed may reach the database after the main
    erasure transaction (write-behind), and a fold may have carried them into a summary."""
    async with writer(engine).begin() as conn:
        updates = await conn.execute(
            doc_update_t.update()
            .where(doc_update_t.c.author_id == user_id)
            .values(author_id=pseudonym)
        )
        summaries = await _rename_summaries(
            conn, is_postgres(engine), docs, user_id, pseudonym, rename
        )
    return {"doc_updates": updates.rowcount or 0, "attribution": summaries}


async def erase_rows(
    engine: AsyncEngine,
    user_id: str,
    pseudonym: str,
    docs: Sequence[tuple[str, str]],
    rename: Rename,
) -> dict[str, int] | None:
    """Erase one user in one write transaction; counts per data class (rows changed).
    None if the roster does not hold the user. The caller records the audit row."""
    pg = is_postgres(engine)
    n: dict[str, int] = {}
    async with writer(engine).begin() as conn:
        exists = await conn.scalar(sa.select(user_t.c.id).where(user_t.c.id == user_id))
        if exists is None:
            return None

        async def run(key: str, statement: sa.Executable) -> None:
            result = await conn.execute(statement)
            n[key] = n.get(key, 0) + (getattr(result, "rowcount", 0) or 0)

        # Chat: no text left, the author a pseudonym; the rows (and their seq) stay, so a
        # room's history has no hole, and reads "message supprimé".
        await run(
            "chat_messages",
            chat_message_t.update()
            .where(chat_message_t.c.author_id == user_id)
            .values(
                author_id=pseudonym,
                author_name=ERASED_AUTHOR,
                text="",
                deleted=True,
                # By its (pseudonymous) author: clients show « Message supprimé », not
                # a moderation.
                deleted_by=pseudonym,
                version=chat_message_t.c.version + 1,
            ),
        )
        await run(
            "chat_moderation",
            chat_message_t.update()
            .where(chat_message_t.c.deleted_by == user_id)
            .values(deleted_by=pseudonym),
        )
        await run("chat_mutes", chat_mute_t.delete().where(chat_mute_t.c.user_id == user_id))
        await run(
            "chat_mutes",
            chat_mute_t.update()
            .where(chat_mute_t.c.muted_by == user_id)
            .values(muted_by=pseudonym),
        )
        # Docs: authorship pseudonymised, content kept (it is the group's work).
        await run(
            "doc_updates",
            doc_update_t.update()
            .where(doc_update_t.c.author_id == user_id)
            .values(author_id=pseudonym),
        )
        await run(
            "versions",
            doc_version_t.update()
            .where(doc_version_t.c.created_by == user_id)
            .values(created_by=pseudonym),
        )
        listed = (
            await conn.execute(
                sa.select(doc_version_t.c.id, doc_version_t.c.contributors).where(
                    _mentions(doc_version_t.c.contributors, user_id)
                )
            )
        ).all()
        for row in listed:
            ids = [pseudonym if u == user_id else u for u in json.loads(row.contributors)]
            await conn.execute(
                doc_version_t.update()
                .where(doc_version_t.c.id == row.id)
                .values(contributors=json.dumps(sorted(set(ids))))
            )
        n["versions"] = n.get("versions", 0) + len(listed)
        n["attribution"] = await _rename_summaries(conn, pg, docs, user_id, pseudonym, rename)
        # Hand-ins and feedback: a student's own work loses their comment and the
        # teacher's words about them; a group's work keeps its feedback (the group's).
        await run(
            "works",
            work_t.update()
            .where(work_t.c.student_id == user_id)
            .values(student_id=pseudonym, comment=None, appreciation=None, mark=None),
        )
        await run(
            "works",
            work_t.update()
            .where(work_t.c.submitted_by == user_id)
            .values(submitted_by=pseudonym, comment=None),
        )
        await run(
            "works",
            work_t.update().where(work_t.c.feedback_by == user_id).values(feedback_by=pseudonym),
        )
        await run(
            "assignments",
            assignment_t.update()
            .where(assignment_t.c.created_by == user_id)
            .values(created_by=pseudonym),
        )
        # Theirs alone: deleted (a parent's feed about this child too).
        await run(
            "notifications",
            notification_t.delete().where(
                sa.or_(notification_t.c.user_id == user_id, notification_t.c.child_id == user_id)
            ),
        )
        await run("sessions", auth_session_t.delete().where(auth_session_t.c.user_id == user_id))
        # The audit trail keeps what was done, by a pseudonym.
        await run(
            "audit",
            audit_t.update().where(audit_t.c.actor == user_id).values(actor=pseudonym),
        )
        await run(
            "audit",
            audit_t.update().where(audit_t.c.target == user_id).values(target=pseudonym),
        )
        # The roster entry last: memberships and parent links go with it (ON DELETE CASCADE).
        n["memberships"] = int(
            await conn.scalar(sa.select(sa.func.count()).where(membership_t.c.user_id == user_id))
            or 0
        )
        n["parent_links"] = int(
            await conn.scalar(
                sa.select(sa.func.count()).where(
                    sa.or_(
                        parent_link_t.c.parent_id == user_id,
                        parent_link_t.c.student_id == user_id,
                    )
                )
            )
            or 0
        )
        await conn.execute(membership_t.delete().where(membership_t.c.user_id == user_id))
        await conn.execute(
            parent_link_t.delete().where(
                sa.or_(parent_link_t.c.parent_id == user_id, parent_link_t.c.student_id == user_id)
            )
        )
        await run("roster", user_t.delete().where(user_t.c.id == user_id))
    return n
