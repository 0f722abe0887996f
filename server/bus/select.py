"""The one place that chooses the bus from the settings."""

from __future__ import annotations

from server.bus.base import Bus
from server.bus.memory import InMemoryBus
from server.config import Settings
from server.types import NodeId


def create_bus(settings: Settings) -> Bus:
    if settings.redis_url:
        from server.bus.redis import RedisBus

        return RedisBus(
            settings.redis_url,
            NodeId(settings.node_id),
            prefix=settings.redis_prefix,
            heartbeat_s=settings.node_heartbeat_s,
            node_ttl_s=settings.node_ttl_s,
        )
    return InMemoryBus(NodeId(settings.node_id))
