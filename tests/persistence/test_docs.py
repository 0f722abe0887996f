"""The doc store: group commit, locks, and folds that stay correct across nodes.

The reference for "correct" is always the same: a fresh ``pycrdt.Doc`` given the stored
snapshot then every stored update must equal a doc given every update ever appended.
"""

from __future__ import annotations

import asyncio
import random

import psycopg
import pycrdt
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from server.persistence.db import is_postgres
from server.persistence.docs import DocStore, StoredDoc
from server.persistence.models import doc_t

ROOM, DOC = "2nde-a-g1", "notes"


def edits(seed: int, n: int = 60, clients: int = 3) -> list[bytes]:
    """Updates of ``clients`` replicas editing a text and a map, syncing now and then;
    in causal order (each may depend on earlier ones, often of another client)."""
    rng = random.Random(seed)
    docs = [pycrdt.Doc() for _ in range(clients)]
    out: list[bytes] = []
    for d in docs:
        d.observe(lambda event: out.append(event.update))
    for i in range(n):
        d = rng.choice(docs)
        text = d.get("t", type=pycrdt.Text)
        if rng.random() < 0.2:
            other = rng.choice(docs)
            if other is not d:
                d.apply_update(other.get_update(d.get_state()))
        elif rng.random() < 0.7 or not len(text):
            text.insert(rng.randint(0, len(text)), f"<{i}>")
        elif rng.random() < 0.5:
            start = rng.randrange(len(text))
            del text[start : min(len(text), start + rng.randint(1, 3))]
        else:
            d.get("m", type=pycrdt.Map)[f"k{rng.randint(0, 5)}"] = i
    return out


def content(doc: pycrdt.Doc) -> tuple[str, dict[str, object]]:
    return str(doc.get("t", type=pycrdt.Text)), doc.get("m", type=pycrdt.Map).to_py() or {}


async def log_size(store: DocStore, room_id: str, doc_name: str) -> int:
    """How many updates of a doc wait in the log, not yet folded."""
    return len((await store.load(room_id, doc_name)).updates)


def replay(stored: StoredDoc) -> pycrdt.Doc:
    doc: pycrdt.Doc = pycrdt.Doc()
    if stored.snapshot is not None:
        doc.apply_update(stored.snapshot)
    for update in stored.updates:
        doc.apply_update(update)
    return doc


def reference(updates: list[bytes]) -> pycrdt.Doc:
    doc: pycrdt.Doc = pycrdt.Doc()
    for update in updates:
        doc.apply_update(update)
    return doc


def state_vector(doc: pycrdt.Doc) -> dict[int, int]:
    """The decoded state vector (client -> clock): its encoding's order is not canonical."""
    data, pos = doc.get_state(), 0

    def varuint() -> int:
        nonlocal pos
        value = shift = 0
        while True:
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    return {varuint(): varuint() for _ in range(varuint())}


def merged(stored: StoredDoc) -> pycrdt.Doc:
    doc: pycrdt.Doc = pycrdt.Doc()
    update = stored.as_update()
    if update is not None:
        doc.apply_update(update)
    return doc


def assert_same(stored: StoredDoc, updates: list[bytes], *, one_by_one: bool = True) -> None:
    """The stored doc, loaded merged (always) and one update at a time (when the log is
    known to be in causal order: see ``test_pycrdt_drops_a_second_pending_update``),
    equals the doc given every update."""
    want = reference(updates)
    for got in [merged(stored)] + ([replay(stored)] if one_by_one else []):
        assert content(got) == content(want)
        assert state_vector(got) == state_vector(want)


async def test_a_missing_doc_loads_empty_and_creates_nothing(engine: AsyncEngine) -> None:
    store = DocStore(engine)
    assert await store.load(ROOM, DOC) == StoredDoc(None, [], False)
    assert await log_size(store, ROOM, DOC) == 0
    assert await store.is_locked(ROOM, DOC) is False
    assert await store.compact(ROOM, DOC) is False
    async with engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(doc_t)) == 0


