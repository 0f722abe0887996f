"""The roster caches: time- and size-bounded, or none at all (``Settings.roster_cache_s``).

The cache itself is cachetools' ``TTLCache`` (LRU order, per-item expiry, O(1) insert and
eviction); this module only states, in one place, how big the roster caches are and that
a TTL of 0 (or less) means no caching. Callers use the plain mapping API: ``get(key)``
and ``cache[key] = value``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, MutableMapping
from typing import TypeVar

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
