"""The chat store, on both dialects: gapless seqs across nodes, edits and deletions,
history paging, mutes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from server.persistence.chat import ChatMessage, ChatStore
from server.persistence.db import create_engine, writer
from server.persistence.models import chat_message_t, metadata

ROOM, OTHER = "2nde-a-g1", "2nde-a-g2"


@pytest.fixture
def store(engine: AsyncEngine) -> ChatStore:
    return ChatStore(engine)


@pytest.fixture
async def engine3(db_url: str) -> AsyncIterator[AsyncEngine]:
    """A third engine on the same database: a third node."""
    eng = create_engine(db_url)
    yield eng
    await eng.dispose()


async def post(store: ChatStore, text: str, room: str = ROOM, author: str = "s-01") -> ChatMessage:
    return await store.post(room, author, "Léa", "student", text)


def seqs(messages: list[ChatMessage]) -> list[int]:
    return [m.seq for m in messages]


# -- schema -----------------------------------------------------------------------------


async def test_chat_tables_are_migrated_and_match_the_models(engine: AsyncEngine) -> None:
    def diff(conn):  # type: ignore[no-untyped-def]
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(ctx, metadata)

    async with engine.connect() as conn:
        assert await conn.run_sync(diff) == []
        version = await conn.scalar(sa.text("SELECT version_num FROM alembic_version"))
        tables = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
    assert version is not None and version >= "0002"  # chat came with 0002
    assert {"chat_message", "room_counter", "chat_mute"} <= tables


async def test_room_and_seq_are_unique(engine: AsyncEngine, store: ChatStore) -> None:
    first = await post(store, "one")
    row = {
        "room_id": ROOM,
        "seq": first.seq,
        "author_id": "s-02",
        "author_name": "Tom",
        "author_role": "student",
        "text": "dup",
    }
    with pytest.raises(IntegrityError):
        async with writer(engine).begin() as conn:
            await conn.execute(chat_message_t.insert().values(**row))
    # The same seq in another room is fine.
    async with writer(engine).begin() as conn:
        await conn.execute(chat_message_t.insert().values(**{**row, "room_id": OTHER}))


# -- posting ----------------------------------------------------------------------------


async def test_post_numbers_each_room_from_one(store: ChatStore) -> None:
    assert await store.last_seq(ROOM) == 0
    before = time.time()
    a = await post(store, "bonjour")
    b = await post(store, "ça va ?")
    c = await post(store, "autre salle", room=OTHER)
    after = time.time()
    assert (a.seq, b.seq, c.seq) == (1, 2, 1)
    assert a.id != b.id != c.id
    assert before - 1 <= a.at <= after + 1
    assert isinstance(a.at, float)
    assert (a.version, a.deleted, a.deleted_by, a.edited_at) == (1, False, None, None)
    assert await store.last_seq(ROOM) == 2
    assert await store.last_seq(OTHER) == 1
    # What post returns is what is stored.
    assert await store.get(ROOM, a.id) == a
    assert await store.get(OTHER, c.id) == c


async def test_to_wire_is_the_protocol_message(store: ChatStore) -> None:
    msg = await store.post(ROOM, "t-martin", "M. Martin", "teacher", "Rendez-vous lundi")
    assert msg.to_wire() == {
        "id": msg.id,
        "seq": 1,
        "room": ROOM,
        "author": {"id": "t-martin", "name": "M. Martin", "role": "teacher"},
        "text": "Rendez-vous lundi",
        "at": msg.at,
        "edited_at": None,
        "deleted": False,
        "deleted_by": None,
        "version": 1,
    }
    deleted = await store.delete(ROOM, msg.id, "t-martin")
    assert deleted is not None
    wire = deleted.to_wire()
    assert (wire["text"], wire["deleted"], wire["deleted_by"], wire["version"]) == (
        "",
        True,
        "t-martin",
        2,
    )


@pytest.mark.parametrize(
    "text",
    [
        "<script>alert('x')</script> & <b>gras</b>",
        "  espaces autour  \n\tet tabulation\n",
        "e\u0301 (pas NFC) 🎨 \u202eRTL\u202c \x07bell",
        "' OR 1=1; DROP TABLE chat_message; --",
        "x" * 5000,  # over the protocol's limit: the server checks lengths, not the store
    ],
)
async def test_text_is_stored_verbatim(store: ChatStore, text: str) -> None:
    msg = await post(store, text)
    assert msg.text == text
    stored = await store.get(ROOM, msg.id)
    assert stored is not None and stored.text == text
    edited = await store.edit(ROOM, msg.id, text + "!")
    assert edited is not None and edited.text == text + "!"


async def test_author_name_is_kept_as_it_was(store: ChatStore) -> None:
    msg = await store.post(ROOM, "s-01", "Léa", "student", "hi")
    await store.post(ROOM, "s-01", "Léa M.", "student", "renamed")
    again = await store.get(ROOM, msg.id)
    assert again is not None and again.author_name == "Léa"


async def test_concurrent_posts_from_three_nodes_get_gapless_seqs(
    engine: AsyncEngine, engine2: AsyncEngine, engine3: AsyncEngine
) -> None:
    """Three nodes, two rooms, many posts at once (the counter rows do not exist yet, so
    the first posts also race to create them): each room gets 1..N, each seq once; and a
    reader polling meanwhile never sees a gap (seq N+1 committed before N)."""
    stores = [ChatStore(e) for e in (engine, engine2, engine3)]
    per_node, rooms = 40, (ROOM, OTHER)
    done = asyncio.Event()
    gaps: list[str] = []

    async def node(i: int, s: ChatStore) -> list[ChatMessage]:
        sem = asyncio.Semaphore(8)  # at most 8 connections per node

        async def one(k: int) -> ChatMessage:
            async with sem:
                return await s.post(rooms[k % 2], f"n{i}", f"Node {i}", "student", f"{i}:{k}")

        return list(await asyncio.gather(*(one(k) for k in range(per_node))))

    async def reader(room: str) -> None:
        seen = 0
        while True:
            finished = done.is_set()
            got = await stores[0].since(room, seen)
            if seqs(got) != list(range(seen + 1, seen + 1 + len(got))):
                gaps.append(f"{room}: after {seen} read {seqs(got)}")
                return
            if got:
                seen = got[-1].seq
            elif finished:
                return
            await asyncio.sleep(0)

    readers = [asyncio.create_task(reader(r)) for r in rooms]
    results = await asyncio.gather(*(node(i, s) for i, s in enumerate(stores)))
    done.set()
    await asyncio.gather(*readers)
    assert gaps == []

    posted = [m for batch in results for m in batch]
    assert len({m.id for m in posted}) == len(posted)
    total = len(stores) * per_node
    for room in rooms:
        mine = sorted(seqs([m for m in posted if m.room_id == room]))
        assert mine == list(range(1, total // 2 + 1))
        assert await stores[1].last_seq(room) == total // 2
        stored = await stores[2].since(room, 0)
        assert seqs(stored) == mine
        # Each stored message is the one its poster was told about.
        assert {m.seq: m.text for m in stored} == {
            m.seq: m.text for m in posted if m.room_id == room
        }


async def test_concurrent_posts_edits_and_deletes_from_two_nodes(
    engine: AsyncEngine, engine2: AsyncEngine
) -> None:
    a, b = ChatStore(engine), ChatStore(engine2)
    seeded = [await post(a, f"m{k}") for k in range(10)]

    async def churn(s: ChatStore, k: int) -> object:
        target = seeded[k % len(seeded)]
        match k % 3:
            case 0:
                return await post(s, f"new {k}")
            case 1:
                return await s.edit(ROOM, target.id, f"edit {k}")
            case _:
                return await s.delete(ROOM, target.id, "t-martin")

    await asyncio.gather(*(churn(a if k % 2 else b, k) for k in range(60)))
    stored = await a.since(ROOM, 0)
    assert seqs(stored) == list(range(1, len(stored) + 1))
    assert len(stored) == 10 + 20
    for m in stored:
        if m.deleted:
            assert m.text == "" and m.deleted_by == "t-martin"


# -- edit and delete --------------------------------------------------------------------


async def test_edit_bumps_version_and_sets_edited_at(store: ChatStore) -> None:
    msg = await post(store, "brouillon")
    first = await store.edit(ROOM, msg.id, "version 2")
    assert first is not None
    assert (first.text, first.version, first.seq, first.at) == ("version 2", 2, msg.seq, msg.at)
    assert first.edited_at is not None and first.edited_at >= msg.at
    second = await store.edit(ROOM, msg.id, "version 3")
    assert second is not None and second.version == 3
    assert second.edited_at is not None and second.edited_at >= first.edited_at
    assert await store.get(ROOM, msg.id) == second
    assert await store.last_seq(ROOM) == 1  # an edit is no new message


async def test_delete_erases_and_is_idempotent(store: ChatStore) -> None:
    msg = await post(store, "oups")
    await store.edit(ROOM, msg.id, "oups (édité)")
    deleted = await store.delete(ROOM, msg.id, "t-martin")
    assert deleted is not None
    assert (deleted.text, deleted.deleted, deleted.deleted_by, deleted.version) == (
        "",
        True,
        "t-martin",
        3,
    )
    assert deleted.seq == msg.seq  # keeps its place
    again = await store.delete(ROOM, msg.id, "s-01")
    assert again == deleted  # no second bump, first deleter kept
    assert await store.get(ROOM, msg.id) == deleted
    assert await store.edit(ROOM, msg.id, "ressuscité") is None
    assert await store.get(ROOM, msg.id) == deleted
    assert seqs(await store.recent(ROOM, 10)) == [1]


async def test_unknown_message_is_none(store: ChatStore) -> None:
    assert await store.get(ROOM, 12345) is None
    assert await store.edit(ROOM, 12345, "x") is None
    assert await store.delete(ROOM, 12345, "t-martin") is None


async def test_a_message_is_not_found_through_another_room(store: ChatStore) -> None:
    msg = await post(store, "secret du groupe 1")
    assert await store.get(OTHER, msg.id) is None
    assert await store.edit(OTHER, msg.id, "piraté") is None
    assert await store.delete(OTHER, msg.id, "s-99") is None
    assert await store.get(ROOM, msg.id) == msg  # untouched


# -- history ----------------------------------------------------------------------------


async def test_paging_with_recent_before_and_since(store: ChatStore) -> None:
    for k in range(1, 26):
        await post(store, f"m{k}")
    await post(store, "ailleurs", room=OTHER)

    assert seqs(await store.recent(ROOM, 10)) == list(range(16, 26))
    assert seqs(await store.recent(ROOM, 100)) == list(range(1, 26))
    assert await store.recent(ROOM, 0) == []
    assert await store.recent("empty-room", 10) == []

    assert seqs(await store.before(ROOM, None, 10)) == list(range(16, 26))
    assert seqs(await store.before(ROOM, 16, 10)) == list(range(6, 16))
    assert seqs(await store.before(ROOM, 6, 10)) == list(range(1, 6))
    assert await store.before(ROOM, 1, 10) == []
    assert seqs(await store.before(ROOM, 1000, 3)) == [23, 24, 25]
    assert [m.text for m in await store.before(ROOM, 3, 10)] == ["m1", "m2"]

    # Paging back the way the REST API does reaches every message once.
    pages, cursor = [], None
    while page := await store.before(ROOM, cursor, 7):
        pages.append(seqs(page))
        cursor = page[0].seq
    assert [s for p in reversed(pages) for s in p] == list(range(1, 26))

    assert seqs(await store.since(ROOM, 20)) == [21, 22, 23, 24, 25]
    assert seqs(await store.since(ROOM, 0, limit=5)) == [1, 2, 3, 4, 5]
    assert seqs(await store.since(ROOM, 0)) == list(range(1, 26))
    assert await store.since(ROOM, 25) == []
    assert await store.since(ROOM, 0, limit=0) == []

    assert [m.text for m in await store.recent(OTHER, 10)] == ["ailleurs"]
    assert all(m.room_id == ROOM for m in await store.since(ROOM, 0))


async def test_history_includes_deleted_messages_in_place(store: ChatStore) -> None:
    msgs = [await post(store, f"m{k}") for k in range(3)]
    await store.delete(ROOM, msgs[1].id, "s-01")
    history = await store.recent(ROOM, 10)
    assert seqs(history) == [1, 2, 3]
    assert [m.text for m in history] == ["m0", "", "m2"]
    assert await store.last_seq(ROOM) == 3


# -- mutes ------------------------------------------------------------------------------


async def test_mute_is_idempotent_and_per_room(store: ChatStore) -> None:
    assert await store.muted_users(ROOM) == set()
    await store.set_muted(ROOM, "s-04", True, by="t-martin")
    await store.set_muted(ROOM, "s-04", True, by="t-dupont")
    await store.set_muted(ROOM, "s-05", True, by="t-martin")
    assert await store.muted_users(ROOM) == {"s-04", "s-05"}
    assert await store.muted_users(OTHER) == set()

    await store.set_muted(ROOM, "s-04", False, by="t-martin")
    await store.set_muted(ROOM, "s-04", False, by="t-martin")
    await store.set_muted(OTHER, "s-05", False, by="t-martin")  # never muted there
    assert await store.muted_users(ROOM) == {"s-05"}

    await store.set_muted(ROOM, "s-04", True, by="t-martin")
    assert await store.muted_users(ROOM) == {"s-04", "s-05"}


async def test_concurrent_mutes_from_two_nodes(engine: AsyncEngine, engine2: AsyncEngine) -> None:
    a, b = ChatStore(engine), ChatStore(engine2)
    await asyncio.gather(
        *(s.set_muted(ROOM, "s-04", True, by="t-martin") for s in (a, b) for _ in range(5))
    )
    assert await a.muted_users(ROOM) == {"s-04"}
