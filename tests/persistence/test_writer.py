"""The update writer (server/persistence/writer.py): group commit, flush, retries, close.

Every test writes through a real ``DocStore`` (SQLite and PostgreSQL, the fixtures'
two dialects) and reads back what the database holds. A database outage is real too:
the update log's table is renamed away, so appends fail in the database itself, then
renamed back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

import pycrdt
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from server.persistence.docs import DocStore
from server.persistence.models import doc_update_t
from server.persistence.writer import Item, UpdateWriter
from tests.support.yclient import eventually

ROOM, DOC = "2nde-a-g1", "notes"
WAIT_S = 5.0


def keystrokes(n: int, text: str = "abcdefghij") -> list[bytes]:
    """n real Yjs updates, one per typed character."""
    doc: pycrdt.Doc = pycrdt.Doc()
    t = doc.get("t", type=pycrdt.Text)
    out: list[bytes] = []
    doc.observe(lambda event: out.append(event.update))
    for i in range(n):
        t.insert(len(t), text[i % len(text)])
    return out


async def stored(store: DocStore, room_id: str = ROOM, doc_name: str = DOC) -> list[bytes]:
    return (await store.load(room_id, doc_name)).updates


@contextlib.asynccontextmanager
async def database_down(engine: AsyncEngine) -> AsyncIterator[None]:
    """The update log is gone while inside: every append fails in the database."""
    table = doc_update_t.name
    async with engine.begin() as conn:
        await conn.execute(sa.text(f"ALTER TABLE {table} RENAME TO {table}_away"))
    try:
        yield
    finally:
        async with engine.begin() as conn:
            await conn.execute(sa.text(f"ALTER TABLE {table}_away RENAME TO {table}"))


@contextlib.asynccontextmanager
async def running(writer: UpdateWriter) -> AsyncIterator[UpdateWriter]:
    writer.start()
    try:
        yield writer
    finally:
        await writer.close(WAIT_S)


def failures(caplog: pytest.LogCaptureFixture) -> int:
    return sum("database append failed" in r.getMessage() for r in caplog.records)


# --- group commit -------------------------------------------------------------------------


async def test_enqueues_within_the_window_are_one_transaction(engine: AsyncEngine) -> None:
    store = DocStore(engine)
    batches: list[Sequence[Item]] = []
    commits: list[object] = []

    def committed(conn: object) -> None:
        commits.append(conn)

    sa.event.listen(engine.sync_engine, "commit", committed)
    try:
        writer = UpdateWriter(store, interval_s=0.1, max_batch=1000, on_committed=batches.append)
        async with running(writer):
            updates = keystrokes(5)
            for u in updates[:3]:
                writer.enqueue(ROOM, DOC, u, "s-01")
            await asyncio.sleep(0.02)  # still inside the group-commit window
            for u in updates[3:]:
                writer.enqueue(ROOM, DOC, u, "s-01")
            assert await writer.flush(WAIT_S)
            assert len(commits) == 1
    finally:
        sa.event.remove(engine.sync_engine, "commit", committed)
    assert [len(b) for b in batches] == [5]
    assert await stored(store) == updates


async def test_one_transaction_holds_at_most_max_batch(engine: AsyncEngine) -> None:
    store = DocStore(engine)
    batches: list[Sequence[Item]] = []
    writer = UpdateWriter(store, interval_s=0.05, max_batch=2, on_committed=batches.append)
    async with running(writer):
        updates = keystrokes(5)
        for u in updates:
            writer.enqueue(ROOM, DOC, u, "s-01")
        assert await writer.flush(WAIT_S)
    assert [len(b) for b in batches] == [2, 2, 1]
    assert [u for batch in batches for _, _, u, _a in batch] == updates
    assert await stored(store) == updates


# --- flush --------------------------------------------------------------------------------


async def test_flush_returns_once_everything_queued_before_it_is_stored(
    engine: AsyncEngine,
) -> None:
    store = DocStore(engine)
    writer = UpdateWriter(store, interval_s=0.1, max_batch=1000)
    async with running(writer):
        updates = keystrokes(4)
        for u in updates:
            writer.enqueue(ROOM, DOC, u, "s-01")
        assert await stored(store) == []  # still in the window: nothing written yet
        assert await writer.flush(WAIT_S)
        assert await stored(store) == updates
        assert writer.pending == 0


async def test_flush_with_nothing_queued_returns_at_once(engine: AsyncEngine) -> None:
    writer = UpdateWriter(DocStore(engine), interval_s=10.0, max_batch=1000)
    async with asyncio.timeout(0.5):
        assert await writer.flush(WAIT_S)  # the writer is not even started


async def test_flush_gives_up_after_its_timeout_while_the_database_is_down(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    store = DocStore(engine)
    writer = UpdateWriter(store, interval_s=0.0, max_batch=1000)
    async with running(writer):
        async with database_down(engine):
            writer.enqueue(ROOM, DOC, keystrokes(1)[0], "s-01")
            assert await writer.flush(0.3) is False
            assert writer.pending == 1
        assert await writer.flush(WAIT_S)
    assert failures(caplog) >= 1


# --- pending per doc ----------------------------------------------------------------------


async def test_pending_is_counted_per_doc_until_committed(engine: AsyncEngine) -> None:
    store = DocStore(engine)
    writer = UpdateWriter(store, interval_s=0.0, max_batch=1000)
    updates = keystrokes(4)
    writer.enqueue(ROOM, DOC, updates[0], "s-01")
    writer.enqueue(ROOM, DOC, updates[1], "s-01")
    writer.enqueue(ROOM, "board", updates[2], "s-01")
    writer.enqueue("2nde-b", DOC, updates[3], "s-01")  # same doc name, another room
    assert writer.pending_for(ROOM, DOC) == 2
    assert writer.pending_for(ROOM, "board") == 1
    assert writer.pending_for("2nde-b", DOC) == 1
    assert writer.pending_for(ROOM, "never-written") == 0
    assert writer.pending == 4
    async with running(writer):
        assert await writer.flush(WAIT_S)
        for room_id, doc_name in [(ROOM, DOC), (ROOM, "board"), ("2nde-b", DOC)]:
            assert writer.pending_for(room_id, doc_name) == 0
        assert writer.pending == 0
    assert await stored(store) == updates[:2]
    assert await stored(store, ROOM, "board") == updates[2:3]
    assert await stored(store, "2nde-b", DOC) == updates[3:]


# --- a failing database -------------------------------------------------------------------


async def test_a_failed_batch_stays_at_the_head_and_nothing_is_lost(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    store = DocStore(engine)
    batches: list[Sequence[Item]] = []
    writer = UpdateWriter(store, interval_s=0.0, max_batch=2, on_committed=batches.append)
    updates = keystrokes(7)
    async with running(writer):
        writer.enqueue(ROOM, DOC, updates[0], "s-01")
        assert await writer.flush(WAIT_S)
        async with database_down(engine):
            for u in updates[1:4]:
                writer.enqueue(ROOM, DOC, u, "s-01")
            await eventually(lambda: failures(caplog) >= 2, timeout=WAIT_S, interval=0.01)
            # Clients keep typing during the outage: queued behind the failed batch.
            for u in updates[4:]:
                writer.enqueue(ROOM, DOC, u, "s-01")
            assert writer.pending == 6
            assert writer.pending_for(ROOM, DOC) == 6
            assert len(batches) == 1  # nothing more committed while the database is down
        assert await writer.flush(WAIT_S)
        assert writer.pending == 0
    # Retried from the head, in order, each update exactly once.
    assert await stored(store) == updates
    assert [u for batch in batches for _, _, u, _a in batch] == updates
    assert [len(b) for b in batches[:2]] == [1, 2]  # the failed batch was retried as it was
    retried = [r for r in caplog.records if "kept for retry" in r.getMessage()]
    assert all(r.levelno == logging.ERROR for r in retried)


# --- close --------------------------------------------------------------------------------


async def test_close_writes_what_is_queued_then_stops(engine: AsyncEngine) -> None:
    store = DocStore(engine)
    writer = UpdateWriter(store, interval_s=0.05, max_batch=1000)
    writer.start()
    updates = keystrokes(3)
    for u in updates:
        writer.enqueue(ROOM, DOC, u, "s-01")
    assert await writer.close(WAIT_S) is True
    assert await stored(store) == updates
    # Stopped: an update queued after close is never written.
    writer.enqueue(ROOM, DOC, keystrokes(4)[3], "s-01")
    await asyncio.sleep(0.1)
    assert await stored(store) == updates


async def test_close_reports_updates_it_could_not_write_within_the_grace(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    store = DocStore(engine)
    writer = UpdateWriter(store, interval_s=0.0, max_batch=1000)
    writer.start()
    async with database_down(engine):
        for u in keystrokes(3):
            writer.enqueue(ROOM, DOC, u, "s-01")
        async with asyncio.timeout(WAIT_S):
            assert await writer.close(0.3) is False
    assert writer.pending == 3  # kept, not dropped: the log line says how many
    assert any("shutdown: 3 updates could not be written" in r.getMessage() for r in caplog.records)
    assert await stored(store) == []
