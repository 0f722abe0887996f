"""What a node holds in memory, and when it lets go — theory of operation.

Docs (rooms/registry.py) and room channels (live/hub.py) live the same life, so one
helper runs it for both. An item has a bus topic and a *keeper* that knows what loading,
settling and using it mean:

- ``open(key, make)``: the first caller creates the item and starts ONE load task;
  every caller (however many sockets arrive at once) awaits that same task. The load
  subscribes to the item's topic *first*, then reads the database (``keeper.load``), so
  nothing published after the read is missed. With a ``bound`` (the docs'
  ``admission/loads.py``), at most so many loads run at once; the others wait in order.
  A failed load removes the item (it is
  never served half-loaded) and unsubscribes; the next ``open`` tries again.
- ``release(key, item)``: a user left. Once nobody has used the item for ``delay_s``
  (a reload or a reconnect keeps it warm), the unload runs: ``keeper.settle`` (flush,
  compact; False means "not yet", retried every ``retry_s``), then unsubscribe while the
  item is still registered, so that a join arriving meanwhile finds this item (and we
  subscribe again, ``keeper.resumed``: what the bus carried while we were off is
  fetched) instead of loading a second one whose subscription our unsubscribe would
  cancel. Only then is the item removed (``keeper.gone``).

A join never cancels an unload: cancelling it in the middle of a flush or an
unsubscribe would leave a registered item without its subscription. The unload checks
``keeper.in_use`` after each step instead, and waits again when the item was released
again meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from contextvars import Context
from typing import Any, Generic, Protocol, TypeVar

from server.bus.base import Bus, Handler

log = logging.getLogger(__name__)


class Resident(Protocol):
    @property
    def topic(self) -> str: ...


K = TypeVar("K")
R = TypeVar("R", bound=Resident)
R_contra = TypeVar("R_contra", bound=Resident, contravariant=True)


class Keeper(Protocol[R_contra]):
    def in_use(self, item: R_contra) -> bool: ...

    async def load(self, item: R_contra) -> None:
        """Read the item from the database (its topic is subscribed already)."""

    def loaded(self, item: R_contra) -> None:
        """The item is served from now on (e.g. ask the other nodes what they hold)."""

    def failed(self, item: R_contra) -> None: ...

    async def settle(self, item: R_contra) -> bool:
        """Before unloading: make everything durable. False: not yet, retry later."""

    async def resumed(self, item: R_contra) -> None:
        """A user came back while unsubscribed: catch up on what the bus carried."""

    async def gone(self, item: R_contra) -> None: ...


class Residency(Generic[K, R]):
    def __init__(
        self,
        bus: Bus,
        on_message: Handler,
        keeper: Keeper[R],
        *,
        delay_s: float,
        retry_s: float = 5.0,
        bound: AbstractAsyncContextManager[None] | None = None,
    ) -> None:
        self.bus = bus
        self.bound = bound
        self.on_message = on_message
        self.keeper = keeper
        self.delay_s = delay_s
        self.retry_s = retry_s
        self.items: dict[K, R] = {}
        self._loads: dict[K, asyncio.Task[None]] = {}
        self._unloads: dict[K, asyncio.Task[None]] = {}
        self._released_at: dict[K, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.closing = False

    def __len__(self) -> int:
        return len(self.items)

    def get(self, key: K) -> R | None:
        return self.items.get(key)

    def values(self) -> list[R]:
        return list(self.items.values())

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        # A fresh context: a load or unload serves everyone, so its log lines must not
        # carry the user and socket that happened to start it (server/logs.py).
        task = asyncio.get_running_loop().create_task(coro, name=name, context=Context())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def open(self, key: K, make: Callable[[], R]) -> R:
        """The item, loaded. Raises what the load raised."""
        item = self.items.get(key)
        if item is None:
            item = make()
            self.items[key] = item
            self._loads[key] = self._spawn(self._load(key, item), f"load {item.topic}")
        task = self._loads.get(key)
        if task is not None:
            await asyncio.shield(task)
        return item

    async def _load(self, key: K, item: R) -> None:
        try:
            async with self.bound or contextlib.nullcontext():
                await self.bus.subscribe(item.topic, self.on_message)
                await self.keeper.load(item)
        except BaseException:
            if self.items.get(key) is item:
                del self.items[key]
            with contextlib.suppress(Exception):
                await self.bus.unsubscribe(item.topic)
            self.keeper.failed(item)
            raise
        finally:
            self._loads.pop(key, None)
        self.keeper.loaded(item)

    def release(self, key: K, item: R) -> None:
        """``item`` lost a user: unload it once unused for ``delay_s``."""
        if self.closing or self.items.get(key) is not item or self.keeper.in_use(item):
            return
        self._released_at[key] = time.monotonic()
        if key not in self._unloads:
            self._unloads[key] = self._spawn(self._unload(key, item), f"unload {item.topic}")

    async def _unload(self, key: K, item: R) -> None:
        keeper = self.keeper
        try:
            while True:
                released = self._released_at.get(key, 0.0)
                wait = released + self.delay_s - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue
                if keeper.in_use(item):
                    return
                if not await keeper.settle(item):
                    log.warning("unload of %s postponed: not durable yet", item.topic)
                    await asyncio.sleep(self.retry_s)
                    continue
                if keeper.in_use(item):
                    return  # somebody came back while we flushed: keep serving
                if self._released_at.get(key, 0.0) != released:
                    continue  # ... and left again: wait a full delay, settle what they did
                await self.bus.unsubscribe(item.topic)
                if keeper.in_use(item) or self._released_at.get(key, 0.0) != released:
                    await self.bus.subscribe(item.topic, self.on_message)
                    await keeper.resumed(item)
                    if keeper.in_use(item):
                        return
                    continue  # released again meanwhile: their release found us running
                del self.items[key]
                self._released_at.pop(key, None)
                await keeper.gone(item)
                return
        finally:
            if self._unloads.get(key) is asyncio.current_task():
                del self._unloads[key]

    async def close(self) -> None:
        """Stop loading and unloading (the owner flushes what it holds)."""
        self.closing = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
