"""The audit trail on both dialects: rows written in the change's transaction, read
back by filters and keyset pages, and no way to rewrite one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from server.persistence import audit, policy
from server.persistence.audit import Filter, Note
from server.persistence.chat import ChatStore
from server.persistence.db import writer
from server.persistence.models import audit_t


async def _write(engine: AsyncEngine, n: int, **kw: str) -> list[int]:
    ids = []
    async with writer(engine).begin() as conn:
        for i in range(n):
            note = Note(kw.get("actor", "t-martin"), "node-a", kw.get("action", "doc.lock"))
            ids.append(await Note(note.actor, note.node, note.action, f"room/{i}").write(conn))
    return ids


async def test_an_audit_row_can_be_read_and_deleted_but_never_updated(
    engine: AsyncEngine,
) -> None:
    [row_id] = await _write(engine, 1)
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        async with writer(engine).begin() as conn:
            await conn.execute(audit_t.update().values(actor="someone-else"))
    [entry] = await audit.entries(engine)
    assert (entry.id, entry.actor) == (row_id, "t-martin")
    # Deletion stays possible: the retention job's (docs/operations.md).
    async with writer(engine).begin() as conn:
        await conn.execute(audit_t.delete().where(audit_t.c.id == row_id))
    assert await audit.entries(engine) == []


async def test_the_one_update_allowed_is_an_erasure_pseudonymising_a_person(
    engine: AsyncEngine,
) -> None:
    """privacy/erasure.py replaces the erased person's id by ``anon-…`` in the trail;
    nothing else of a row may change, not even along with that."""
    [row_id] = await _write(engine, 1)
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        async with writer(engine).begin() as conn:
            await conn.execute(
                audit_t.update().values(actor="anon-0123456789abcdef", action="doc.unlock")
            )
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        async with writer(engine).begin() as conn:
            await conn.execute(audit_t.update().values(target="room/other"))
    async with writer(engine).begin() as conn:
        await conn.execute(
            audit_t.update()
            .where(audit_t.c.id == row_id)
            .values(actor="anon-0123456789abcdef", target="anon-fedcba9876543210")
        )
    [entry] = await audit.entries(engine)
    assert (entry.id, entry.actor, entry.target, entry.action) == (
        row_id,
        "anon-0123456789abcdef",
        "anon-fedcba9876543210",
        "doc.lock",
    )


async def test_filters_and_keyset_pages(engine: AsyncEngine) -> None:
    locks = await _write(engine, 5)
    mutes = await _write(engine, 3, actor="t-durand", action="chat.mute")
    first = await audit.page(engine, Filter(), None, 4)
    assert [e.id for e in first] == sorted(locks + mutes, reverse=True)[:4]
    rest = await audit.page(engine, Filter(), first[-1].id, 100)
    assert [e.id for e in first + rest] == sorted(locks + mutes, reverse=True)
    assert [e.id for e in await audit.page(engine, Filter(actor="t-durand"), None, 10)] == sorted(
        mutes, reverse=True
    )
    by_target = await audit.page(engine, Filter(action="doc.lock", target="room/2"), None, 10)
    assert [e.id for e in by_target] == [locks[2]]
    now = datetime.now(UTC)
    assert await audit.page(engine, Filter(since=now + timedelta(minutes=1)), None, 10) == []
    assert len(await audit.page(engine, Filter(until=now + timedelta(minutes=1)), None, 10)) == 8
    streamed = [e.id async for e in audit.stream(engine, Filter(), 6, batch=4)]
    assert streamed == sorted(locks + mutes, reverse=True)[:6]


async def test_a_note_lives_and_dies_with_its_change(engine: AsyncEngine) -> None:
    chat = ChatStore(engine)
    message = await chat.post("2nde-a", "s-01", "Léa", "student", "bonjour")
    note = Note("t-martin", "node-a", "chat.delete", "2nde-a", {"message_id": message.id})
    assert (await chat.delete("2nde-a", message.id, "t-martin", note)) is not None
    # Deleting it again changes nothing, so records nothing.
    await chat.delete("2nde-a", message.id, "t-martin", note)
    await chat.set_muted("2nde-a", "s-01", True, "t-martin", Note("t-martin", "n", "chat.mute"))
    await policy.set_presence_names(
        engine, "2nde-a", "pseudonym", "t-martin", Note("t-martin", "n", "room.presence")
    )
    assert await policy.presence_names(engine, "2nde-a") == "pseudonym"
    assert await policy.presence_names(engine, "2nde-b") == "full"
    actions = [e.action for e in await audit.entries(engine)]
    assert actions == ["room.presence", "chat.mute", "chat.delete"]
