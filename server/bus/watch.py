"""Which other nodes are still alive: one loop for the whole node.

Several parts of a node hold state that came from other nodes (doc awareness, room
presence, doc replicas with updates another node may not have stored yet). Each
registers a watcher: a function naming the nodes it depends on, and one to call with
those found dead. Every ``interval_s`` the loop asks the bus once about all of them
(``Bus.alive``: heartbeat keys with a TTL) and tells each watcher about its own dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable

from server.bus.base import Bus
from server.types import NodeId

log = logging.getLogger(__name__)

Suspects = Callable[[], Iterable[NodeId]]
OnDead = Callable[[set[NodeId]], Awaitable[None] | None]


class NodeWatch:
    def __init__(self, bus: Bus, interval_s: float) -> None:
        self.bus = bus
        self.interval_s = interval_s
        self._watchers: list[tuple[Suspects, OnDead]] = []
        self._task: asyncio.Task[None] | None = None

    def watch(self, suspects: Suspects, on_dead: OnDead) -> None:
        self._watchers.append((suspects, on_dead))

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="node-watch")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def check(self) -> set[NodeId]:
        """One round: returns the nodes found dead (each watcher told of its own)."""
        wanted = [(set(suspects()), on_dead) for suspects, on_dead in self._watchers]
        everyone = set().union(*(s for s, _ in wanted)) - {self.bus.node_id}
        if not everyone:
            return set()
        dead = everyone - await self.bus.alive(everyone)
        if not dead:
            return set()
        log.warning("nodes %s stopped beating: removing what came from them", sorted(dead))
        for suspects, on_dead in wanted:
            mine = suspects & dead
            if mine:
                try:
                    result = on_dead(mine)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    log.exception("purge of dead nodes failed")
        return dead

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.check()
            except Exception:
                log.exception("liveness check failed")
