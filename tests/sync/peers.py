"""Shared pieces of the sans-I/O protocol tests: a stock client without its socket.

Nothing here touches the network: a :class:`Peer` is what a y-websocket client does
with the frames it receives (pycrdt's own codec, not ours, so that both sides are not
checked against the same reading of the protocol), and :func:`exchange` is the I/O
layer reduced to a loop.
"""

from __future__ import annotations

from pycrdt import (
    Awareness,
    Doc,
    Text,
    YMessageType,
    create_sync_message,
    create_update_message,
    handle_sync_message,
    read_message,
    write_var_uint,
)

from server.sync.session import DocSession, Outcome


def awareness_update(*entries: tuple[int, int, str]) -> bytes:
    """An awareness update (the payload of an awareness frame) from raw JSON texts."""
    out = [write_var_uint(len(entries))]
    for client_id, clock, text in entries:
        raw = text.encode("utf-8")
        out += [write_var_uint(client_id), write_var_uint(clock), write_var_uint(len(raw)), raw]
    return b"".join(out)


def seeded_doc(text: str = "hello", client_id: int = 1) -> Doc:
    doc = Doc(client_id=client_id)
    doc["t"] = Text(text)
    return doc


class Peer:
    """A y-websocket client on pycrdt: sends its own updates, answers sync step 1."""

    def __init__(self, client_id: int | None = None) -> None:
        self.doc = Doc(client_id=client_id)
        self.text = self.doc.get("t", type=Text)
        self.awareness = Awareness(self.doc)
        self.outbox: list[bytes] = []
        self.denied: list[bytes] = []
        self._remote = False
        self.doc.observe(self._on_transaction)

    def _on_transaction(self, event: object) -> None:
        update = event.update  # type: ignore[attr-defined]
        if not self._remote and update != b"\x00\x00":
            self.outbox.append(create_update_message(update))

    def hello(self) -> None:
        """What a client sends on connecting: its own sync step 1."""
        self.outbox.append(create_sync_message(self.doc))

    def feed(self, frame: bytes) -> None:
        kind = frame[0]
        if kind == YMessageType.SYNC:
            self._remote = True
            try:
                reply = handle_sync_message(frame[1:], self.doc)
            finally:
                self._remote = False
            if reply is not None:
                self.outbox.append(reply)
        elif kind == YMessageType.AWARENESS:
            self.awareness.apply_awareness_update(read_message(frame[1:]), "server")
        elif kind == 2:
            self.denied.append(frame)
        else:
            raise AssertionError(f"server sent an unknown frame {frame!r}")

    def take(self) -> list[bytes]:
        out, self.outbox = self.outbox, []
        return out


def exchange(peer: Peer, session: DocSession, *, writable: bool = True) -> list[Outcome]:
    """Deliver everything the peer has to say, and the replies, until both are quiet."""
    outcomes = []
    while frames := peer.take():
        for frame in frames:
            out = session.receive(frame, writable=writable, now=0.0)
            outcomes.append(out)
            for reply in out.reply:
                peer.feed(reply)
    return outcomes


def connect(peer: Peer, session: DocSession, *, writable: bool = True) -> list[Outcome]:
    """The opening of y-websocket: both sides send sync step 1 and answer the other's.

    Edits made while disconnected are not queued (y-websocket sends updates only while
    connected): the handshake's sync step 2 carries them.
    """
    peer.take()
    peer.hello()
    for frame in session.opening():
        peer.feed(frame)
    return exchange(peer, session, writable=writable)
