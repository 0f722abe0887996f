"""The per-socket token bucket (server/transport/limits.py).

The bucket takes the time as an argument, so each test is a timeline written out.
"""

from __future__ import annotations

import pytest

from server.transport.limits import FramePacer, TokenBucket


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


# --- FramePacer: the per-socket frame limit of frames(), slowed before closed ---


def test_the_pacer_reads_a_burst_at_once_then_asks_to_wait() -> None:
    pacer = FramePacer(rate=8, burst=4, abuse_after_s=10, now=0.0)
    assert [pacer.delay(0.0) for _ in range(4)] == [0.0] * 4
    assert pacer.delay(0.0) == 1 / 8  # the next token is an eighth of a second away
    assert pacer.held_s == 1 / 8 and not pacer.abusive


def test_a_paced_reader_takes_frames_at_the_rate_and_never_refuses_one() -> None:
    pacer = FramePacer(rate=8, burst=1, abuse_after_s=1000, now=0.0)
    now, read = 0.0, 0
    while now < 10.0:  # a sender with always one more frame: read, or wait, then read
        now += pacer.delay(now)
        read += 1
    assert 80 <= read <= 82  # 10 s at 8/s, plus the burst
    assert pacer.held_s == pytest.approx(10.0, abs=0.25)


def test_waits_are_never_shorter_than_a_few_frames_worth() -> None:
    pacer = FramePacer(rate=1000, burst=1, abuse_after_s=10, now=0.0)
    pacer.delay(0.0)
    assert pacer.delay(0.0) == pytest.approx(0.004)  # 4 frames, not one timer per frame


def test_a_flood_is_abusive_after_the_threshold_of_waiting() -> None:
    pacer = FramePacer(rate=10, burst=5, abuse_after_s=2, now=0.0)
    now = 0.0
    while not pacer.abusive:
        now += pacer.delay(now)
        assert now < 10
    assert 2.0 < now <= 2.5 + 0.5  # the burst is free, then ~2 s of waiting


def test_a_sender_that_comes_back_under_its_rate_starts_a_new_count() -> None:
    pacer = FramePacer(rate=10, burst=10, abuse_after_s=3, now=0.0)
    now = 0.0
    while now < 2.0:  # 2 s over the rate
        now += pacer.delay(now)
    assert pacer.held_s > 1.5
    pacer.delay(now + 0.6)  # quiet long enough to win back half its burst
    assert pacer.held_s == 0.0
    while now < 4.0:  # over the rate again: not abusive yet, the count restarted
        now += pacer.delay(now)
    assert not pacer.abusive


@pytest.mark.parametrize(("frames", "abusive"), [(100, False), (120, True)])
def test_a_finite_burst_is_abuse_only_past_rate_times_threshold_frames(
    frames: int, abusive: bool
) -> None:
    # Sent at once (any speed): held back (frames - burst) / rate seconds in all.
    pacer = FramePacer(rate=10, burst=5, abuse_after_s=10, now=0.0)
    now, closed = 0.0, False
    for _ in range(frames):
        wait = pacer.delay(now)
        if wait and pacer.abusive:
            closed = True
            break
        now += wait
    assert closed is abusive
