"""The per-socket token bucket (server/transport/limits.py).

The bucket takes the time as an argument, so each test is a timeline written out.
"""

from __future__ import annotations

import pytest

from server.transport.limits import TokenBucket


def test_a_full_bucket_allows_a_burst_then_refuses() -> None:
    bucket = TokenBucket(rate=10, burst=5, now=0.0)
    assert [bucket.take(0.0) for _ in range(6)] == [True] * 5 + [False]


def test_it_refills_at_rate() -> None:
    bucket = TokenBucket(rate=10, burst=5, now=0.0)
    for _ in range(5):
        assert bucket.take(0.0)
    assert not bucket.take(0.05)  # half a token back
    assert bucket.take(0.1)  # one token: 0.1 s at 10/s
    assert not bucket.take(0.1)
    # Three tokens after another 0.3 s, and not a fourth.
    assert [bucket.take(0.4) for _ in range(4)] == [True, True, True, False]


def test_a_sustained_rate_at_the_limit_is_always_allowed() -> None:
    # Eighths of a second: exact in binary, so the timeline has no rounding in it.
    bucket = TokenBucket(rate=8, burst=1, now=0.0)
    assert all(bucket.take(i / 8) for i in range(100))
    assert not bucket.take(99 / 8 + 0.1)


def test_it_never_holds_more_than_burst() -> None:
    bucket = TokenBucket(rate=10, burst=5, now=0.0)
    # An hour idle earns no more than the burst.
    assert [bucket.take(3600.0) for _ in range(6)] == [True] * 5 + [False]


def test_a_refused_take_costs_nothing() -> None:
    bucket = TokenBucket(rate=1, burst=2, now=0.0)
    assert bucket.take(0.0, cost=2)
    for _ in range(10):
        assert not bucket.take(0.0)
    assert bucket.take(1.0)  # the one token earned in that second is still there


@pytest.mark.parametrize(("cost", "allowed"), [(2, 2), (3, 1), (5, 1), (6, 0)])
def test_a_cost_above_one_takes_that_many_tokens(cost: float, allowed: int) -> None:
    bucket = TokenBucket(rate=10, burst=5, now=0.0)
    taken = 0
    while bucket.take(0.0, cost=cost):
        taken += 1
    assert taken == allowed


def test_a_costly_take_waits_for_enough_tokens() -> None:
    bucket = TokenBucket(rate=10, burst=5, now=0.0)
    assert bucket.take(0.0, cost=5)
    assert not bucket.take(0.2, cost=3)  # two tokens back, three needed
    assert bucket.take(0.3, cost=3)