async def test_append_load_compact(engine: AsyncEngine) -> None:
    store = DocStore(engine)
    updates = edits(1, n=20)
    await store.append([(ROOM, DOC, u) for u in updates[:10]])
    await store.append([(ROOM, DOC, u) for u in updates[10:]] + [(ROOM, "other", b"\x00\x00")])
    loaded = await store.load(ROOM, DOC)
    assert loaded.snapshot is None and loaded.updates == updates and not loaded.locked
    assert await log_size(store, ROOM, DOC) == len(updates)
    assert await log_size(store, ROOM, "other") == 1

    assert await store.compact(ROOM, DOC) is True
    assert await store.compact(ROOM, DOC) is False  # nothing left to fold
    assert await log_size(store, ROOM, DOC) == 0
    assert await log_size(store, ROOM, "other") == 1  # other docs untouched
    folded = await store.load(ROOM, DOC)
    assert folded.snapshot is not None and folded.updates == []
    assert_same(folded, updates)

    more = edits(2, n=10)
    await store.append([(ROOM, DOC, u) for u in more])
    assert (await store.load(ROOM, DOC)).updates == more
    assert await store.compact(ROOM, DOC)
    assert_same(await store.load(ROOM, DOC), updates + more)


async def test_a_batch_is_one_transaction(engine: AsyncEngine) -> None:
    store = DocStore(engine)
    bad = [(ROOM, DOC, b"\x00\x00"), (ROOM, "b", None)]
    with pytest.raises(sa.exc.IntegrityError):
        await store.append(bad)  # type: ignore[arg-type]
    assert await store.load(ROOM, DOC) == StoredDoc(None, [], False)
    await store.append([])  # nothing to do, no transaction


async def test_locks(engine: AsyncEngine) -> None:
    store = DocStore(engine)
    await store.set_locked(ROOM, DOC, True)  # creates the row
    assert await store.is_locked(ROOM, DOC)
    assert (await store.load(ROOM, DOC)).locked
    updates = edits(3, n=5)
    await store.append([(ROOM, DOC, u) for u in updates])
    await store.compact(ROOM, DOC)
    await store.set_locked(ROOM, DOC, False)
    assert not await store.is_locked(ROOM, DOC)
    await store.set_locked(ROOM, DOC, True)
    loaded = await store.load(ROOM, DOC)
    assert loaded.locked and loaded.snapshot is not None  # the lock keeps the snapshot
    assert_same(loaded, updates)
    assert not await store.is_locked(ROOM, "other")


async def test_out_of_causal_order_updates_survive_a_fold(engine: AsyncEngine) -> None:
    store = DocStore(engine)
    updates = edits(4, n=12, clients=1)  # a chain: each update depends on the one before
    late, rest = updates[3], updates[:3] + updates[4:]
    await store.append([(ROOM, DOC, u) for u in rest])
    assert await store.compact(ROOM, DOC)  # folds updates whose dependency is missing
    partial = merged(await store.load(ROOM, DOC))
    assert content(partial) != content(reference(updates))
    await store.append([(ROOM, DOC, late)])
    assert_same(await store.load(ROOM, DOC), updates, one_by_one=False)
    assert await store.compact(ROOM, DOC)
    assert_same(await store.load(ROOM, DOC), updates)


def test_a_log_out_of_causal_order_loads_whole() -> None:
    """Why loads go through ``StoredDoc.as_update()``: one client types a, b, c, d and the
    log holds the updates in the order 0, 2, 3, 1 (two nodes appended). pycrdt 0.14 / yrs
    0.28, applying them one by one to a bare Doc, keeps only one pending update and ends
    with "cab"; the merged load and the server's Replica both end with "cadb"."""
    from server.sync.replica import Replica

    source = pycrdt.Doc(client_id=1)
    text = source.get("t", type=pycrdt.Text)
    updates: list[bytes] = []
    source.observe(lambda event: updates.append(event.update))
    for index, char in ((0, "a"), (1, "b"), (0, "c"), (2, "d")):
        text.insert(index, char)
    order = [updates[i] for i in (0, 2, 3, 1)]
    assert str(merged(StoredDoc(None, order, False)).get("t", type=pycrdt.Text)) == "cadb"
    replica = Replica()
    for update in order:
        replica.apply(update)
    assert str(replica.doc.get("t", type=pycrdt.Text)) == "cadb"


async def _node(store: DocStore, updates: list[bytes], rng: random.Random) -> None:
    """One node: appends its updates in small batches, compacting now and then."""
    i = 0
    while i < len(updates):
        n = rng.randint(1, 4)
        await store.append([(ROOM, DOC, u) for u in updates[i : i + n]])
        i += n
        if rng.random() < 0.35:
            await store.compact(ROOM, DOC)
        if rng.random() < 0.5:
            await asyncio.sleep(rng.random() * 0.003)


