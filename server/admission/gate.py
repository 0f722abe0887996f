"""The admission gate — theory of operation.

A socket's *admission* is the work from its acceptance to its first sync sent: the token,
the roster and permission look-ups, the doc load, sync step 1. At most ``slots`` run at
once. A socket arriving when every slot is taken waits in a FIFO line of at most ``line``
tickets; a slot that frees goes to the head of the line. Three outcomes for an arrival:

    arrive() ──► ADMITTED (a slot was free and nobody waiting) ──► leave() ──► DONE
             ├─► WAITING ──► (a slot frees, its turn) ADMITTED ──► leave() ──► DONE
             │           └─► give_up() (waited ``max_wait_s``, or left) ──► DONE
             └─► raises Busy (the line is full): refused before any work

A refusal carries ``retry_after``: when the client should come back so as to find the
line drained. The line drains at the rate admissions complete (``rate``: completions over
the last ``window_s``; before there are enough of them, Little's law on the slots and the
mean admission time). Clients refused earlier and not yet back are ahead of this one, so
the delay is ``(line + owed) / rate``: each refusal books a later return, and a burst of
refusals is spread over the time the node needs to serve it, not sent back at once. Then
jitter (× 1 to 1 + ``jitter``), and clamped to [``retry_min_s``, ``retry_max_s``].

Pure: no asyncio, no sockets. ``line.py`` runs it on the event loop, the unit tests with
a hand-moved clock.
"""

from __future__ import annotations

import enum
import math
import random
import time
from collections import deque
from collections.abc import Callable


class Busy(Exception):
    """Refused: come back in ``retry_after`` seconds."""

    def __init__(self, retry_after: float, why: str, *, waited: bool = False) -> None:
        super().__init__(f"{why}; retry_after={retry_after:.1f}")
        self.retry_after = retry_after
        self.why = why
        #: False: refused on arrival (the line full); True: waited its maximum in line.
        self.waited = waited


class TicketState(enum.Enum):
    WAITING = "waiting"
    ADMITTED = "admitted"
    DONE = "done"


#: The legal transitions of a ticket; anything else raises.
_NEXT = {
    TicketState.WAITING: {TicketState.ADMITTED, TicketState.DONE},
    TicketState.ADMITTED: {TicketState.DONE},
    TicketState.DONE: set(),
}


class Ticket:
    __slots__ = ("admitted_at", "arrived_at", "state", "wake")

    def __init__(self, now: float) -> None:
        self.arrived_at = now
        self.admitted_at: float | None = None
        self.state = TicketState.WAITING
        #: Set by whoever waits on the ticket (line.py): called when it is admitted.
        self.wake: Callable[[], None] | None = None

    def _move(self, to: TicketState) -> None:
        if to not in _NEXT[self.state]:
            raise RuntimeError(f"ticket {self.state.value} → {to.value}")
        self.state = to

    @property
    def admitted(self) -> bool:
        return self.state is TicketState.ADMITTED


#: An admission's duration assumed before any was measured (token, roster, sync step 1 on
#: a warm node; a cold doc load is more). Only used until the first completions.
_GUESS_S = 0.05


