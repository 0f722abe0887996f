"""Everything a request handler needs, built once by the app's lifespan."""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from server.assignments.service import Assignments
from server.bus.base import Bus
from server.cache import roster_cache
from server.config import Settings
from server.live.hub import LiveHub
from server.persistence.chat import ChatStore
from server.persistence.docs import DocStore
from server.persistence.notifications import NotificationStore
from server.persistence.roster import RoomInfo, Roster, UserInfo
from server.progress.service import Progress
from server.rooms.registry import RoomRegistry
from server.sessions.oidc import EntProvider
from server.sessions.service import Sessions
from server.types import RoomAccess


@dataclass
class AppContext:
    settings: Settings
    engine: AsyncEngine
    store: DocStore
    roster: Roster
    bus: Bus
    registry: RoomRegistry
    chat: ChatStore
    live: LiveHub
    progress: Progress
    assignments: Assignments
    notifications: NotificationStore
    jwt_secret: str
    sessions: Sessions
    ent: EntProvider | None = None  # the ENT's OpenID provider, when OIDC_* are set
    draining: bool = field(default=False)
    user_cache: MutableMapping[str, UserInfo] = field(init=False)
    access_cache: MutableMapping[tuple[str, str], tuple[RoomInfo | None, RoomAccess]] = field(
        init=False
    )

    def __post_init__(self) -> None:
        self.user_cache = roster_cache(self.settings.roster_cache_s)
        self.access_cache = roster_cache(self.settings.roster_cache_s)
