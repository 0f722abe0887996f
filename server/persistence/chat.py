"""The chat store: messages numbered per room, edits and deletions, mutes.

Theory of operation. ``seq`` numbers a room's messages 1, 2, 3 … with no gap and no
duplicate, whichever node posts (docs/protocol.md). A post is one write transaction:

1. bump the room's counter: ``INSERT INTO room_counter … ON CONFLICT (room_id) DO UPDATE
   SET last_seq = room_counter.last_seq + 1 RETURNING last_seq``. On PostgreSQL the
   upsert takes the counter row's lock (or, for a new room, waits on the other inserter's
   speculative row and then updates it); on SQLite the writer's ``BEGIN IMMEDIATE`` holds
   the whole database. Either way the next post of the room waits here until this one
   commits or rolls back;
2. insert the message with that ``seq``.

So seqs are handed out in commit order, a rolled-back post gives its number back (the
bump rolls back with it), and ``UNIQUE (room_id, seq)`` is the backstop. Because of that
per-room lock a reader never sees ``seq`` N+1 committed before N.

Edits and deletions bump ``version`` in place; a deleted message keeps its row and its
``seq`` with its text erased (``""``). The store takes text as given: normalising and
checking it is the server's job.

Timestamps are stored as ``timestamptz`` (UTC) and given out as unix seconds (floats).
SQLite keeps no zone (it stores the UTC wall clock), so a naive value read back is UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from server.persistence.audit import Note
from server.persistence.db import is_postgres, writer
from server.persistence.models import chat_message_t, chat_mute_t, room_counter_t, unix, utcnow


@dataclass(frozen=True, slots=True)
class ChatMessage:
    id: int
    seq: int
    room_id: str
    author_id: str
    author_name: str
    author_role: str
    text: str
    at: float  # unix seconds, server clock
    edited_at: float | None
    deleted: bool
    deleted_by: str | None
    version: int

    def to_wire(self) -> dict[str, Any]:
        """The protocol's ``Message`` map (docs/protocol.md)."""
        return {
            "id": self.id,
            "seq": self.seq,
            "room": self.room_id,
            "author": {"id": self.author_id, "name": self.author_name, "role": self.author_role},
            "text": self.text,
            "at": self.at,
            "edited_at": self.edited_at,
            "deleted": self.deleted,
            "deleted_by": self.deleted_by,
            "version": self.version,
        }

    @classmethod
    def _from_row(cls, row: sa.Row[Any]) -> ChatMessage:
        return cls(
            id=int(row.id),
            seq=int(row.seq),
            room_id=row.room_id,
            author_id=row.author_id,
            author_name=row.author_name,
            author_role=row.author_role,
            text=row.text,
            at=unix(row.created_at),
            edited_at=unix(row.edited_at) if row.edited_at is not None else None,
            deleted=bool(row.deleted),
            deleted_by=row.deleted_by,
            version=int(row.version),
        )


_m = chat_message_t.c


