"""The node's one liveness loop (bus/watch.py): one question to the bus for every
watcher, and each watcher told only of the dead nodes it depends on."""

from __future__ import annotations

import asyncio

import pytest

from server.bus.memory import InMemoryBus, MemoryHub
from server.bus.watch import NodeWatch
from server.types import NodeId
from tests.support.inproc import until


class AskedBus(InMemoryBus):
    """The in-memory bus, keeping each liveness question it was asked."""

    def __init__(self, node_id: NodeId, hub: MemoryHub) -> None:
        super().__init__(node_id, hub)
        self.asked: list[set[NodeId]] = []

    async def alive(self, nodes: set[NodeId]) -> set[NodeId]:
        self.asked.append(set(nodes))
        return await super().alive(nodes)


@pytest.fixture
async def cluster() -> dict[str, InMemoryBus]:
    hub = MemoryHub()
    buses: dict[str, InMemoryBus] = {"A": AskedBus(NodeId("A"), hub)}
    buses.update({n: InMemoryBus(NodeId(n), hub) for n in "BCD"})
    for bus in buses.values():
        await bus.start()
    return buses


def _ids(*names: str) -> set[NodeId]:
    return {NodeId(n) for n in names}


async def test_each_watcher_is_told_only_of_its_own_dead_nodes(
    cluster: dict[str, InMemoryBus],
) -> None:
    me = cluster["A"]
    assert isinstance(me, AskedBus)
    watch = NodeWatch(me, interval_s=3600)
    cursors: list[set[NodeId]] = []
    presence: list[set[NodeId]] = []
    replicas: list[set[NodeId]] = []

    async def purge_presence(dead: set[NodeId]) -> None:  # a watcher may be async
        await asyncio.sleep(0)
        presence.append(dead)

    watch.watch(lambda: _ids("A", "B", "C"), cursors.append)  # itself: never a suspect
    watch.watch(lambda: _ids("C", "D"), purge_presence)
    watch.watch(lambda: _ids("D"), replicas.append)
    await cluster["B"].close()
    await cluster["C"].close()

    assert await watch.check() == _ids("B", "C")

    assert me.asked == [_ids("B", "C", "D")]  # one question for everyone
    assert cursors == [_ids("B", "C")]
    assert presence == [_ids("C")]
    assert replicas == []


async def test_nobody_dead_nobody_told(cluster: dict[str, InMemoryBus]) -> None:
    watch = NodeWatch(cluster["A"], interval_s=3600)
    told: list[set[NodeId]] = []
    watch.watch(lambda: _ids("B", "C"), told.append)

    assert await watch.check() == set()
    assert told == []


async def test_no_suspect_no_question(cluster: dict[str, InMemoryBus]) -> None:
    me = cluster["A"]
    assert isinstance(me, AskedBus)
    watch = NodeWatch(me, interval_s=3600)
    watch.watch(lambda: _ids("A"), lambda dead: None)
    watch.watch(set, lambda dead: None)

    assert await watch.check() == set()
    assert me.asked == []


async def test_a_failing_watcher_does_not_keep_the_others_from_purging(
    cluster: dict[str, InMemoryBus], caplog: pytest.LogCaptureFixture
) -> None:
    watch = NodeWatch(cluster["A"], interval_s=3600)
    told: list[set[NodeId]] = []

    def broken(dead: set[NodeId]) -> None:
        raise RuntimeError("purge failed")

    watch.watch(lambda: _ids("B"), broken)
    watch.watch(lambda: _ids("B"), told.append)
    await cluster["B"].close()

    assert await watch.check() == _ids("B")
    assert told == [_ids("B")]
    assert "purge of dead nodes failed" in caplog.text


async def test_the_loop_asks_again_each_interval_with_the_suspects_of_the_moment(
    cluster: dict[str, InMemoryBus],
) -> None:
    watch = NodeWatch(cluster["A"], interval_s=0.01)
    suspects = _ids("B")
    told: list[set[NodeId]] = []
    watch.watch(lambda: set(suspects), told.append)
    watch.start()
    try:
        await cluster["C"].close()
        suspects = _ids("B", "C")  # the watcher took something from C since
        await until(lambda: told, "the loop finds C dead")
        assert told[0] == _ids("C")
    finally:
        await watch.close()
