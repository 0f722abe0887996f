"""The roster caches (server/cache.py): hits, expiry, the size bound, and 0 = off; and
``Loads``, one read in flight per key.

Time is a clock the test turns by hand, passed as cachetools' own ``timer`` parameter.
"""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping

import pytest

from server.cache import MAX_ENTRIES, Loads, roster_cache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_stored_entry_is_a_hit_and_an_unknown_key_a_miss() -> None:
    cache = roster_cache(30.0, timer=Clock())
    cache["s-01"] = "Zoé"
    assert cache.get("s-01") == "Zoé"
    assert cache.get("s-02") is None
    assert "s-02" not in cache


def test_an_entry_lives_ttl_seconds_then_misses() -> None:
    clock = Clock()
    cache = roster_cache(30.0, timer=clock)
    cache["s-01"] = "Zoé"
    clock.now += 29.9
    assert cache.get("s-01") == "Zoé"
    clock.now += 0.1
    assert cache.get("s-01") is None
    assert "s-01" not in cache


def test_a_rewrite_starts_the_ttl_again() -> None:
    clock = Clock()
    cache = roster_cache(30.0, timer=clock)
    cache["s-01"] = "Zoé"
    clock.now += 20
    cache["s-01"] = "Zoé Martin"
    clock.now += 20
    assert cache.get("s-01") == "Zoé Martin"


def test_when_full_the_least_recently_used_entry_goes_first() -> None:
    cache = roster_cache(30.0, maxsize=3, timer=Clock())
    for key in ("a", "b", "c"):
        cache[key] = key.upper()
    # Reading "a" makes "b" the least recently used: LRU order, not insertion order.
    assert cache.get("a") == "A"
    cache["d"] = "D"
    assert len(cache) == 3
    assert cache.get("b") is None
    assert [cache.get(k) for k in ("a", "c", "d")] == ["A", "C", "D"]


def test_the_size_bound_holds_under_many_inserts() -> None:
    cache = roster_cache(30.0, maxsize=100, timer=Clock())
    for i in range(1000):
        cache[i] = i
    assert len(cache) == 100
    assert cache.get(899) is None
    assert cache.get(999) == 999


def test_the_default_bound_is_100k_entries() -> None:
    cache = roster_cache(30.0)
    assert getattr(cache, "maxsize", None) == MAX_ENTRIES == 100_000


def test_ttl_zero_or_less_caches_nothing() -> None:
    for ttl in (0.0, -1.0):
        cache = roster_cache(ttl, timer=Clock())
        cache["s-01"] = "Zoé"
        assert cache.get("s-01") is None
        assert "s-01" not in cache
        assert len(cache) == 0
        assert list(cache) == []


# --- one load per key in flight (Loads) ---


class Reads:
    """A loader that counts its reads and holds each one until released."""

    def __init__(self) -> None:
        self.count = 0
        self.gate = asyncio.Event()

    async def read(self, value: str | None = "row") -> str | None:
        self.count += 1
        await self.gate.wait()
        return value


async def test_concurrent_misses_share_one_read_then_hit_the_cache() -> None:
    loads: Loads[str, str | None] = Loads(roster_cache(30.0))
    reads = Reads()
    waiting = [asyncio.create_task(loads.get("s-01", reads.read)) for _ in range(50)]
    await asyncio.sleep(0)
    reads.gate.set()
    assert await asyncio.gather(*waiting) == ["row"] * 50
    assert reads.count == 1
    assert await loads.get("s-01", reads.read) == "row" and reads.count == 1


async def test_a_caller_gone_does_not_cancel_the_read_for_the_others() -> None:
    loads: Loads[str, str | None] = Loads(roster_cache(30.0))
    reads = Reads()
    first = asyncio.create_task(loads.get("s-01", reads.read))
    second = asyncio.create_task(loads.get("s-01", reads.read))
    await asyncio.sleep(0)
    first.cancel()
    reads.gate.set()
    assert await second == "row" and reads.count == 1
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_a_read_made_stale_by_forget_is_returned_but_not_kept() -> None:
    cache: MutableMapping[str, str | None] = roster_cache(30.0)
    loads: Loads[str, str | None] = Loads(cache)
    reads = Reads()
    waiting = asyncio.create_task(loads.get("s-01", reads.read))
    await asyncio.sleep(0)
    loads.forget()  # the roster changed while the read was in flight
    reads.gate.set()
    assert await waiting == "row"
    assert "s-01" not in cache


async def test_unknown_and_failed_reads_are_not_kept() -> None:
    cache: MutableMapping[str, str | None] = roster_cache(30.0)
    loads: Loads[str, str | None] = Loads(cache)
    reads = Reads()
    reads.gate.set()
    assert await loads.get("ghost", lambda: reads.read(None), keep=lambda v: v is not None) is None
    assert "ghost" not in cache

    async def broken() -> str | None:
        raise RuntimeError("database down")

    for _ in range(2):
        with pytest.raises(RuntimeError):
            await loads.get("s-01", broken)
    assert "s-01" not in cache
