"""One suite, both buses: the in-process bus and the Redis bus on a real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator

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


async def test_publish_reaches_other_nodes_not_the_sender(make_bus: Factory) -> None:
    a, b, c = make_bus("a"), make_bus("b"), make_bus("c")
    inbox_a, inbox_b, inbox_c = Inbox(), Inbox(), Inbox()
    for bus, inbox in ((a, inbox_a), (b, inbox_b), (c, inbox_c)):
        await bus.start()
        await bus.subscribe("doc:r/d", inbox)
    await a.publish("doc:r/d", "update", b"\x01\x02")
    await eventually(lambda: len(inbox_b.got) == 1 and len(inbox_c.got) == 1, timeout=5)
    assert inbox_b.got[0] == Envelope(NodeId("a"), "update", b"\x01\x02", "doc:r/d")
    await asyncio.sleep(0.2)
    assert inbox_a.got == []  # a node never hears its own echo


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
    inbox = Inbox()
    await a.start()
    await b.start()
    await b.subscribe("doc:r/one", inbox)
    await a.publish("doc:r/two", "update", b"x")
    await a.publish("doc:r/one", "update", b"y")
    await eventually(lambda: len(inbox.got) == 1, timeout=5)
    await b.unsubscribe("doc:r/one")
    await asyncio.sleep(0.1)
    await a.publish("doc:r/one", "update", b"z")
    await asyncio.sleep(0.3)
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
    await asyncio.sleep(0.2)
    assert inbox_c.got == []


async def test_alive_tracks_running_nodes(make_bus: Factory) -> None:
    a, b = make_bus("a"), make_bus("b")
    await a.start()
    await b.start()
    await eventually(lambda: True)
    assert await a.alive({NodeId("b"), NodeId("ghost")}) == {NodeId("b")}
    await b.close()
    await eventually(lambda: True)
    assert await a.alive({NodeId("b")}) == set()  # a clean close is seen at once


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
        await asyncio.sleep(0.5)
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