class ChatStore:
    """Reads and writes chat messages and mutes; stateless apart from the engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = writer(engine)
        self._pg = is_postgres(engine)

    def _insert(self, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
        return postgresql.insert(table) if self._pg else sqlite.insert(table)

    @staticmethod
    def _one(room_id: str, message_id: int) -> sa.ColumnElement[bool]:
        return sa.and_(_m.id == message_id, _m.room_id == room_id)

    # -- messages ---------------------------------------------------------------------

    async def post(
        self, room_id: str, author_id: str, author_name: str, author_role: str, text: str
    ) -> ChatMessage:
        """Store a new message with the room's next ``seq`` (see the module docstring)."""
        bump = (
            self._insert(room_counter_t)
            .values(room_id=room_id, last_seq=1)
            .on_conflict_do_update(
                index_elements=["room_id"],
                set_={"last_seq": room_counter_t.c.last_seq + 1},
            )
            .returning(room_counter_t.c.last_seq)
        )
        async with self._writer.begin() as conn:
            seq = (await conn.execute(bump)).scalar_one()
            row = (
                await conn.execute(
                    chat_message_t.insert()
                    .values(
                        room_id=room_id,
                        seq=seq,
                        author_id=author_id,
                        author_name=author_name,
                        author_role=author_role,
                        text=text,
                        created_at=utcnow(),
                        deleted=False,
                        version=1,
                    )
                    .returning(*chat_message_t.c)
                )
            ).one()
        return ChatMessage._from_row(row)

    async def edit(self, room_id: str, message_id: int, text: str) -> ChatMessage | None:
        """New text, ``edited_at`` now, ``version`` + 1. None if there is no such message
        in this room, or it is deleted."""
        stmt = (
            chat_message_t.update()
            .where(self._one(room_id, message_id), _m.deleted == sa.false())
            .values(text=text, edited_at=utcnow(), version=_m.version + 1)
            .returning(*chat_message_t.c)
        )
        async with self._writer.begin() as conn:
            row = (await conn.execute(stmt)).first()
        return ChatMessage._from_row(row) if row is not None else None

    async def delete(
        self, room_id: str, message_id: int, by_user: str, audit: Note | None = None
    ) -> ChatMessage | None:
        """Erase the text, mark deleted (by whom), ``version`` + 1. Idempotent: deleting a
        deleted message returns it unchanged. None if there is no such message here.
        ``audit`` is written with the deletion (not for a message deleted already)."""
        stmt = (
            chat_message_t.update()
            .where(self._one(room_id, message_id), _m.deleted == sa.false())
            .values(text="", deleted=True, deleted_by=by_user, version=_m.version + 1)
            .returning(*chat_message_t.c)
        )
        async with self._writer.begin() as conn:
            row = (await conn.execute(stmt)).first()
            if row is None:  # missing, or deleted already (then: as it stands)
                return await self._get_in(conn, room_id, message_id)
            if audit is not None:
                await audit.write(conn)
        return ChatMessage._from_row(row)

    async def get(self, room_id: str, message_id: int) -> ChatMessage | None:
        async with self._engine.connect() as conn:
            return await self._get_in(conn, room_id, message_id)

    async def _get_in(
        self, conn: AsyncConnection, room_id: str, message_id: int
    ) -> ChatMessage | None:
        row = (
            await conn.execute(sa.select(chat_message_t).where(self._one(room_id, message_id)))
        ).first()
        return ChatMessage._from_row(row) if row is not None else None

    async def recent(self, room_id: str, limit: int) -> list[ChatMessage]:
        """The last ``limit`` messages of the room, oldest first."""
        return await self.before(room_id, None, limit)

    async def before(self, room_id: str, before_seq: int | None, limit: int) -> list[ChatMessage]:
        """Up to ``limit`` messages with ``seq < before_seq`` (None: the newest), the
        closest to ``before_seq``, oldest first. A page of history."""
        if limit <= 0:
            return []
        query = sa.select(chat_message_t).where(_m.room_id == room_id)
        if before_seq is not None:
            query = query.where(_m.seq < before_seq)
        query = query.order_by(_m.seq.desc()).limit(limit)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [ChatMessage._from_row(r) for r in reversed(rows)]

    async def since(self, room_id: str, after_seq: int, limit: int = 500) -> list[ChatMessage]:
        """Up to ``limit`` messages with ``seq > after_seq``, oldest first (gap filling)."""
        if limit <= 0:
            return []
        query = (
            sa.select(chat_message_t)
            .where(_m.room_id == room_id, _m.seq > after_seq)
            .order_by(_m.seq)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [ChatMessage._from_row(r) for r in rows]

    async def last_seq(self, room_id: str) -> int:
        """The seq of the room's newest message; 0 if it has none."""
        async with self._engine.connect() as conn:
            last = await conn.scalar(
                sa.select(room_counter_t.c.last_seq).where(room_counter_t.c.room_id == room_id)
            )
        return int(last or 0)

    # -- mutes ------------------------------------------------------------------------

    async def set_muted(
        self, room_id: str, user_id: str, muted: bool, by: str, audit: Note | None = None
    ) -> None:
        """Mute or unmute ``user_id`` in the room. Idempotent: muting a muted user keeps
        the first mute (its author and time). ``audit`` is written with the change."""
        stmt: sa.Executable
        if muted:
            stmt = (
                self._insert(chat_mute_t)
                .values(room_id=room_id, user_id=user_id, muted_by=by, created_at=utcnow())
                .on_conflict_do_nothing(index_elements=["room_id", "user_id"])
            )
        else:
            stmt = chat_mute_t.delete().where(
                chat_mute_t.c.room_id == room_id, chat_mute_t.c.user_id == user_id
            )
        async with self._writer.begin() as conn:
            await conn.execute(stmt)
            if audit is not None:
                await audit.write(conn)

    async def muted_users(self, room_id: str) -> set[str]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(chat_mute_t.c.user_id).where(chat_mute_t.c.room_id == room_id)
            )
            return set(rows.scalars())
