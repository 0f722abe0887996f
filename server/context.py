"""Everything a request handler needs, built once by the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from server.bus.base import Bus
from server.config import Settings
from server.persistence.docs import DocStore
from server.persistence.roster import Roster
from server.rooms.registry import RoomRegistry


@dataclass
class AppContext:
    settings: Settings
    engine: AsyncEngine
    store: DocStore
    roster: Roster
    bus: Bus
    registry: RoomRegistry
    jwt_secret: str
    draining: bool = field(default=False)
