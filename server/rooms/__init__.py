"""Docs held in memory: the registry (hot path, origins), relay to other nodes, residency."""

from server.rooms.livedoc import DocLoadError, LiveDoc
from server.rooms.registry import RoomRegistry

__all__ = ["DocLoadError", "LiveDoc", "RoomRegistry"]
