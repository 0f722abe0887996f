"""The outbox: the one way this node's messages reach the bus — theory of operation.

The hot paths (a keystroke, a chat message, a presence change) never await the bus:
``publish`` and ``send_to`` append to one bounded queue and return. One task drains it,
sending each run of consecutive publishes as one pipelined round trip
(``Bus.publish_many``) and direct messages one by one, in the order they were queued.

If the bus fails, what was in flight is dropped and logged: every node stores what its
own clients sent, anti-entropy repairs doc replicas, and room channels refill chat gaps
from the database, so the bus is a fast path, never the record. For the same reason a
queue that reaches ``max_pending`` (a bus far slower than the node) drops its oldest
messages rather than growing without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque

from server import metrics
from server.bus.base import Bus
from server.types import NodeId

log = logging.getLogger(__name__)

#: (target node, or None for a publish to the topic; topic; kind; payload; when queued,
#: time.monotonic(): the publish lag that /metrics reports)
_Out = tuple[NodeId | None, str, str, bytes, float]


class Outbox:
    def __init__(self, bus: Bus, *, max_batch: int = 512, max_pending: int = 100_000) -> None:
        self.bus = bus
        self.max_batch = max_batch
        self._out: deque[_Out] = deque(maxlen=max_pending)
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._out)

    def oldest_age(self) -> float:
        """Seconds the oldest queued message has waited; 0 when the queue is empty."""
        out = self._out
        return time.monotonic() - out[0][4] if out else 0.0

    def publish(self, topic: str, kind: str, payload: bytes) -> None:
        """To every other node subscribed to ``topic``."""
        self._push((None, topic, kind, payload, time.monotonic()))

    def send_to(self, node: NodeId, topic: str, kind: str, payload: bytes) -> None:
        """To one node, about ``topic``."""
        self._push((node, topic, kind, payload, time.monotonic()))

    def _push(self, item: _Out) -> None:
        out = self._out
        if len(out) == out.maxlen:
            log.warning("bus outbox full: dropping its oldest message (repaired later)")
            metrics.BUS_DROPPED.inc()
        out.append(item)
        self._idle.clear()
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="bus-outbox")

    async def close(self, timeout: float = 2.0) -> None:
        """Send what is queued (within ``timeout``), then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task

    async def _run(self) -> None:
        out = self._out
        while True:
            self._idle.set()
            await self._wake.wait()
            self._wake.clear()
            while out:
                # One observation per batch: the wait of its oldest message.
                metrics.BUS_PUBLISH_LAG.observe(time.monotonic() - out[0][4])
                batch: list[tuple[str, str, bytes]] = []
                while out and out[0][0] is None and len(batch) < self.max_batch:
                    _, topic, kind, payload, _queued = out.popleft()
                    batch.append((topic, kind, payload))
                try:
                    if batch:
                        await self.bus.publish_many(batch)
                    else:
                        target, topic, kind, payload, _queued = out.popleft()
                        assert target is not None
                        await self.bus.send_to(target, topic, kind, payload)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    metrics.BUS_SEND_FAILURES.inc()
                    log.warning("bus send failed (%s); repaired later", type(exc).__name__)
