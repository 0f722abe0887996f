"""The doc store: a snapshot per doc plus an append-only log of Yjs updates.

Theory of operation. Rooms append client updates in batches (group commit: one
transaction per batch, whatever the number of docs). Once a doc's log grows, or when its
room unloads, :meth:`DocStore.compact` folds the log into the snapshot. Several nodes may
append to and compact the same doc at once, so:

- The fold is a *pure merge* (``pycrdt.merge_updates``): an update whose causal
  dependencies are not stored yet (appended out of order by another node) is kept in the
  merged snapshot as pending, instead of being dropped as applying it to a Doc would.
- A fold deletes exactly the log rows it read, by id. On PostgreSQL ids come from a
  sequence at insert time, so an id can commit *after* a larger one: "delete id <= max"
  would lose it.
- The fold locks the doc row (``FOR NO KEY UPDATE`` on PostgreSQL, the write lock on
  SQLite), so two folds of one doc run one after the other. ``NO KEY`` because appends
  take a ``KEY SHARE`` lock on that row through the log's foreign key: a fold never blocks
  an append.
- A load reads the log *before* the snapshot. Under READ COMMITTED, a fold committing
  between the two reads then moves rows we already read into a snapshot we read next
  (duplicates are harmless: updates are idempotent). The other order could miss them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pycrdt
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from server.persistence.audit import Note
from server.persistence.db import is_postgres, writer
from server.persistence.models import doc_t, doc_update_t, unix, utcnow
from server.persistence.writer import Item

#: (snapshot, attribution summary, [(update, author, unix time)]) → the new summary.
Fold = Callable[[bytes | None, bytes | None, Sequence[tuple[bytes, str | None, float]]], bytes]

#: Ids per DELETE statement: under SQLite's bound-parameter limit, small enough for PG.
_DELETE_CHUNK = 5000


# The statements of a doc's load, built once: constructing a select and its cache key
# on every call cost more CPU than the database did (py-spy, a storm of doc loads).
_LOAD_LOG = (
    sa.select(doc_update_t.c.data, doc_update_t.c.author_id, doc_update_t.c.created_at)
    .where(
        doc_update_t.c.room_id == sa.bindparam("room_id"),
        doc_update_t.c.doc_name == sa.bindparam("doc_name"),
    )
    .order_by(doc_update_t.c.id)
)
_LOAD_HEAD = sa.select(doc_t.c.snapshot, doc_t.c.locked, doc_t.c.attribution).where(
    doc_t.c.room_id == sa.bindparam("room_id"), doc_t.c.name == sa.bindparam("doc_name")
)


class _SqliteLoad:
    """A doc's load on SQLite, on the driver itself: one trip to aiosqlite's thread per
    statement instead of about six (SQLAlchemy's BEGIN, then cursor, execute, fetch and
    close for each statement, then the rollback), each trip a hand-over between the
    event loop and that thread. 2.1 → 0.55 ms of CPU per load of a missing doc, four
    fifths of it in the loop's thread (a storm loads hundreds of docs within seconds).

    The same statements, compiled once by SQLAlchemy for SQLite (so the SQL follows the
    tables), and the timestamp converted by the column type's own result processor. The
    connection runs in autocommit (``db.py`` emits its own BEGIN, not here), so each
    statement reads the latest commit: log first, then snapshot, as the module docstring
    requires of any isolation at or above READ COMMITTED.
    """

    def __init__(self) -> None:
        dialect = sqlite.dialect()
        self.log, self.log_params = self._compile(_LOAD_LOG, dialect)
        self.head, self.head_params = self._compile(_LOAD_HEAD, dialect)
        created_at = doc_update_t.c.created_at.type.dialect_impl(dialect)
        process = created_at.result_processor(dialect, None)
        assert process is not None  # SQLite stores a DateTime as text
        self.created_at: Callable[[Any], Any] = process

    @staticmethod
    def _compile(stmt: sa.Select, dialect: sa.Dialect) -> tuple[str, tuple[str, ...]]:
        compiled = stmt.compile(dialect=dialect)
        return str(compiled), tuple(compiled.positiontup or ())

    async def __call__(self, engine: AsyncEngine, room_id: str, doc_name: str) -> StoredDoc:
        where = {"room_id": room_id, "doc_name": doc_name}
        async with engine.connect() as conn:
            driver: Any = (await conn.get_raw_connection()).driver_connection
            rows = await driver.execute_fetchall(self.log, [where[k] for k in self.log_params])
            heads = await driver.execute_fetchall(self.head, [where[k] for k in self.head_params])
        created_at = self.created_at
        updates = [bytes(r[0]) for r in rows]
        authors = [r[1] for r in rows]
        times = [unix(created_at(r[2])) for r in rows]
        if not heads:
            return StoredDoc(None, updates, False, authors, times)
        snapshot, locked, attribution = heads[0]
        return StoredDoc(
            bytes(snapshot) if snapshot is not None else None,
            updates,
            bool(locked),
            authors,
            times,
            bytes(attribution) if attribution is not None else None,
        )


_sqlite_load = _SqliteLoad()

_NAMES = (
    sa.select(doc_t.c.name)
    .where(doc_t.c.room_id == sa.bindparam("room_id"))
    .limit(sa.bindparam("limit", type_=sa.Integer))
)


@dataclass(frozen=True, slots=True)
class StoredDoc:
    snapshot: bytes | None  # folded state (a Yjs v1 update) or None
    updates: list[bytes]  # log entries not yet folded, in id order
    locked: bool
    #: Per log entry: who sent it (None: no single author) and when it was stored (unix).
    authors: list[str | None] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    #: The attribution of what ``snapshot`` folded (a ledger summary), or None.
    attribution: bytes | None = None

    def as_update(self) -> bytes | None:
        """Snapshot and log merged into one update (None for an empty doc): apply *this*.

        Applying the parts one by one to a ``pycrdt.Doc`` loses content when the log
        holds updates out of causal order (several nodes append concurrently): pycrdt
        0.14 (yrs 0.28) drops the second of two pending updates. A single merged update
        carries no such gap. See ``test_pycrdt_drops_a_second_pending_update``.
        """
        parts = [self.snapshot] if self.snapshot is not None else []
        parts.extend(self.updates)
        if len(parts) <= 1:
            return parts[0] if parts else None
        return pycrdt.merge_updates(*parts)


class DocStore:
    """Reads and writes docs; stateless apart from the engine, so safe to share."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = writer(engine)
        self._pg = is_postgres(engine)

    def _insert(self, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
        return postgresql.insert(table) if self._pg else sqlite.insert(table)

    def _where(self, room_id: str, doc_name: str) -> sa.ColumnElement[bool]:
        return sa.and_(doc_t.c.room_id == room_id, doc_t.c.name == doc_name)

    def _log_where(self, room_id: str, doc_name: str) -> sa.ColumnElement[bool]:
        return sa.and_(doc_update_t.c.room_id == room_id, doc_update_t.c.doc_name == doc_name)

    async def load(self, room_id: str, doc_name: str) -> StoredDoc:
        """The stored doc; a missing one is ``StoredDoc(None, [], False)``. Creates nothing."""
        if not self._pg:
            return await _sqlite_load(self._engine, room_id, doc_name)
        where = {"room_id": room_id, "doc_name": doc_name}
        async with self._engine.connect() as conn:
            # Log first, then snapshot: see the module docstring.
            rows = (await conn.execute(_LOAD_LOG, where)).all()
            head = (await conn.execute(_LOAD_HEAD, where)).first()
        updates = [bytes(r.data) for r in rows]
        authors = [r.author_id for r in rows]
        times = [unix(r.created_at) for r in rows]
        if head is None:
            return StoredDoc(None, updates, False, authors, times)
        snapshot = bytes(head.snapshot) if head.snapshot is not None else None
        attribution = bytes(head.attribution) if head.attribution is not None else None
        return StoredDoc(snapshot, updates, bool(head.locked), authors, times, attribution)

    async def names(self, room_id: str, limit: int) -> set[str]:
        """The names of a room's stored docs, at most ``limit`` of them."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(_NAMES, {"room_id": room_id, "limit": limit})
            return {r.name for r in rows}

    async def append(self, items: Sequence[Item]) -> None:
        """Append ``(room_id, doc_name, update, author)`` items, all in one transaction."""
        if not items:
            return
        async with self._writer.begin() as conn:
            await self._append_in(conn, items)

    async def _append_in(self, conn: AsyncConnection, items: Sequence[Item]) -> None:
        now = utcnow()
        # Sorted, so that two batches creating the same docs lock them in the same order
        # (no deadlock between nodes on PostgreSQL).
        keys = sorted({(item[0], item[1]) for item in items})
        await conn.execute(
            self._insert(doc_t).on_conflict_do_nothing(index_elements=["room_id", "name"]),
            [{"room_id": r, "name": n, "created_at": now, "updated_at": now} for r, n in keys],
        )
        await conn.execute(
            doc_update_t.insert(),
            [
                {"room_id": r, "doc_name": n, "data": data, "author_id": a, "created_at": now}
                for r, n, data, a in items
            ],
        )

    async def compact(self, room_id: str, doc_name: str, fold: Fold | None = None) -> bool:
        """Fold the log into the snapshot. True if any log row was folded.

        ``fold`` (server/progress/) turns the snapshot's attribution summary and the rows
        being folded (update, author, time) into the summary of the new snapshot, in the
        same transaction: folding never loses who wrote what."""
        async with self._writer.begin() as conn:
            head_q = sa.select(doc_t.c.snapshot, doc_t.c.attribution).where(
                self._where(room_id, doc_name)
            )
            if self._pg:
                head_q = head_q.with_for_update(key_share=True)  # FOR NO KEY UPDATE
            head = (await conn.execute(head_q)).first()
            if head is None:
                return False  # no doc row, hence (foreign key) no log either
            rows = (
                await conn.execute(
                    sa.select(
                        doc_update_t.c.id,
                        doc_update_t.c.data,
                        doc_update_t.c.author_id,
                        doc_update_t.c.created_at,
                    )
                    .where(self._log_where(room_id, doc_name))
                    .order_by(doc_update_t.c.id)
                )
            ).all()
            if not rows:
                return False
            snapshot = bytes(head.snapshot) if head.snapshot is not None else None
            parts = [snapshot] if snapshot is not None else []
            parts.extend(bytes(r.data) for r in rows)
            values: dict[str, object] = {
                "snapshot": pycrdt.merge_updates(*parts),
                "updated_at": utcnow(),
            }
            if fold is not None:
                attribution = bytes(head.attribution) if head.attribution is not None else None
                log_rows = [(bytes(r.data), r.author_id, unix(r.created_at)) for r in rows]
                values["attribution"] = fold(snapshot, attribution, log_rows)
            await conn.execute(doc_t.update().where(self._where(room_id, doc_name)).values(values))
            ids = [r.id for r in rows]
            for start in range(0, len(ids), _DELETE_CHUNK):
                chunk = ids[start : start + _DELETE_CHUNK]
                await conn.execute(doc_update_t.delete().where(doc_update_t.c.id.in_(chunk)))
        return True

    async def set_locked(
        self, room_id: str, doc_name: str, locked: bool, audit: Note | None = None
    ) -> None:
        """Lock or unlock a doc (read-only for students); creates the doc row if missing.
        ``audit`` is written in the same transaction."""
        now = utcnow()
        stmt = self._insert(doc_t).values(
            room_id=room_id, name=doc_name, locked=locked, created_at=now, updated_at=now
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["room_id", "name"], set_={"locked": locked, "updated_at": now}
        )
        async with self._writer.begin() as conn:
            await conn.execute(stmt)
            if audit is not None:
                await audit.write(conn)

    async def is_locked(self, room_id: str, doc_name: str) -> bool:
        async with self._engine.connect() as conn:
            locked = await conn.scalar(
                sa.select(doc_t.c.locked).where(self._where(room_id, doc_name))
            )
        return bool(locked)
