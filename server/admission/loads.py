"""The bound on concurrent doc loads (``rooms/residency.py``).

Separate from the gate: a doc load reads the snapshot and the log from the database, the
costliest step of an admission when the doc is cold, and a storm of first opens (a class
opening its thirty docs) must not ask the database pool for more connections than it has;
loads the server makes itself (an assignment's freeze, a version) pass here too. Loads
beyond ``slots`` wait their turn, in order; nothing is refused here (an admission that
waits too long is the gate's business, not this one's).
"""

from __future__ import annotations

import asyncio
from types import TracebackType


class LoadBound:
    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._sem = asyncio.Semaphore(slots)
        self.in_flight = 0
        self.waiting = 0

    async def __aenter__(self) -> None:
        self.waiting += 1
        try:
            await self._sem.acquire()
        finally:
            self.waiting -= 1
        self.in_flight += 1

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.in_flight -= 1
        self._sem.release()
