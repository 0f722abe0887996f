"""Hocuspocus framing: many docs over one socket — bytes in, decisions out.

The protocol of ``@hocuspocus/provider`` (Tiptap's Collaboration extension and the
editors built on it). Every WebSocket message names its document first::

    frame          = varString(documentName) varUint(type) payload
    Sync        0  the y-protocols sync message (step 1, step 2, update)
    Awareness   1  varUint8Array(awarenessUpdate)
    Auth        2  client → server: varUint(0 = Token) varString(token)
                   [varString(provider version), provider 4]
                   server → client: 0 = Token (no payload: "send your token again"),
                   1 = PermissionDenied varString(reason),
                   2 = Authenticated varString(scope: "read-write" | "readonly")
    QueryAw.    3  no payload
    SyncReply   4  client → server, as Sync (sent by older providers)
    Stateless   5  varString(payload)
    Broadcast-  6  server-to-server in Hocuspocus itself: refused from a client
    Stateless
    Close       7  client → server: "I am done with this doc" (no payload, or a reason)
                   (server → client it would end the provider's connection: Atelier ends
                   a doc with PermissionDenied instead, which names the reason)
    SyncStatus  8  server → client: varInt(1 = applied | 0 = not applied)
    Pong       10  a lone type byte, no document name (provider 4 answers a server Ping)

The name is the document's, or with provider 4's ``sessionAwareness`` a routing key
``{name}\0{session id}`` (two providers of one doc on one socket): replies carry the
key as received, the doc is the part before the NUL.

After the name, a Sync, Awareness or QueryAwareness message is byte for byte the
y-websocket frame (server/sync/messages.py): decoding hands that inner frame on as is, so
one ``DocSession`` serves both protocols, and ``from_y`` turns a y-websocket frame for a
doc into the Hocuspocus frame by prefixing the name. One translation: y-websocket's
"permission denied" auth message, which rooms/ sends when it refuses one write (read-only,
or another user's client id), becomes ``SyncStatus(0)`` — Hocuspocus' PermissionDenied
would unauthenticate the provider for the doc, while the write alone was refused.

Decoding is strict and total: a frame that is not exactly one well-formed message raises
:class:`ProtocolError` (4400). Names, tokens and stateless payloads are bounded here.
"""

from __future__ import annotations

from dataclasses import dataclass

from pycrdt import write_var_uint

from server.sync.lib0 import ProtocolError, Reader

SYNC = 0
AWARENESS = 1
AUTH = 2
QUERY_AWARENESS = 3
SYNC_REPLY = 4
STATELESS = 5
BROADCAST_STATELESS = 6
CLOSE = 7
SYNC_STATUS = 8
PING = 9
PONG = 10

AUTH_TOKEN = 0
AUTH_PERMISSION_DENIED = 1
AUTH_AUTHENTICATED = 2

SCOPE_READ_WRITE = "read-write"
SCOPE_READ_ONLY = "readonly"

#: ``{room_id}/{doc_name}``: a room id and a doc name are short slugs.
MAX_NAME_BYTES = 200
#: A JWT of ours is ~250 bytes, an ENT's a few KiB.
MAX_TOKEN_BYTES = 8192
#: Provider 4 appends its version ("4.8.0") to its Auth message.
MAX_VERSION_BYTES = 64
#: Atelier ignores a client's stateless payloads (docs/protocol.md); bounded all the same.
MAX_STATELESS_BYTES = 4096


@dataclass(frozen=True, slots=True)
class Auth:
    doc: str
    token: str


@dataclass(frozen=True, slots=True)
class YFrame:
    """A Sync, Awareness or QueryAwareness message: ``frame`` is the y-websocket frame."""

    doc: str
    frame: bytes


@dataclass(frozen=True, slots=True)
class Stateless:
    doc: str
    payload: str


@dataclass(frozen=True, slots=True)
class CloseDoc:
    doc: str


@dataclass(frozen=True, slots=True)
class Pong:
    pass


Message = Auth | YFrame | Stateless | CloseDoc | Pong

_PONG = bytes((PONG,))


def _string(r: Reader, limit: int, what: str) -> str:
    n = r.uint()
    if n > limit:
        raise ProtocolError(f"{what} too long")
    if n > r.left():
        raise ProtocolError(f"truncated {what}")
    raw = r.buf[r.pos : r.pos + n]
    r.pos += n
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(f"{what} is not UTF-8") from None


