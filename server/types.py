"""The words everyone in the server uses.

Kept tiny on purpose (like Starlette's ``types.py``): identifiers are ``NewType``s over
``str`` so that mypy catches a room id passed where a user id is expected, and the access
levels are enums, so that a permission is a value, never a boolean guessed at a call site.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import NewType, Protocol

UserId = NewType("UserId", str)
NodeId = NewType("NodeId", str)

#: ``doc_name`` in ``/yjs/{room_id}/{doc_name}`` (contract).
DOC_NAME_RE = re.compile(r"[a-z0-9_-]{1,64}")
#: Room ids are class and group ids: short slugs.
ROOM_ID_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class Role(enum.StrEnum):
    """A user's role comes from the roster, never from the token."""

    STUDENT = "student"
    TEACHER = "teacher"
    PARENT = "parent"
    ADMIN = "admin"


class RoomKind(enum.StrEnum):
    CLASS = "class"
    GROUP = "group"


class DocAccess(enum.IntEnum):
    """What a connection may do to the docs of a room. Ordered: WRITE > READ > NONE."""

    NONE = 0
    READ = 1
    WRITE = 2


@dataclass(frozen=True, slots=True)
class RoomAccess:
    """One row of the permission table, for one user in one room."""

    docs: DocAccess = DocAccess.NONE
    chat: bool = False
    moderate: bool = False
    lock: bool = False
    #: Students lose write access to a locked doc; teachers keep it.
    bound_by_locks: bool = False

    @property
    def may_enter(self) -> bool:
        return self.docs is not DocAccess.NONE or self.chat

    def doc_access(self, locked: bool) -> DocAccess:
        if locked and self.bound_by_locks and self.docs is DocAccess.WRITE:
            return DocAccess.READ
        return self.docs


NO_ACCESS = RoomAccess()


class PeerHandle(Protocol):
    """A client socket as rooms/ and live/ see it (``server/transport/peer.py`` is the one).

    Sending never awaits: a frame is written at once or queued; a peer too far behind
    closes itself. ``close`` is idempotent.
    """

    @property
    def user_id(self) -> UserId | None: ...

    @property
    def access(self) -> RoomAccess | None: ...

    def send(self, frame: bytes) -> None: ...

    def close(self, code: int, reason: str) -> None: ...

    def regrade(self, access: RoomAccess) -> None: ...


class UpdateOrigin(enum.Enum):
    """Where a doc update came from: decides whether it is stored and where it is sent
    (``LiveDoc.integrate`` is the one place that decides).

    An update from a local client is stored and published on the bus; one relayed by
    another node is applied and fanned out locally but never stored again here (that node
    stored it); one loaded from the database is neither.
    """

    CLIENT = "client"
    BUS = "bus"
    STORE = "store"