class Gate:
    def __init__(
        self,
        slots: int,
        line: int,
        *,
        retry_min_s: float = 1.0,
        retry_max_s: float = 30.0,
        jitter: float = 0.3,
        window_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if slots < 1 or line < 0 or retry_min_s > retry_max_s:
            raise ValueError("slots ≥ 1, line ≥ 0, retry_min_s ≤ retry_max_s")
        self.slots = slots
        self.line_max = line
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self.jitter = jitter
        self.window_s = window_s
        self.clock = clock
        self.rng = rng
        self.in_flight = 0
        #: Tickets WAITING, in arrival order. One that gave up stays in the deque, DONE,
        #: until it reaches the head (skipped then): giving up costs O(1) in a long line.
        self._line: deque[Ticket] = deque()
        self.waiting = 0
        #: When recent admissions completed (pruned to ``window_s``; bounded).
        self._completed: deque[float] = deque(maxlen=100_000)
        #: Mean admission time (moving average), for the rate before the window fills.
        self._mean_s = _GUESS_S
        #: When refused clients were told to come back, still ahead of now.
        self._owed: deque[float] = deque(maxlen=100_000)

    # --- tickets ---

    def arrive(self) -> Ticket:
        """A ticket, ADMITTED or WAITING in line; raises Busy when the line is full."""
        now = self.clock()
        if self.in_flight < self.slots and not self.waiting:
            ticket = Ticket(now)
            self._admit(ticket, now)
            return ticket
        if self.waiting >= self.line_max:
            raise Busy(self.retry_after(), "server busy")
        ticket = Ticket(now)
        if len(self._line) > 2 * self.line_max + 64:  # many gave up while slots were stuck
            self._line = deque(t for t in self._line if t.state is TicketState.WAITING)
        self._line.append(ticket)
        self.waiting += 1
        return ticket

    def leave(self, ticket: Ticket) -> list[Ticket]:
        """The ticket's admission is over (or its socket gone). Returns the tickets this
        admitted from the line (their ``wake`` already called). Idempotent."""
        state = ticket.state
        if state is TicketState.DONE:
            return []
        ticket._move(TicketState.DONE)
        if state is TicketState.WAITING:
            self.waiting -= 1
            return []
        now = self.clock()
        self.in_flight -= 1
        self._completed.append(now)
        if ticket.admitted_at is not None:
            self._mean_s += 0.1 * ((now - ticket.admitted_at) - self._mean_s)
        admitted = []
        line = self._line
        while line and self.in_flight < self.slots:
            head = line.popleft()
            if head.state is not TicketState.WAITING:
                continue  # gave up earlier
            self.waiting -= 1
            self._admit(head, now)
            admitted.append(head)
            if head.wake is not None:
                head.wake()
        return admitted

    def give_up(self, ticket: Ticket) -> Busy | None:
        """A waiting ticket waited its maximum: out of the line, with the refusal to
        send. None if it was admitted meanwhile (then it goes on: never refuse an
        admitted socket)."""
        if ticket.state is not TicketState.WAITING:
            return None
        ticket._move(TicketState.DONE)
        self.waiting -= 1
        return Busy(self.retry_after(), "server busy", waited=True)

    def full(self) -> bool:
        """True when an arrival now would be refused."""
        return self.waiting >= self.line_max and (self.in_flight >= self.slots or self.waiting > 0)

    # --- the retry delay ---

    def rate(self) -> float:
        """Admissions completed per second, recently."""
        now = self.clock()
        done = self._completed
        while done and done[0] < now - self.window_s:
            done.popleft()
        if len(done) >= 2 * self.slots:
            return len(done) / self.window_s
        return self.slots / max(self._mean_s, 1e-3)  # Little's law, the node saturated

    def retry_after(self) -> float:
        """Seconds a client refused now should wait: the line and the clients refused
        before it, drained at the measured rate; jittered, clamped; booked."""
        now = self.clock()
        owed = self._owed
        while owed and owed[0] <= now:
            owed.popleft()
        ahead = self.waiting + len(owed) + 1
        delay = ahead / self.rate()
        delay *= 1.0 + self.jitter * self.rng()
        if not math.isfinite(delay):
            delay = self.retry_max_s
        delay = min(self.retry_max_s, max(self.retry_min_s, delay))
        # Kept in order for the pruning above: a jittered return earlier than the last
        # booked one is booked at the last one's time (close enough, and bounded).
        owed.append(max(now + delay, owed[-1] if owed else 0.0))
        return delay

    # --- inside ---

    def _admit(self, ticket: Ticket, now: float) -> None:
        ticket._move(TicketState.ADMITTED)
        ticket.admitted_at = now
        self.in_flight += 1
