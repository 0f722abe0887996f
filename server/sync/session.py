"""One socket's conversation about one doc — theory of operation.

A ``DocSession`` owns no socket. The I/O layer feeds it each frame with ``receive`` and
gets back an :class:`Outcome`: frames for the sender alone, the update to store and to
send to everyone else, an awareness frame for everyone. It never awaits, so the order of
effects is exactly the order of frames.

Opening (server first, as y-websocket servers do)::

    server → sync step 1 (server state vector) [+ awareness of everyone present]
    client → sync step 2 (what the server lacks)     → applied if the socket may write
    client → sync step 1 (client state vector)      → answered with sync step 2
    then both sides send updates as they happen.

Rules enforced here, once, for every frame:
- **Read-only covers every write-carrying message**: sync step 2 as well as update. A
  write from a read-only socket is dropped and, when it carried something new, answered
  with the y-protocols "permission denied" auth message. It never reaches the doc.
- **Decode once, encode once**: an update frame is broadcast as the very bytes received;
  a step-2 payload is wrapped once into an update frame. Empty updates go nowhere.
- **Awareness ownership**: a socket speaks for the awareness client ids it set; when it
  closes, those states are removed for everyone (``closing`` returns that update).
- **Client ids are owned**: given the doc's ``owners`` (client id → user), a socket's
  update binds the client ids it is the first to use to its user, and a live update
  that would add structs under a client id bound to another user is refused ("permission
  denied", never applied): a student cannot write under a classmate's id. A sync step 2
  may carry other users' structs (a replica handing back what the server lost): they
  stay attributed to their owners.
- **Docs have a size limit** (the replica's ``max_bytes``): an update that would take
  the state past it is refused ("permission denied: document too large"), never
  applied. From then on the socket's replica holds structs the doc will never have, so
  every later write of that socket that carries news is refused the same way (applied,
  they would wait forever on the refused structs): the client must reload the doc to
  write again (the web client does so; a stock client stays a reader). Deletions from a
  socket that was never refused always fit.
- Anything malformed, or an update pycrdt refuses, raises :class:`ProtocolError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pycrdt import Doc, get_update

from server.sync.awareness import AwarenessTable
from server.sync.messages import (
    EMPTY_UPDATE,
    AwarenessMessage,
    ProtocolError,
    QueryAwareness,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    awareness_frame,
    decode,
    permission_denied_frame,
    sync_step1_frame,
    sync_step2_frame,
    update_frame,
)
from server.sync.replica import Replica
from server.sync.structs import update_clients

READ_ONLY_REASON = "read-only: this document cannot be edited from this connection"
FOREIGN_REASON = "permission denied: this Yjs client id belongs to another user"
TOO_LARGE_REASON = (
    "document too large: this edit would take it past the size limit; it was not "
    "saved (reload the document to go on editing)"
)
#: The limit name of a size refusal (``Outcome.limit``; the metric's label).
DOC_BYTES = "doc_bytes"


@dataclass(slots=True)
class Outcome:
    #: Frames for the sender only.
    reply: list[bytes] = field(default_factory=list)
    #: The update now applied to the doc: to store and to publish on the bus.
    update: bytes | None = None
    #: The frame carrying ``update``, for every other local socket on this doc.
    broadcast: bytes | None = None
    #: An awareness frame for every local socket, the sender included (stock clients
    #: expect their own state echoed back).
    awareness: bytes | None = None
    #: The awareness update inside ``awareness``, for the bus.
    awareness_payload: bytes | None = None
    #: Set when a write was refused (read-only); the reason was sent in ``reply``.
    denied: str | None = None
    #: Set when a limit refused the write (``DOC_BYTES``); ``first`` on its first time
    #: for this socket (the refusal worth a log line).
    limit: str | None = None
    first: bool = False


def carries_news(doc: Doc, update: bytes, *, catch_up: bool) -> bool:
    """Would ``update`` change the doc? Decides whether a refused write is answered.

    The part of the update the doc lacks is ``get_update(update, state vector)``. In the
    v1 update format it starts with the number of clients whose structs it holds: a
    leading 0 means no new structs, only a delete set. A delete set alone is news in an
    update message (the user deleted something), but not in a sync step 2 (``catch_up``):
    Yjs clients put their whole delete set in every step 2, so a read-only reader who
    reconnects would otherwise be told off for nothing.
    """
    try:
        missing = get_update(update, doc.get_state())
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException:
        return True  # not even decodable: certainly not applied, say so
    if missing[:1] != b"\x00":
        return True
    return not catch_up and missing != EMPTY_UPDATE


class DocSession:
    __slots__ = ("awareness", "diverged", "doc", "owned", "owners", "replica", "user")

    def __init__(
        self,
        replica: Replica | Doc,
        awareness: AwarenessTable,
        *,
        owners: dict[int, str] | None = None,
        user: str | None = None,
    ) -> None:
        if not isinstance(replica, Replica):
            replica = Replica(replica)  # a bare doc (tests, tools): a replica of its own
        self.replica = replica
        self.doc = replica.doc
        self.awareness = awareness
        self.owned: set[int] = set()
        self.owners = owners
        self.user = user
        #: True once a write of this socket was refused for size (see the module doc).
        self.diverged = False

    def _claim(self, update: bytes, *, live: bool) -> list[int] | None:
        """The client ids this update would bind to our user, or None to refuse it."""
        owners, user = self.owners, self.user
        if owners is None or user is None:
            return []
        try:
            clients = update_clients(update)
        except ProtocolError:
            return []  # pycrdt is the judge of validity; attribution just skips it
        fresh: list[int] = []
        foreign: set[int] = set()
        for client in clients:
            owner = owners.get(client)
            if owner is None:
                fresh.append(client)
            elif owner != user:
                foreign.add(client)
        if foreign and live:
            # Refused only if it adds something under those ids (a replay of structs
            # the doc has already is harmless).
            try:
                missing = update_clients(get_update(update, self.doc.get_state()))
            except (KeyboardInterrupt, SystemExit, GeneratorExit):
                raise
            except BaseException:
                missing = frozenset(foreign)
            if missing & foreign:
                return None
        return fresh

    def opening(self) -> list[bytes]:
        frames = [sync_step1_frame(self.doc.get_state())]
        everyone = self.awareness.full_update()
        if everyone is not None:
            frames.append(awareness_frame(everyone))
        return frames

    def receive(self, frame: bytes, *, writable: bool, now: float) -> Outcome:
        msg = decode(frame)
        out = Outcome()
        if isinstance(msg, SyncUpdate | SyncStep2):
            update = msg.update
            if update == EMPTY_UPDATE:
                return out
            if not writable:
                if carries_news(self.doc, update, catch_up=isinstance(msg, SyncStep2)):
                    out.denied = READ_ONLY_REASON
                    out.reply.append(permission_denied_frame(READ_ONLY_REASON))
                return out
            fresh = self._claim(update, live=isinstance(msg, SyncUpdate))
            if fresh is None:
                out.denied = FOREIGN_REASON
                out.reply.append(permission_denied_frame(FOREIGN_REASON))
                return out
            if self.diverged or not self.replica.fits(update, now):
                if self.diverged and not carries_news(
                    self.doc, update, catch_up=isinstance(msg, SyncStep2)
                ):
                    return out
                out.denied = TOO_LARGE_REASON
                out.limit = DOC_BYTES
                out.first = not self.diverged
                self.diverged = True
                out.reply.append(permission_denied_frame(TOO_LARGE_REASON))
                return out
            self.replica.apply(update)
            if fresh:
                owners = self.owners
                assert owners is not None and self.user is not None
                for client in fresh:
                    owners.setdefault(client, self.user)
            out.update = update
            out.broadcast = frame if isinstance(msg, SyncUpdate) else update_frame(update)
        elif isinstance(msg, SyncStep1):
            try:
                diff = self.doc.get_update(msg.state_vector)
            except (KeyboardInterrupt, SystemExit, GeneratorExit):
                raise
            except BaseException as exc:
                raise ProtocolError(
                    f"bad state vector: {type(exc).__name__}: {exc}"[:100]
                ) from None
            out.reply.append(sync_step2_frame(diff))
        elif isinstance(msg, AwarenessMessage):
            accepted = self.awareness.apply(msg.entries, now)
            for e in accepted:  # in frame order: the last accepted entry of an id wins
                if e.state is None:
                    self.owned.discard(e.client_id)
                else:
                    self.owned.add(e.client_id)
            if accepted:
                out.awareness = frame
                out.awareness_payload = msg.payload
        elif isinstance(msg, QueryAwareness):
            everyone = self.awareness.full_update()
            if everyone is not None:
                out.reply.append(awareness_frame(everyone))
        return out

    def closing(self) -> bytes | None:
        """The awareness update removing this socket's clients, for everyone left (the
        caller frames it for local sockets and publishes it as is to the other nodes)."""
        if not self.owned:
            return None
        payload = self.awareness.remove(self.owned)
        self.owned.clear()
        return payload