@pytest.mark.parametrize("shuffled", [False, True], ids=["causal", "out-of-order"])
@pytest.mark.parametrize("seed", range(6))
async def test_two_nodes_appending_and_compacting(
    engine: AsyncEngine, engine2: AsyncEngine, seed: int, shuffled: bool
) -> None:
    rng = random.Random(seed)
    updates = edits(seed, n=80)
    order = list(updates)
    if shuffled:
        rng.shuffle(order)
    mine = [rng.random() < 0.5 for _ in order]
    a, b = DocStore(engine), DocStore(engine2)
    await asyncio.gather(
        _node(a, [u for u, m in zip(order, mine, strict=True) if m], random.Random(seed + 100)),
        _node(b, [u for u, m in zip(order, mine, strict=True) if not m], random.Random(seed + 200)),
        _compactor(b, random.Random(seed + 300)),
    )
    # Two nodes appending interleave the log out of causal order: load merged only.
    assert_same(await a.load(ROOM, DOC), updates, one_by_one=False)
    await a.compact(ROOM, DOC)
    stored = await b.load(ROOM, DOC)
    assert stored.updates == []
    assert_same(stored, updates, one_by_one=False)


async def _compactor(store: DocStore, rng: random.Random) -> None:
    for _ in range(15):
        await store.compact(ROOM, DOC)
        await asyncio.sleep(rng.random() * 0.002)


async def test_loads_during_folds_see_every_committed_update(
    engine: AsyncEngine, engine2: AsyncEngine
) -> None:
    """A load racing a fold on another node never misses an update committed before it."""
    updates = edits(7, n=80, clients=1)
    a, b = DocStore(engine), DocStore(engine2)
    stop = asyncio.Event()

    async def fold() -> None:
        while not stop.is_set():
            await b.compact(ROOM, DOC)
            await asyncio.sleep(0)

    folder = asyncio.create_task(fold())
    try:
        for i, update in enumerate(updates):
            await a.append([(ROOM, DOC, update)])
            assert_same(await a.load(ROOM, DOC), updates[: i + 1])
    finally:
        stop.set()
        await folder


async def test_many_writers_at_once(db_url: str) -> None:
    """Eight nodes writing the same and different docs: no 'database is locked'."""
    from server.persistence.db import create_engine

    engines = [create_engine(db_url) for _ in range(8)]
    updates = edits(9, n=40)
    try:
        stores = [DocStore(e) for e in engines]

        async def work(k: int, store: DocStore) -> None:
            for j, update in enumerate(updates):
                await store.append([(ROOM, DOC, update), (ROOM, f"d{k}", update)])
                if j % 7 == k % 7:
                    await store.compact(ROOM, DOC)
                    await store.set_locked(ROOM, f"d{k}", j % 2 == 0)

        await asyncio.gather(*(work(k, s) for k, s in enumerate(stores)))
        assert_same(await stores[0].load(ROOM, DOC), updates, one_by_one=False)
        for k in range(8):
            assert_same(await stores[0].load(ROOM, f"d{k}"), updates)
    finally:
        for e in engines:
            await e.dispose()


# PostgreSQL only: SQLite serialises writers, so no id can commit out of order there.
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_postgres_fold_keeps_an_id_that_commits_late(
    db_url: str, engine: AsyncEngine
) -> None:
    """Node B takes id n, node A commits id n+1 and folds; B commits *between* A's read
    of the log and A's DELETE. B's row must survive ("DELETE id <= max" would take it), and
    A's fold must not wait for B's open transaction (NO KEY UPDATE vs KEY SHARE)."""
    assert is_postgres(engine)
    updates = edits(5, n=10, clients=1)[:3]
    a = DocStore(engine)
    await a.append([(ROOM, DOC, updates[0])])
    node_b = psycopg.connect(
        sa.make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    try:
        node_b.execute(
            "INSERT INTO doc_update (room_id, doc_name, data) VALUES (%s, %s, %s)",
            (ROOM, DOC, updates[1]),
        )  # open transaction: its id is smaller than the next one
        await a.append([(ROOM, DOC, updates[2])])

        def commit_b_before_delete(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
            if statement.startswith("DELETE FROM doc_update") and node_b.info.transaction_status:
                node_b.commit()

        sync_engine = engine.sync_engine
        sa.event.listen(sync_engine, "before_cursor_execute", commit_b_before_delete)
        try:
            assert await asyncio.wait_for(a.compact(ROOM, DOC), 10)
        finally:
            sa.event.remove(sync_engine, "before_cursor_execute", commit_b_before_delete)
    finally:
        node_b.close()
    assert await log_size(a, ROOM, DOC) == 1
    assert_same(await a.load(ROOM, DOC), updates)
    assert await a.compact(ROOM, DOC)
    assert_same(await a.load(ROOM, DOC), updates)
