"""Publish/subscribe between nodes. ``select.py`` picks the implementation."""

from server.bus.base import Bus, Envelope, Handler
from server.bus.select import create_bus

__all__ = ["Bus", "Envelope", "Handler", "create_bus"]
