"""Write-behind with group commit — theory of operation.

Updates from clients are queued in memory (``enqueue`` never awaits) and one task
appends them to the database in batches: it waits for the first update, lets the
group-commit window (``flush_interval_ms``) fill, then writes everything queued in ONE
transaction. Under load that is one fsync for hundreds of keystrokes; when idle it adds
at most one window of delay.

Never write-lost: a batch leaves the queue only after its transaction committed. When
the database fails, the batch stays at the head and is retried with backoff (clients
keep typing; the queue grows in memory; ``/readyz`` reports the database down). Updates
are idempotent CRDT updates, so a batch written twice after an ambiguous failure is
harmless. ``flush`` waits until everything queued before the call is committed: a doc
flushes before it unloads, and the server flushes on SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

from server import metrics

log = logging.getLogger(__name__)

#: (room id, doc name, Yjs update, author: the user whose socket sent it, or None)
Item = tuple[str, str, bytes, str | None]


class Appender(Protocol):
    async def append(self, items: Sequence[Item]) -> None: ...


class UpdateWriter:
    def __init__(
        self,
        store: Appender,
        *,
        interval_s: float,
        max_batch: int,
        on_committed: Callable[[Sequence[Item]], None] | None = None,
    ) -> None:
        self._store = store
        self._interval = interval_s
        self._max_batch = max_batch
        self._on_committed = on_committed
        self._queue: deque[Item] = deque()
        self._pending_per_doc: dict[tuple[str, str], int] = {}
        self._enqueued = 0  # sequence number of the last item queued
        self._committed = 0  # sequence number of the last item committed
        self._wake = asyncio.Event()
        self._progress = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def pending(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="update-writer")

    def pending_for(self, room_id: str, doc_name: str) -> int:
        return self._pending_per_doc.get((room_id, doc_name), 0)

    def enqueue(self, room_id: str, doc_name: str, update: bytes, author: str | None) -> None:
        self._queue.append((room_id, doc_name, update, author))
        key = (room_id, doc_name)
        self._pending_per_doc[key] = self._pending_per_doc.get(key, 0) + 1
        self._enqueued += 1
        self._wake.set()

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is committed. False on timeout."""
        target = self._enqueued
        if self._committed >= target:
            return True
        self._wake.set()

        async def reached() -> None:
            async with self._progress:
                await self._progress.wait_for(lambda: self._committed >= target)

        try:
            await asyncio.wait_for(reached(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self, timeout: float) -> bool:
        """Flush what is queued, then stop. Returns False if data could not be written."""
        self._closing = True
        ok = await self.flush(timeout)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if not ok:
            log.error("shutdown: %d updates could not be written", len(self._queue))
        return ok

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
            if not self._closing and self._interval > 0:
                await asyncio.sleep(self._interval)  # let the group-commit window fill
            while self._queue:
                n = min(len(self._queue), self._max_batch)
                batch = [self._queue[i] for i in range(n)]
                started = time.perf_counter()
                try:
                    await self._store.append(batch)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    metrics.WRITER_FAILURES.inc()
                    log.exception("database append failed; %d updates kept for retry", n)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
                    continue
                metrics.WRITER_COMMIT_SECONDS.observe(time.perf_counter() - started)
                metrics.WRITER_COMMITTED.inc(n)
                backoff = 0.05
                for _ in range(n):
                    room_id, doc_name, _update, _author = self._queue.popleft()
                    key = (room_id, doc_name)
                    left = self._pending_per_doc[key] - 1
                    if left:
                        self._pending_per_doc[key] = left
                    else:
                        del self._pending_per_doc[key]
                self._committed += n
                if self._on_committed is not None:
                    self._on_committed(batch)
                async with self._progress:
                    self._progress.notify_all()
