"""One suite, both buses: the in-process bus and the Redis bus on a real redis-server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from redis.exceptions import RedisError

from server.bus.base import Bus, Envelope
from server.bus.memory import InMemoryBus, MemoryHub
from server.bus.redis import RedisBus
from server.types import NodeId
from tests.support.services import RedisProcess, redis_server
from tests.support.yclient import eventually

Factory = Callable[[str], Bus]


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisProcess]:
    with redis_server() as r:
        yield r


@pytest.fixture(params=["memory", "redis"])
async def make_bus(request: pytest.FixtureRequest) -> AsyncIterator[Factory]:
    made: list[Bus] = []
    if request.param == "memory":
        hub = MemoryHub()

        def factory(node: str) -> Bus:
            bus: Bus = InMemoryBus(NodeId(node), hub)
            made.append(bus)
            return bus
    else:
        url = request.getfixturevalue("redis").url

        def factory(node: str) -> Bus:
            bus = RedisBus(url, NodeId(node), heartbeat_s=0.2, node_ttl_s=1.0)
            made.append(bus)
            return bus

    yield factory
    for bus in made:
        await bus.close()


class Inbox:
    def __init__(self) -> None:
        self.got: list[Envelope] = []

    def __call__(self, topic: str, env: Envelope) -> None:
        self.got.append(env)

    def real(self) -> list[Envelope]:
        """What arrived, barrier markers left out."""
        return [e for e in self.got if e.kind != MARKER]


MARKER = "marker"


async def barrier(send: Callable[[], Awaitable[None]], inbox: Inbox) -> None:
    """Wait until a marker sent with ``send`` (after the messages under test) reaches
    ``inbox``: whatever was sent before it has been delivered, or never will be.

    Redis runs commands one at a time and writes a subscriber's messages in that order,
    over one connection that the bus reads in order, whatever the channels (the memory
    bus delivers within the call). The marker is resent until one arrives, because a
    subscription made just before is confirmed asynchronously.
    """
    deadline = asyncio.get_running_loop().time() + 5

    def arrived() -> bool:
        return any(e.kind == MARKER for e in inbox.got)

    while not arrived():
        assert asyncio.get_running_loop().time() < deadline, "marker never arrived"
        await send()
        with contextlib.suppress(AssertionError):
            await eventually(arrived, timeout=0.5, interval=0.01)


async def test_publish_reaches_other_nodes_not_the_sender(make_bus: Factory) -> None:
    a, b, c = make_bus("a"), make_bus("b"), make_bus("c")
    inbox_a, inbox_b, inbox_c = Inbox(), Inbox(), Inbox()
    for bus, inbox in ((a, inbox_a), (b, inbox_b), (c, inbox_c)):
        await bus.start()
        await bus.subscribe("doc:r/d", inbox)
    await a.publish("doc:r/d", "update", b"\x01\x02")
    await eventually(lambda: len(inbox_b.got) == 1 and len(inbox_c.got) == 1, timeout=5)
    assert inbox_b.got[0] == Envelope(NodeId("a"), "update", b"\x01\x02", "doc:r/d")
    # b's marker reaches a after a's own message would have (Redis order): a node never
    # hears its own echo.
    await barrier(lambda: b.publish("doc:r/d", MARKER, b""), inbox_a)
    assert inbox_a.real() == []
    assert {e.origin for e in inbox_a.got} == {NodeId("b")}


async def test_publish_many_keeps_order(make_bus: Factory) -> None:
    a, b = make_bus("a"), make_bus("b")
    inbox = Inbox()
    await a.start()
    await b.start()
    await b.subscribe("doc:r/d", inbox)
    await a.publish_many(("doc:r/d", "update", bytes([i])) for i in range(50))
    await eventually(lambda: len(inbox.got) == 50, timeout=5)
    assert [e.payload[0] for e in inbox.got] == list(range(50))


async def test_only_subscribed_topics_are_delivered(make_bus: Factory) -> None:
    a, b = make_bus("a"), make_bus("b")
    inbox, markers = Inbox(), Inbox()
    await a.start()
    await b.start()
    await b.subscribe("doc:r/one", inbox)
    await b.subscribe("doc:r/markers", markers)
    await a.publish("doc:r/two", "update", b"x")
    await a.publish("doc:r/one", "update", b"y")
    await eventually(lambda: len(inbox.got) == 1, timeout=5)
    await b.unsubscribe("doc:r/one")
    await a.publish("doc:r/one", "update", b"z")
    # A marker on a topic b still holds, published after z: once it is in, z was
    # delivered or dropped.
    await barrier(lambda: a.publish("doc:r/markers", MARKER, b""), markers)
    assert [e.payload for e in inbox.got] == [b"y"]


async def test_send_to_reaches_one_node_about_its_topic(make_bus: Factory) -> None:
    a, b, c = make_bus("a"), make_bus("b"), make_bus("c")
    inbox_b, inbox_c = Inbox(), Inbox()
    for bus in (a, b, c):
        await bus.start()
    await b.subscribe("doc:r/d", inbox_b)
    await c.subscribe("doc:r/d", inbox_c)
    await a.send_to(NodeId("b"), "doc:r/d", "sync2", b"diff")
    await eventually(lambda: len(inbox_b.got) == 1, timeout=5)
    assert inbox_b.got[0].kind == "sync2" and inbox_b.got[0].topic == "doc:r/d"
    # c hears a marker published to the topic after the send_to: had that reached c too,
    # it would be in c's inbox before the marker.
    await barrier(lambda: a.publish("doc:r/d", MARKER, b""), inbox_c)
    assert inbox_c.real() == []


async def test_alive_tracks_running_nodes(make_bus: Factory) -> None:
    a, b = make_bus("a"), make_bus("b")
    await a.start()
    await b.start()

    async def b_alone_alive() -> bool:
        return await a.alive({NodeId("b"), NodeId("ghost")}) == {NodeId("b")}

    # b's first heartbeat may land just after start() returns.
    await eventually(b_alone_alive, timeout=5)
    assert await a.alive({NodeId("a"), NodeId("b")}) == {NodeId("a"), NodeId("b")}
    await b.close()
    # No waiting: a clean close is seen at once (the TTL would take up to a second).
    assert await a.alive({NodeId("b")}) == set()
    assert await a.alive({NodeId("a"), NodeId("b")}) == {NodeId("a")}


def test_envelope_round_trip_and_refusals() -> None:
    env = Envelope(NodeId("n1"), "update", b"\x00\xff", "doc:r/d")
    assert Envelope.unpack(env.pack()) == env
    for bad in (b"", b"\xc1", b"\x81\xa1v\x02", b"\x93\x01\x02\x03"):
        with pytest.raises(ValueError):
            Envelope.unpack(bad)


async def test_redis_bus_resubscribes_and_calls_hooks_after_redis_restarts(
    redis: RedisProcess,
) -> None:
    a = RedisBus(redis.url, NodeId("a"), heartbeat_s=0.2, node_ttl_s=1.0)
    b = RedisBus(redis.url, NodeId("b"), heartbeat_s=0.2, node_ttl_s=1.0)
    inbox = Inbox()
    reconnected = asyncio.Event()
    b.on_reconnect(reconnected.set)
    await a.start()
    await b.start()
    await b.subscribe("doc:r/d", inbox)
    try:
        redis.stop()
        await eventually(lambda: not b.connected.is_set(), timeout=5)  # b saw the outage
        with pytest.raises((ConnectionError, RedisError)):
            await b.ping()
        redis.start()
        await asyncio.wait_for(reconnected.wait(), 10)
        await b.ping()
        await a.publish("doc:r/d", "update", b"after")
        await eventually(lambda: [e.payload for e in inbox.got] == [b"after"], timeout=5)
    finally:
        await a.close()
        await b.close()
