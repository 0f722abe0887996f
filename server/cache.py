"""The roster caches: time- and size-bounded, or none at all (``Settings.roster_cache_s``).

The cache itself is cachetools' ``TTLCache`` (LRU order, per-item expiry, O(1) insert and
eviction); this module only states, in one place, how big the roster caches are and that
a TTL of 0 (or less) means no caching. Callers use the plain mapping API: ``get(key)``
and ``cache[key] = value``.

:class:`Loads` makes the misses of one key share one database read: at 08:00 a class opens
its documents within seconds, and a node restart brings back thousands of sockets at once,
each missing the cache for the same few users and rooms; without it every one of them
queried the roster (py-spy on the storm bench: the node waiting on a pool of SQLite
threads, most of them asking the same thing).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterator, MutableMapping
from typing import Any, Generic, TypeVar

from cachetools import TTLCache

K = TypeVar("K")
V = TypeVar("V")

#: One entry per user and one per (user, room). A bound against unbounded growth, not a
#: working-set size: far above the users one node serves at once.
MAX_ENTRIES = 100_000


class NoCache(MutableMapping[K, V]):
    """A mapping that keeps nothing: every lookup misses, every write is dropped.

    Not a ``TTLCache`` with ttl 0: that one still stores the last item until the next
    insert expires it, and "disabled" is easier to trust when nothing is stored at all.
    """

    def __getitem__(self, key: K) -> V:
        raise KeyError(key)

    def __setitem__(self, key: K, value: V) -> None:
        pass

    def __delitem__(self, key: K) -> None:
        raise KeyError(key)

    def __iter__(self) -> Iterator[K]:
        return iter(())

    def __len__(self) -> int:
        return 0


def roster_cache(
    ttl_s: float,
    maxsize: int = MAX_ENTRIES,
    timer: Callable[[], float] = time.monotonic,
) -> MutableMapping[K, V]:
    """A cache whose entries live ``ttl_s`` seconds, least recently used evicted first.

    ``timer`` is cachetools' clock parameter (monotonic seconds), for tests.
    """
    if ttl_s <= 0:
        return NoCache()
    return TTLCache(maxsize, ttl_s, timer)


class Loads(Generic[K, V]):
    """One load in flight per key: the first miss starts it, later ones await the same.

    The load runs as a task of its own, so a caller that goes away (its socket closed)
    does not cancel it for the others. ``forget()`` (a roster change) makes the loads in
    flight stale: their result is still returned to whoever waits, but not cached."""

    def __init__(self, cache: MutableMapping[K, Any]) -> None:
        self.cache = cache
        self._inflight: dict[K, asyncio.Task[V]] = {}
        self._generation = 0

    def forget(self) -> None:
        self._generation += 1

    async def get(
        self,
        key: K,
        load: Callable[[], Coroutine[Any, Any, V]],
        keep: Callable[[V], bool] = lambda value: True,
    ) -> V:
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(load())
            self._inflight[key] = task
            generation = self._generation

            def done(task: asyncio.Task[V], key: K = key) -> None:
                if self._inflight.get(key) is task:
                    del self._inflight[key]
                if task.cancelled() or task.exception() is not None:
                    return
                value = task.result()
                if generation == self._generation and keep(value):
                    self.cache[key] = value

            task.add_done_callback(done)
        return await asyncio.shield(task)
