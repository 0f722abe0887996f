"""The bus interface: a handful of methods, two implementations beside each other.

An :class:`Envelope` carries the origin node id, so a node drops its own echo, and a
``kind`` ("update", "awareness", ...) so that one topic per doc serves every message
about it. Payloads are opaque bytes: the bus never decodes a Yjs update.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from server.types import NodeId

ENVELOPE_VERSION = 1


@dataclass(frozen=True, slots=True)
class Envelope:
    origin: NodeId
    kind: str
    payload: bytes
    version: int = ENVELOPE_VERSION


Handler = Callable[[str, Envelope], Awaitable[None] | None]


class Bus(Protocol):
    node_id: NodeId

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, topic: str, kind: str, payload: bytes) -> None:
        """Send to every *other* node subscribed to ``topic``."""

    async def subscribe(self, topic: str, handler: Handler) -> None:
        """Deliver envelopes of ``topic`` from other nodes to ``handler``."""

    async def unsubscribe(self, topic: str) -> None: ...

    async def ping(self) -> None:
        """Raise if the bus cannot carry messages now (used by /readyz)."""
