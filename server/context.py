"""Everything a request handler needs, built once by the app's lifespan."""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from server.admission.gate import Gate
from server.admission.line import Admission
from server.assignments.service import Assignments
from server.auth.tokens import Verifier
from server.bus.base import Bus
from server.cache import Loads, NoCache, roster_cache
from server.config import Settings
from server.live.hub import LiveHub
from server.persistence.chat import ChatStore
from server.persistence.docs import DocStore
from server.persistence.groups import GroupStore
from server.persistence.notifications import NotificationStore
from server.persistence.roster import RoomInfo, Roster, UserInfo
from server.privacy.erasure import Erasure
from server.progress.service import Progress
from server.revocation.service import Revocations
from server.revocation.sockets import SocketIndex
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
    groups: GroupStore
    sockets: SocketIndex
    revocations: Revocations
    jwt_secret: str
    verifier: Verifier
    sessions: Sessions
    ent: EntProvider | None = None  # the ENT's OpenID provider, when OIDC_* are set
    erasure: Erasure | None = None  # data protection (server/privacy/)
    draining: bool = field(default=False)
    #: The socket admission gate (server/admission/), from the ADMISSION_* settings.
    admission: Admission = field(init=False)
    user_cache: MutableMapping[str, UserInfo] = field(init=False)
    access_cache: MutableMapping[tuple[str, str], tuple[RoomInfo | None, RoomAccess]] = field(
        init=False
    )
    #: The caches' loads: concurrent misses of one key share one read (server/cache.py).
    user_loads: Loads[str, UserInfo | None] = field(init=False)
    access_loads: Loads[tuple[str, str], tuple[RoomInfo | None, RoomAccess]] = field(init=False)
    #: A room's naming policy: never cached (a change applies to the next join), but the
    #: joins in flight for one room share one read.
    policy_loads: Loads[str, str] = field(init=False)
    #: Rooms and their members, read once per room rather than once per (user, room):
    #: at 08:00 thirty pupils of a class join its rooms within seconds. Cleared by every
    #: roster change this node hears of (``forget``, ``forget_all``).
    room_loads: Loads[str, RoomInfo | None] = field(init=False)
    member_loads: Loads[str, frozenset[str]] = field(init=False)

    def __post_init__(self) -> None:
        s = self.settings
        gate = Gate(
            s.admission_slots,
            s.admission_line,
            retry_min_s=s.admission_retry_min_s,
            retry_max_s=max(s.admission_retry_min_s, s.admission_retry_max_s),
        )
        self.admission = Admission(gate, s.admission_max_wait_s)
        self.user_cache = roster_cache(self.settings.roster_cache_s)
        self.access_cache = roster_cache(self.settings.roster_cache_s)
        self.user_loads = Loads(self.user_cache)
        self.access_loads = Loads(self.access_cache)
        self.policy_loads = Loads(NoCache())
        self.room_loads = Loads(roster_cache(self.settings.roster_cache_s))
        self.member_loads = Loads(roster_cache(self.settings.roster_cache_s))

    def forget(self, users: Iterable[str]) -> None:
        """Drop what this node cached of these users' roster entries and access."""
        gone = set(users)
        self.user_loads.forget()
        self.access_loads.forget()
        self._forget_rooms()
        for user in gone:
            self.user_cache.pop(user, None)
        for key in [k for k in list(self.access_cache) if k[0] in gone]:
            self.access_cache.pop(key, None)

    def forget_all(self) -> None:
        """Drop everything this node cached of the roster (after an import)."""
        self.user_loads.forget()
        self.access_loads.forget()
        self._forget_rooms()
        self.user_cache.clear()
        self.access_cache.clear()

    def _forget_rooms(self) -> None:
        # Which rooms a change touched is not known here (a group archived, a pupil
        # moved): all of them, a few hundred rows read again at most.
        for loads in (self.room_loads, self.member_loads):
            loads.forget()
            loads.cache.clear()
