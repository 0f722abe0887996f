"""The in-process bus: the embedded default, and the twin the bus tests run beside Redis.

Nodes that share one :class:`MemoryHub` see each other's messages, exactly like nodes on
one Redis; a server running alone has a hub of one, so a publish costs a dict lookup.
"""

from __future__ import annotations

import inspect
import logging
from collections import defaultdict
from collections.abc import Iterable

from server.bus.base import Envelope, Handler, ReconnectHook
from server.types import NodeId

log = logging.getLogger(__name__)


class MemoryHub:
    def __init__(self) -> None:
        self.subscribers: dict[str, dict[NodeId, Handler]] = defaultdict(dict)
        self.nodes: dict[NodeId, InMemoryBus] = {}


class InMemoryBus:
    def __init__(self, node_id: NodeId, hub: MemoryHub | None = None) -> None:
        self.node_id = node_id
        self.hub = hub or MemoryHub()

    async def start(self) -> None:
        self.hub.nodes[self.node_id] = self

    async def close(self) -> None:
        self.hub.nodes.pop(self.node_id, None)
        for subs in self.hub.subscribers.values():
            subs.pop(self.node_id, None)

    async def _deliver(self, handler: Handler, topic: str, env: Envelope) -> None:
        try:
            result = handler(topic, env)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("bus handler failed on topic %s", topic)

    async def publish(self, topic: str, kind: str, payload: bytes) -> None:
        subs = self.hub.subscribers.get(topic)
        if not subs:
            return
        env = Envelope(self.node_id, kind, payload, topic)
        for node, handler in list(subs.items()):
            if node != self.node_id:  # a node ignores its own echo
                await self._deliver(handler, topic, env)

    async def publish_many(self, items: Iterable[tuple[str, str, bytes]]) -> None:
        for topic, kind, payload in items:
            await self.publish(topic, kind, payload)

    async def send_to(self, node: NodeId, topic: str, kind: str, payload: bytes) -> None:
        handler = self.hub.subscribers.get(topic, {}).get(node)
        if handler is not None and node != self.node_id:
            await self._deliver(handler, topic, Envelope(self.node_id, kind, payload, topic))

    async def subscribe(self, topic: str, handler: Handler) -> None:
        self.hub.subscribers[topic][self.node_id] = handler

    async def unsubscribe(self, topic: str) -> None:
        subs = self.hub.subscribers.get(topic)
        if subs is not None:
            subs.pop(self.node_id, None)
            if not subs:
                del self.hub.subscribers[topic]

    def on_reconnect(self, hook: ReconnectHook) -> None:
        return None  # an in-process bus never loses its connection

    async def alive(self, nodes: set[NodeId]) -> set[NodeId]:
        return {n for n in nodes if n in self.hub.nodes}

    async def ping(self) -> None:
        return None
