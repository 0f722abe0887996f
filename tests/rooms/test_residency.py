"""A doc's life on a node (rooms/residency.py): loaded once however many sockets arrive,
never served half-loaded, unloaded after the delay (flushed, compacted, unsubscribed),
and kept — with its bus subscription — when somebody comes back during the unload."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy.ext.asyncio import AsyncEngine

from server.bus.base import Handler
from server.bus.memory import MemoryHub
from server.persistence.docs import DocStore, StoredDoc
from server.rooms.livedoc import DocLoadError, DocState
from server.types import NodeId
from tests.rooms.conftest import (
    DOC,
    KEY,
    ROOM,
    TEACHER,
    Cluster,
    Gate,
    LossyBus,
    RecordingStore,
    content_of,
    edits,
    text_of,
)
from tests.support.inproc import until


class FailingStore(RecordingStore):
    """A database that fails the first load (a timeout, a failover), then answers."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self.failures = 1

    async def load(self, room_id: str, doc_name: str) -> StoredDoc:
        self.loads.append((room_id, doc_name))
        await asyncio.sleep(0.01)  # long enough for other sockets to ask meanwhile
        if self.failures:
            self.failures -= 1
            raise OSError("database unreachable")
        return await DocStore.load(self, room_id, doc_name)


class SlowCompactStore(RecordingStore):
    """Compaction waits at ``gate`` (a fold under load takes a while)."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self.gate = Gate()
        self.folded = asyncio.Event()

    async def compact(self, room_id: str, doc_name: str) -> bool:
        await self.gate.hold()
        done = await super().compact(room_id, doc_name)
        self.folded.set()
        return done


class SlowBus(LossyBus):
    """An unsubscribe that takes effect, then waits at ``unsubscribed`` before it returns
    (a Redis round trip); once ``resubscribe`` is set, subscribes wait there first."""

    def __init__(self, node_id: NodeId, hub: MemoryHub | None = None) -> None:
        super().__init__(node_id, hub)
        self.unsubscribed = Gate()
        self.resubscribe: Gate | None = None

    async def unsubscribe(self, topic: str) -> None:
        await super().unsubscribe(topic)
        await self.unsubscribed.hold()

    async def subscribe(self, topic: str, handler: Handler) -> None:
        if self.resubscribe is not None:
            await self.resubscribe.hold()
        await super().subscribe(topic, handler)


async def _store(cluster: Cluster, text: str) -> None:
    await DocStore(cluster.engine).append([(ROOM, DOC, u, "s-01") for u in edits(text)])


# --- loading ---


async def test_sockets_arriving_together_share_one_load(cluster: Cluster) -> None:
    await _store(cluster, "déjà là")
    a = await cluster.node("A")

    lives = await asyncio.gather(*(a.open() for _ in range(20)))

    assert all(live is lives[0] for live in lives)
    assert lives[0].state is DocState.READY
    assert text_of(lives[0]) == "déjà là"
    assert a.store.loads == [KEY]
    other = await a.open("annexe")
    assert other is not lives[0]
    assert a.store.loads == [KEY, (ROOM, "annexe")]


async def test_a_failed_load_is_served_to_nobody_and_the_next_open_retries(
    cluster: Cluster,
) -> None:
    await _store(cluster, "précieux")
    a = await cluster.node("A", store=FailingStore)

    results = await asyncio.gather(*(a.open() for _ in range(3)), return_exceptions=True)

    assert all(isinstance(r, DocLoadError) for r in results)
    assert a.store.loads == [KEY]  # one load, failed for all three
    assert a.registry.docs.get(KEY) is None  # never served half-loaded (or empty)
    assert not cluster.subscribed(a)
    live = await a.open()  # the next socket tries again
    assert live.state is DocState.READY
    assert a.store.loads == [KEY, KEY]
    assert a.socket(live).content == "précieux"
    assert cluster.subscribed(a)


# --- unloading ---


async def test_the_last_leave_unloads_after_the_delay_flushed_and_compacted(
    cluster: Cluster,
) -> None:
    a = await cluster.node("A", doc_unload_delay_s=0.1)
    live = await a.open()
    student = a.socket(live)
    for part in ("un ", "deux ", "trois"):
        student.type(part)
    assert cluster.subscribed(a)

    student.leave()
    left = time.monotonic()
    await until(lambda: live.state is DocState.GONE, "the unload")

    assert time.monotonic() - left >= 0.1
    assert a.registry.docs.get(KEY) is None
    assert not cluster.subscribed(a)
    stored = await cluster.stored()
    assert stored.updates == []  # compacted: the log is folded
    assert content_of(stored.snapshot) == "un deux trois"
    assert a.store.compacted == [KEY]


async def test_a_join_while_the_doc_flushes_keeps_it_and_its_subscription(
    cluster: Cluster,
) -> None:
    a = await cluster.node("A", store=SlowCompactStore)
    b = await cluster.node("B")
    live = await a.open()
    first = a.socket(live)
    on_b = b.socket(await b.open(), "t-01", TEACHER)
    first.type("a")
    first.leave()
    await until(lambda: a.store.gate.reached.is_set(), "the unload compacting")

    assert await a.open() is live  # still the same doc: no second load
    back = a.socket(live)
    a.store.gate.open()
    await until(lambda: a.store.folded.is_set(), "the end of the fold")

    on_b.type("b")
    await until(lambda: back.content == "ab", "B's edit reaches the socket that came back")
    assert live.state is DocState.READY
    assert a.registry.docs.get(KEY) is live
    assert cluster.subscribed(a)
    assert a.store.loads == [KEY]


async def test_a_join_while_the_doc_unsubscribes_subscribes_again_and_catches_up(
    cluster: Cluster,
) -> None:
    a = await cluster.node("A", bus=SlowBus)
    b, witness = await cluster.node("B"), await cluster.node("C")
    live = await a.open()
    first = a.socket(live)
    on_b = b.socket(await b.open(), "t-01", TEACHER)
    on_c = witness.socket(await witness.open(), "s-03")
    first.type("a")
    first.leave()
    await until(lambda: a.bus.unsubscribed.reached.is_set(), "the unload unsubscribing")
    assert not cluster.subscribed(a)

    back = a.socket(await a.open())
    on_b.type("b")  # published while A is not subscribed: A misses it
    await until(lambda: on_c.content == "ab", "B's edit reaches the subscribed nodes")
    assert text_of(live) == "a"
    a.bus.unsubscribed.open()

    await until(lambda: back.content == "ab", "what A missed, fetched from B")
    on_b.type("c")
    await until(lambda: back.content == "abc", "the subscription carries new edits")
    assert cluster.subscribed(a)
    assert a.registry.docs.get(KEY) is live
    assert live.state is DocState.READY


async def test_used_and_left_again_during_the_flush_the_doc_waits_a_full_delay_again(
    cluster: Cluster,
) -> None:
    """Bug (fixed): the unload went on as soon as its flush ended, though the doc had
    been used and released again meanwhile — unloaded at once, not ``delay_s`` after the
    last leave, and without flushing and compacting what that user typed."""
    a = await cluster.node("A", store=SlowCompactStore, doc_unload_delay_s=0.3)
    live = await a.open()
    first = a.socket(live)
    first.type("a")
    first.leave()
    await until(lambda: a.store.gate.reached.is_set(), "the unload compacting")

    second = a.socket(await a.open())  # a page reload, and away again
    second.type("b")
    second.leave()
    left = time.monotonic()
    a.store.gate.open()
    await until(lambda: live.state is DocState.GONE, "the unload")

    assert time.monotonic() - left >= 0.3 - 0.02
    stored = await cluster.stored()
    assert stored.updates == []
    assert content_of(stored.snapshot) == "ab"


async def test_left_again_while_subscribing_again_the_doc_is_still_unloaded(
    cluster: Cluster,
) -> None:
    """Bug (fixed): when the socket that came back during the unsubscribe left while
    the doc subscribed again, the unload ended keeping the doc: loaded, subscribed and
    used by nobody until the node stopped."""
    a = await cluster.node("A", bus=SlowBus)
    live = await a.open()
    first = a.socket(live)
    first.type("a")
    first.leave()
    await until(lambda: a.bus.unsubscribed.reached.is_set(), "the unload unsubscribing")
    a.bus.resubscribe = Gate()

    second = a.socket(await a.open())
    a.bus.unsubscribed.open()
    await until(lambda: a.bus.resubscribe.reached.is_set(), "the doc subscribing again")
    second.leave()
    a.bus.resubscribe.open()

    await until(lambda: live.state is DocState.GONE, "the unload")
    assert a.registry.docs.get(KEY) is None
    assert not cluster.subscribed(a)


async def test_a_doc_unloaded_and_opened_again_is_loaded_afresh(cluster: Cluster) -> None:
    a = await cluster.node("A", doc_unload_delay_s=0.05)
    live = await a.open()
    student = a.socket(live)
    student.type("gardé")
    student.leave()
    await until(lambda: live.state is DocState.GONE, "the unload")

    again = await a.open()

    assert again is not live
    assert a.socket(again).content == "gardé"
    assert a.store.loads == [KEY, KEY]
