"""The admission gate (server/admission/gate.py), sans I/O: a hand-moved clock and a
chosen random draw; then its event-loop layer (line.py) and the doc-load bound."""

from __future__ import annotations

import asyncio

import pytest

from server.admission.gate import Busy, Gate, TicketState
from server.admission.line import Admission, retry_header, retry_reason
from server.admission.loads import LoadBound


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def gate(slots: int = 2, line: int = 3, *, draw: float = 0.0, **kw: float) -> tuple[Gate, Clock]:
    clock = Clock()
    return Gate(slots, line, clock=clock, rng=lambda: draw, **kw), clock


# --- slots and the line ---


def test_admits_up_to_its_slots_then_queues_then_refuses() -> None:
    g, _ = gate(slots=2, line=3)
    admitted = [g.arrive() for _ in range(2)]
    assert all(t.admitted for t in admitted)
    waiting = [g.arrive() for _ in range(3)]
    assert [t.state for t in waiting] == [TicketState.WAITING] * 3
    assert (g.in_flight, g.waiting) == (2, 3)
    assert g.full()
    with pytest.raises(Busy) as refused:
        g.arrive()
    assert not refused.value.waited
    assert (g.in_flight, g.waiting) == (2, 3)  # a refusal takes nothing


def test_a_freed_slot_goes_to_the_head_of_the_line_in_order() -> None:
    g, _ = gate(slots=1, line=5)
    first = g.arrive()
    woken: list[int] = []
    line = [g.arrive() for _ in range(4)]
    for i, ticket in enumerate(line):
        ticket.wake = lambda i=i: woken.append(i)
    order = []
    current = first
    for _ in range(4):
        (nxt,) = g.leave(current)
        order.append(line.index(nxt))
        assert g.in_flight == 1
        current = nxt
    assert order == [0, 1, 2, 3] == woken
    assert g.leave(current) == []
    assert (g.in_flight, g.waiting) == (0, 0)


def test_a_newcomer_never_overtakes_the_line() -> None:
    g, _ = gate(slots=1, line=5)
    first = g.arrive()
    waiting = g.arrive()
    g.leave(first)  # the slot goes to ``waiting``...
    assert waiting.admitted
    late = g.arrive()  # ... so a newcomer waits, though it arrived as a slot freed
    assert late.state is TicketState.WAITING


def test_leave_is_idempotent_and_a_waiter_may_leave() -> None:
    g, _ = gate(slots=1, line=3)
    a = g.arrive()
    b = g.arrive()
    c = g.arrive()
    g.leave(b)  # its socket went away while waiting
    assert g.waiting == 1
    assert g.leave(a) == [c]  # b skipped
    assert g.leave(a) == []
    assert g.in_flight == 1


def test_give_up_refuses_a_waiter_but_never_an_admitted_ticket() -> None:
    g, _ = gate(slots=1, line=3)
    a = g.arrive()
    b = g.arrive()
    assert g.give_up(a) is None  # admitted: goes on
    refusal = g.give_up(b)
    assert refusal is not None and refusal.waited
    assert b.state is TicketState.DONE and g.waiting == 0
    assert g.give_up(b) is None


def test_an_empty_line_setting_refuses_as_soon_as_the_slots_are_taken() -> None:
    g, _ = gate(slots=1, line=0)
    g.arrive()
    assert g.full()
    with pytest.raises(Busy):
        g.arrive()


def test_illegal_ticket_moves_raise() -> None:
    g, _ = gate()
    t = g.arrive()
    g.leave(t)
    with pytest.raises(RuntimeError):
        t._move(TicketState.ADMITTED)


def test_many_give_ups_while_the_slots_are_stuck_stay_bounded() -> None:
    g, _ = gate(slots=1, line=3)
    g.arrive()
    for _ in range(1000):
        g.give_up(g.arrive())
    assert g.waiting == 0
    assert len(g._line) <= 2 * 3 + 64 + 1


# --- the retry delay ---


def test_the_delay_is_the_line_over_the_measured_rate() -> None:
    g, clock = gate(slots=4, line=100, retry_min_s=0.001, retry_max_s=1000)
    # 40 admissions, 4 at a time, each 0.1 s: 40/s measured over the 5 s window.
    for _ in range(10):
        tickets = [g.arrive() for _ in range(4)]
        clock.now += 0.1
        for t in tickets:
            g.leave(t)
    clock.now += 0.5  # the window holds 40 completions: 40 / 5 s = 8/s
    assert g.rate() == pytest.approx(8.0)
    for _ in range(4):
        g.arrive()
    for _ in range(15):
        g.arrive()  # 15 in line
    # The next one refused is behind the 15 waiting: (15 + 1) / 8 = 2 s.
    assert g.retry_after() == pytest.approx(2.0)
    # One refused is now owed a return before the next: (15 + 1 + 1) / 8.
    assert g.retry_after() == pytest.approx(17 / 8)


