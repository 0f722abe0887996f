"""The bus interface: a handful of methods, two implementations beside each other.

An :class:`Envelope` carries the origin node id, so a node drops its own echo, a
``kind`` ("update", "awareness", "sync1", ...) so that one topic per doc serves every
message about it, and the topic itself, so a message sent straight to one node
(``send_to``: anti-entropy replies) still says which doc it is about. Payloads are
opaque bytes: the bus never decodes a Yjs update.

On the wire (Redis) an envelope is a msgpack map ``{v, o, k, t, p}``; ``v`` is the
envelope version, so a rolling upgrade can tell old frames from new ones.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import msgpack

from server.types import NodeId

ENVELOPE_VERSION = 1


@dataclass(frozen=True, slots=True)
class Envelope:
    origin: NodeId
    kind: str
    payload: bytes
    topic: str = ""
    version: int = ENVELOPE_VERSION

    def pack(self) -> bytes:
        return msgpack.packb(
            {
                "v": self.version,
                "o": self.origin,
                "k": self.kind,
                "t": self.topic,
                "p": self.payload,
            },
            use_bin_type=True,
        )

    @classmethod
    def unpack(cls, data: bytes) -> Envelope:
        """Decode an envelope; raises ValueError on anything malformed or too new."""
        try:
            raw = msgpack.unpackb(data, raw=False, max_bin_len=64 << 20, max_str_len=4096)
        except Exception as exc:
            raise ValueError(f"not a msgpack envelope: {type(exc).__name__}") from None
        if not isinstance(raw, dict) or raw.get("v") != ENVELOPE_VERSION:
            raise ValueError("unknown envelope version")
        origin, kind, topic, payload = raw.get("o"), raw.get("k"), raw.get("t", ""), raw.get("p")
        if not (isinstance(origin, str) and isinstance(kind, str) and isinstance(topic, str)):
            raise ValueError("malformed envelope")
        if not isinstance(payload, bytes):
            raise ValueError("malformed envelope payload")
        return cls(NodeId(origin), kind, payload, topic)


Handler = Callable[[str, Envelope], Awaitable[None] | None]
ReconnectHook = Callable[[], Awaitable[None] | None]


class Bus(Protocol):
    node_id: NodeId

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, topic: str, kind: str, payload: bytes) -> None:
        """Send to every *other* node subscribed to ``topic``."""

    async def publish_many(self, items: Iterable[tuple[str, str, bytes]]) -> None:
        """Several publishes in one round trip, in order."""

    async def send_to(self, node: NodeId, topic: str, kind: str, payload: bytes) -> None:
        """Send to one node, about ``topic`` (delivered if that node subscribes to it)."""

    async def subscribe(self, topic: str, handler: Handler) -> None:
        """Deliver envelopes of ``topic`` from other nodes to ``handler``."""

    async def unsubscribe(self, topic: str) -> None: ...

    def on_reconnect(self, hook: ReconnectHook) -> None:
        """Call ``hook`` after the bus came back from an outage (messages may be lost)."""

    async def alive(self, nodes: set[NodeId]) -> set[NodeId]:
        """Which of these nodes still beat (heartbeats with a TTL)."""

    async def ping(self) -> None:
        """Raise if the bus cannot carry messages now (used by /readyz)."""
