"""The one place that chooses the bus from the settings."""

from __future__ import annotations

from server.bus.base import Bus
from server.bus.memory import InMemoryBus
from server.config import Settings
from server.types import NodeId


def create_bus(settings: Settings) -> Bus:
    if settings.redis_url:
        raise NotImplementedError("the Redis bus lands with the scale-out issue")
    return InMemoryBus(NodeId(settings.node_id))
