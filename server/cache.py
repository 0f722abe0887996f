"""A small time-bounded cache for roster lookups (see ``Settings.roster_cache_s``)."""

from __future__ import annotations

import time
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    """A small time-bounded cache; bounded in size too (oldest entries go first)."""

    def __init__(self, ttl_s: float, max_entries: int = 100_000) -> None:
        self.ttl = ttl_s
        self.max = max_entries
        self._data: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> V | None:
        hit = self._data.get(key)
        if hit is None:
            return None
        if hit[0] < time.monotonic():
            del self._data[key]
            return None
        return hit[1]

    def put(self, key: K, value: V) -> None:
        if self.ttl <= 0:
            return
        if len(self._data) >= self.max:
            for old in list(self._data)[: self.max // 10 or 1]:
                del self._data[old]
        self._data[key] = (time.monotonic() + self.ttl, value)