def split(frame: bytes) -> tuple[bytes, bytes] | None:
    """(name prefix, y-websocket frame) of a Sync, Awareness or QueryAwareness frame whose
    name is under 128 bytes — every keystroke's — without decoding the name: the caller
    finds its doc by the prefix bytes. None: anything else (then ``decode``)."""
    if not frame:
        return None
    n = frame[0]
    if n >= 0x80 or len(frame) <= n + 1 or frame[n + 1] not in (SYNC, AWARENESS, QUERY_AWARENESS):
        return None
    return frame[: n + 1], frame[n + 1 :]


def decode(frame: bytes) -> Message:
    """Decode one client frame. Raises :class:`ProtocolError` on anything malformed.

    A YFrame's inner bytes are checked by ``DocSession.receive`` (sync/messages.py), the
    same decoder as the y-websocket endpoint's."""
    if frame == _PONG:
        return Pong()
    r = Reader(frame)
    doc = _string(r, MAX_NAME_BYTES, "document name")
    start = r.pos
    kind = r.uint()
    msg: Message
    if kind in (SYNC, AWARENESS, QUERY_AWARENESS):
        return YFrame(doc, frame[start:])
    if kind == SYNC_REPLY:
        return YFrame(doc, bytes((SYNC,)) + frame[r.pos :])
    if kind == AUTH:
        sub = r.uint()
        if sub != AUTH_TOKEN:
            raise ProtocolError(f"auth message {sub} is server → client only")
        msg = Auth(doc, _string(r, MAX_TOKEN_BYTES, "token"))
        if r.left():  # provider 4 adds its version: read and checked, unused
            _string(r, MAX_VERSION_BYTES, "provider version")
    elif kind == STATELESS:
        msg = Stateless(doc, _string(r, MAX_STATELESS_BYTES, "stateless payload"))
    elif kind == CLOSE:
        if r.left():  # a reason, which some providers add: read and checked, unused
            _string(r, MAX_STATELESS_BYTES, "close reason")
        msg = CloseDoc(doc)
    else:
        # BROADCAST_STATELESS is between Hocuspocus servers; SYNC_STATUS and PING are
        # server → client.
        raise ProtocolError(f"unknown message type {kind}")
    r.done()
    return msg


# --- encoding (server → client) ---


def _var_string(text: str) -> bytes:
    # lib0's varString: the length in UTF-8 bytes (French reasons have accents).
    raw = text.encode("utf-8")
    return write_var_uint(len(raw)) + raw


def prefix(doc: str) -> bytes:
    """The document name as every frame of that doc starts: computed once per doc."""
    return _var_string(doc)


def authenticated(prefix: bytes, scope: str) -> bytes:
    return prefix + bytes((AUTH, AUTH_AUTHENTICATED)) + _var_string(scope)


def permission_denied(prefix: bytes, reason: str) -> bytes:
    return prefix + bytes((AUTH, AUTH_PERMISSION_DENIED)) + _var_string(reason)


def token_request(prefix: bytes) -> bytes:
    """Ask the provider for its token again (it calls its ``token`` function)."""
    return prefix + bytes((AUTH, AUTH_TOKEN))


def sync_status(prefix: bytes, applied: bool) -> bytes:
    # lib0 varInt of 1 or 0: one byte, the sign bit clear.
    return prefix + bytes((SYNC_STATUS, 1 if applied else 0))


def stateless(prefix: bytes, payload: str) -> bytes:
    return prefix + bytes((STATELESS,)) + _var_string(payload)


#: y-websocket's auth message type: from rooms/, always a refused write.
_Y_AUTH = 2


def from_y(prefix: bytes, frame: bytes) -> bytes:
    """The Hocuspocus frame for a y-websocket frame about the doc of ``prefix``."""
    if frame and frame[0] == _Y_AUTH:
        return sync_status(prefix, False)
    return prefix + frame


def acknowledge(prefix: bytes, frame: bytes, denied: bool) -> bytes | None:
    """The SyncStatus owed for a y-websocket frame the doc's session has handled.

    The provider counts its unacknowledged writes (``unsyncedChanges``: one for the step 2
    it answers the server's step 1 with, one per update) and is "synced" at zero. Every
    step 2 and update is answered: applied (even when empty: nothing was lost), or — when
    refused — the ``SyncStatus(0)`` that ``from_y`` made of the refusal, sent already."""
    if denied or len(frame) < 2 or frame[0] != SYNC or frame[1] not in (1, 2):
        return None
    return sync_status(prefix, True)
