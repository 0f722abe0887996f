"""The node's one outbox (bus/outbox.py): publishes queued together go in one round trip,
in order; direct messages keep their place in the queue; a failing bus loses what was in
flight, never the outbox; a full queue drops its oldest."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import pytest

from server.bus.base import Envelope
from server.bus.memory import InMemoryBus, MemoryHub
from server.bus.outbox import Outbox
from server.types import NodeId
from tests.support.inproc import until

TOPIC = "doc:2nde-a-g1/rapport"


class CountingBus(InMemoryBus):
    """The in-memory bus, keeping each round trip it was asked for; ``failing`` makes
    the next round trips raise, as a Redis connection dropping would."""

    def __init__(self, node_id: NodeId, hub: MemoryHub) -> None:
        super().__init__(node_id, hub)
        self.trips: list[tuple[str, ...] | list[tuple[str, str, bytes]]] = []
        self.failing = 0

    def _trip(self) -> None:
        if self.failing:
            self.failing -= 1
            raise ConnectionError("bus connection lost")

    async def publish_many(self, items: Iterable[tuple[str, str, bytes]]) -> None:
        batch = list(items)
        self.trips.append(batch)
        self._trip()
        await super().publish_many(batch)

    async def send_to(self, node: NodeId, topic: str, kind: str, payload: bytes) -> None:
        self.trips.append(("send_to", node, kind))
        self._trip()
        await super().send_to(node, topic, kind, payload)


class Inbox:
    """Another node, subscribed to TOPIC: keeps what reaches it."""

    def __init__(self) -> None:
        self.got: list[tuple[str, bytes]] = []

    def __call__(self, topic: str, env: Envelope) -> None:
        self.got.append((env.kind, env.payload))

    def payloads(self) -> list[bytes]:
        return [p for _, p in self.got]


@pytest.fixture
def hub() -> MemoryHub:
    return MemoryHub()


async def _node(hub: MemoryHub, name: str) -> tuple[InMemoryBus, Inbox]:
    bus = InMemoryBus(NodeId(name), hub)
    await bus.start()
    inbox = Inbox()
    await bus.subscribe(TOPIC, inbox)
    return bus, inbox


async def _outbox(hub: MemoryHub, **options: int) -> tuple[CountingBus, Outbox]:
    bus = CountingBus(NodeId("A"), hub)
    await bus.start()
    return bus, Outbox(bus, **options)


def _n(i: int) -> bytes:
    return bytes((i,))


async def test_publishes_queued_together_go_in_one_round_trip_in_order(hub: MemoryHub) -> None:
    _, inbox = await _node(hub, "B")
    bus, outbox = await _outbox(hub)
    for i in range(5):
        outbox.publish(TOPIC, "update", _n(i))
    assert len(outbox) == 5  # nothing awaited: queued

    outbox.start()
    await until(lambda: len(inbox.got) == 5, "the five publishes")

    assert bus.trips == [[(TOPIC, "update", _n(i)) for i in range(5)]]
    assert inbox.payloads() == [_n(i) for i in range(5)]
    await outbox.close()


async def test_a_batch_holds_at_most_max_batch_publishes(hub: MemoryHub) -> None:
    _, inbox = await _node(hub, "B")
    bus, outbox = await _outbox(hub, max_batch=2)
    for i in range(5):
        outbox.publish(TOPIC, "update", _n(i))

    outbox.start()
    await until(lambda: len(inbox.got) == 5, "the five publishes")

    assert [len(trip) for trip in bus.trips] == [2, 2, 1]
    assert inbox.payloads() == [_n(i) for i in range(5)]
    await outbox.close()


async def test_a_direct_message_keeps_its_place_and_reaches_its_node_alone(
    hub: MemoryHub,
) -> None:
    _, to_b = await _node(hub, "B")
    _, to_c = await _node(hub, "C")
    bus, outbox = await _outbox(hub)
    outbox.publish(TOPIC, "sync1", _n(1))
    outbox.send_to(NodeId("B"), TOPIC, "sync2", _n(2))
    outbox.publish(TOPIC, "update", _n(3))

    outbox.start()
    await until(lambda: len(to_b.got) == 3 and len(to_c.got) == 2, "everything delivered")

    assert to_b.got == [("sync1", _n(1)), ("sync2", _n(2)), ("update", _n(3))]
    assert to_c.got == [("sync1", _n(1)), ("update", _n(3))]
    assert bus.trips == [
        [(TOPIC, "sync1", _n(1))],
        ("send_to", "B", "sync2"),
        [(TOPIC, "update", _n(3))],
    ]
    await outbox.close()


async def test_a_failing_bus_drops_what_was_in_flight_and_the_outbox_goes_on(
    hub: MemoryHub, caplog: pytest.LogCaptureFixture
) -> None:
    _, inbox = await _node(hub, "B")
    bus, outbox = await _outbox(hub)
    outbox.start()
    bus.failing = 2

    outbox.publish(TOPIC, "update", _n(1))
    await until(lambda: len(bus.trips) == 1, "the failed publish")
    outbox.send_to(NodeId("B"), TOPIC, "sync2", _n(2))
    await until(lambda: len(bus.trips) == 2, "the failed direct message")
    outbox.publish(TOPIC, "update", _n(3))
    await until(lambda: inbox.got, "the next publish")

    assert inbox.got == [("update", _n(3))]
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "bus send failed (ConnectionError); repaired later"
    ] * 2
    await outbox.close()


async def test_a_full_outbox_drops_its_oldest_messages(
    hub: MemoryHub, caplog: pytest.LogCaptureFixture
) -> None:
    _, inbox = await _node(hub, "B")
    _, outbox = await _outbox(hub, max_pending=3)
    for i in range(5):
        outbox.publish(TOPIC, "update", _n(i))
    assert len(outbox) == 3

    outbox.start()
    await until(lambda: len(inbox.got) == 3, "what the queue kept")

    assert inbox.payloads() == [_n(2), _n(3), _n(4)]
    assert "bus outbox full" in caplog.text
    await outbox.close()


async def test_close_sends_what_is_queued_then_stops(hub: MemoryHub) -> None:
    _, inbox = await _node(hub, "B")
    _, outbox = await _outbox(hub)
    outbox.start()
    for i in range(3):
        outbox.publish(TOPIC, "update", _n(i))

    await outbox.close()

    assert inbox.payloads() == [_n(0), _n(1), _n(2)]
