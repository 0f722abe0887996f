"""A doc loaded in memory: the pycrdt ``Doc``, its awareness and the sockets on it.

A LiveDoc is created LOADING and becomes READY once its snapshot and update log are
applied; only then does any socket attach. A load that fails leaves it FAILED and it is
dropped (rooms/residency.py): it is never served empty, so nothing empty can be written
over the real doc. After its last socket leaves it is flushed, compacted and GONE.
"""

from __future__ import annotations

import enum

from pycrdt import Doc

from server.metrics.hot import TRAFFIC
from server.sync.awareness import AwarenessTable
from server.sync.replica import Replica
from server.sync.session import DocSession
from server.types import NodeId, PeerHandle


class DocLoadError(RuntimeError):
    """The doc could not be loaded; the client should retry later."""


class DocState(enum.Enum):
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"
    GONE = "gone"


class LiveDoc:
    __slots__ = (
        "awareness",
        "bus_updates",
        "compacting",
        "doc",
        "key",
        "locked",
        "log_size",
        "name",
        "owners",
        "peer_nodes",
        "remote",
        "replica",
        "room_id",
        "sessions",
        "state",
        "topic",
    )

    def __init__(self, room_id: str, name: str, *, max_bytes: int | None = None) -> None:
        self.room_id = room_id
        self.name = name
        self.key = (room_id, name)
        self.topic = self.topic_of(room_id, name)
        self.replica = Replica(max_bytes=max_bytes)
        self.doc: Doc = self.replica.doc
        self.awareness = AwarenessTable()
        self.sessions: dict[PeerHandle, DocSession] = {}
        self.state = DocState.LOADING
        self.locked = False
        #: Updates in the database log not yet folded into the snapshot (this node's view).
        self.log_size = 0
        self.compacting = False
        #: Awareness client id → the node its state came from (not this one).
        self.remote: dict[int, NodeId] = {}
        #: Nodes that sent anything about this doc; updates received from the bus since
        #: this replica last secured its state in the log (see rooms/relay.py).
        self.peer_nodes: set[NodeId] = set()
        self.bus_updates = 0
        #: Yjs client id → the user it is bound to: the first user whose socket sent
        #: structs under it (server/progress/ fills it at load; the sessions bind).
        self.owners: dict[int, str] = {}

    @staticmethod
    def topic_of(room_id: str, name: str) -> str:
        return f"doc:{room_id}/{name}"

    def __repr__(self) -> str:
        return f"<LiveDoc {self.room_id}/{self.name} {self.state.value} {len(self.sessions)}>"

    @property
    def ready(self) -> bool:
        return self.state is DocState.READY

    def set_locked(self, locked: bool) -> None:
        """(Un)lock the doc here. Each socket's access is re-read at its next frame; a
        peer that announces its scope (a /collab doc: Authenticated) is told the new one
        now, through ``regrade`` with its unchanged access."""
        if locked == self.locked:
            return
        self.locked = locked
        for peer in list(self.sessions):
            access = peer.access
            if access is not None:
                peer.regrade(access)

    def attach(self, peer: PeerHandle) -> DocSession:
        if self.state is not DocState.READY:
            raise DocLoadError(f"doc is {self.state.value}")
        user = peer.user_id
        session = DocSession(self.replica, self.awareness, owners=self.owners, user=user)
        self.sessions[peer] = session
        return session

    def detach(self, peer: PeerHandle) -> bytes | None:
        """Forget a socket; return the awareness update removing its clients, if any."""
        session = self.sessions.pop(peer, None)
        return session.closing() if session is not None else None

    def fan_out(self, frame: bytes, exclude: PeerHandle | None = None) -> None:
        sessions = self.sessions
        for peer in sessions:
            if peer is not exclude:
                peer.send(frame)
        # Counted once per fan-out, not per socket (server/metrics/hot.py).
        n = len(sessions) - (exclude is not None and exclude in sessions)
        TRAFFIC.frames_out += n
        TRAFFIC.bytes_out += n * len(frame)
