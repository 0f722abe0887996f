"""Rooms, their live docs, and the registry that loads and unloads them."""

from server.rooms.livedoc import DocLoadError, LiveDoc
from server.rooms.peer import Peer, PeerState
from server.rooms.registry import RoomRegistry

__all__ = ["DocLoadError", "LiveDoc", "Peer", "PeerState", "RoomRegistry"]
