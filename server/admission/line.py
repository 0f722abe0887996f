"""The admission gate on the event loop: a waiter's future and its maximum wait.

``enter()`` returns an admitted ticket — at once when a slot is free, else when the line
reaches it — or raises ``Busy`` (the line full, or ``max_wait_s`` waited). Every
decision is the gate's, taken synchronously in a callback (a slot freed, a wait
expired), so a ticket admitted in the same loop turn as its timer fires is admitted, not
refused: an admitted socket is never dropped. ``leave()`` ends an admission (idempotent:
endpoints call it when the first sync is sent, and again, harmlessly, when they end).
"""

from __future__ import annotations

import asyncio

from server.admission.gate import Busy, Gate, Ticket


class Admission:
    def __init__(self, gate: Gate, max_wait_s: float) -> None:
        self.gate = gate
        self.max_wait_s = max_wait_s

    @property
    def in_flight(self) -> int:
        return self.gate.in_flight

    @property
    def waiting(self) -> int:
        return self.gate.waiting

    def busy(self) -> float | None:
        """The retry delay to send when an arrival now would be refused, else None: the
        cheap check made before any work (the HTTP 503 before the WebSocket handshake)."""
        return self.gate.retry_after() if self.gate.full() else None

    async def enter(self) -> Ticket:
        ticket = self.gate.arrive()  # raises Busy: the line is full
        if ticket.admitted:
            return ticket
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not future.done():
                future.set_result(None)

        def expire() -> None:
            refusal = self.gate.give_up(ticket)
            if refusal is not None and not future.done():
                future.set_exception(refusal)

        ticket.wake = wake
        timer = loop.call_later(self.max_wait_s, expire)
        try:
            await future
        except asyncio.CancelledError:
            self.leave(ticket)  # gone while waiting (or admitted the same turn): free it
            raise
        finally:
            timer.cancel()
            ticket.wake = None
        return ticket

    def leave(self, ticket: Ticket | None) -> None:
        if ticket is not None:
            self.gate.leave(ticket)


def retry_reason(busy: Busy) -> str:
    """The close reason of a 1013 refusal: machine-readable ``retry_after=<seconds>``
    (docs/protocol.md), well under the 123 bytes a close reason may carry."""
    return str(busy)  # Busy's own message: "<why>; retry_after=<s>"


def retry_header(seconds: float) -> str:
    """An HTTP ``Retry-After``: whole seconds, rounded up (RFC 9110)."""
    return str(max(1, int(-(-seconds // 1))))


__all__ = ["Admission", "Busy", "retry_header", "retry_reason"]