def test_before_enough_completions_the_rate_is_slots_over_the_admission_time() -> None:
    g, clock = gate(slots=4, line=100)
    t = g.arrive()
    clock.now += 0.05
    g.leave(t)
    assert g.rate() == pytest.approx(4 / 0.05)


def test_refused_clients_come_back_spread_not_together() -> None:
    g, _ = gate(slots=2, line=10, retry_min_s=0.0001, retry_max_s=10_000)
    delays = [g.retry_after() for _ in range(50)]
    assert delays == sorted(delays) and len(set(delays)) == 50


def test_jitter_multiplies_by_one_to_one_plus_jitter() -> None:
    low, _ = gate(slots=2, line=10, draw=0.0, retry_min_s=0.0001, retry_max_s=10_000)
    high, _ = gate(slots=2, line=10, draw=0.999, retry_min_s=0.0001, retry_max_s=10_000)
    a, b = low.retry_after(), high.retry_after()
    assert b == pytest.approx(a * (1 + 0.3 * 0.999))


def test_the_delay_is_clamped() -> None:
    fast, _ = gate(slots=100, line=10)
    assert fast.retry_after() == 1.0  # 1 / (100 / 0.05) s is far below the minimum
    slow, clock = gate(slots=1, line=10_000)
    t = slow.arrive()
    clock.now += 20  # an admission took 20 s: the database is stalled
    slow.leave(t)
    slow.arrive()
    for _ in range(5000):
        slow.arrive()
    assert slow.retry_after() == 30.0


def test_owed_returns_expire() -> None:
    g, clock = gate(slots=2, line=10, retry_min_s=0.0001, retry_max_s=10_000)
    first = g.retry_after()
    for _ in range(9):
        g.retry_after()
    clock.now += 10_000  # every refused client came back
    assert g.retry_after() == pytest.approx(first)


def test_reason_and_header_formats() -> None:
    busy = Busy(2.46, "server busy")
    reason = retry_reason(busy)
    assert reason == "server busy; retry_after=2.5"
    assert len(reason.encode()) <= 123
    assert retry_header(2.46) == "3" and retry_header(0.2) == "1" and retry_header(30.0) == "30"


# --- on the event loop ---


async def test_enter_waits_its_turn_in_order() -> None:
    admission = Admission(Gate(1, 5), max_wait_s=60)
    first = await admission.enter()
    order: list[int] = []

    async def one(i: int) -> None:
        ticket = await admission.enter()
        order.append(i)
        await asyncio.sleep(0)
        admission.leave(ticket)

    tasks = [asyncio.create_task(one(i)) for i in range(4)]
    await asyncio.sleep(0)
    assert admission.waiting == 4 and order == []
    admission.leave(first)
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3]
    assert (admission.in_flight, admission.waiting) == (0, 0)


async def test_enter_refuses_after_the_maximum_wait() -> None:
    admission = Admission(Gate(1, 5), max_wait_s=0.01)
    held = await admission.enter()
    with pytest.raises(Busy) as refused:
        await admission.enter()
    assert refused.value.waited and refused.value.retry_after >= 1.0
    assert (admission.in_flight, admission.waiting) == (1, 0)
    admission.leave(held)
    assert admission.busy() is None


async def test_a_cancelled_waiter_leaves_the_line() -> None:
    admission = Admission(Gate(1, 5), max_wait_s=60)
    held = await admission.enter()
    task = asyncio.create_task(admission.enter())
    await asyncio.sleep(0)
    assert admission.waiting == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert admission.waiting == 0
    admission.leave(held)
    assert admission.in_flight == 0


async def test_busy_is_the_cheap_check_before_the_handshake() -> None:
    admission = Admission(Gate(1, 1), max_wait_s=60)
    held = await admission.enter()
    assert admission.busy() is None  # room in the line
    waiter = asyncio.create_task(admission.enter())
    await asyncio.sleep(0)
    delay = admission.busy()
    assert delay is not None and 1.0 <= delay <= 30.0
    admission.leave(held)
    admission.leave(await waiter)


async def test_the_load_bound_runs_so_many_at_once_in_order() -> None:
    bound = LoadBound(2)
    running = 0
    most = 0
    started: list[int] = []

    async def load(i: int) -> None:
        nonlocal running, most
        async with bound:
            started.append(i)
            running += 1
            most = max(most, running)
            await asyncio.sleep(0.001)
            running -= 1

    await asyncio.gather(*(load(i) for i in range(10)))
    assert most == 2
    assert started == list(range(10))
    assert (bound.in_flight, bound.waiting) == (0, 0)
