"""Decoding and encoding of y-websocket frames.

One WebSocket message carries one y-protocols message::

    frame       = varUint(messageType) payload
    sync        = 0  varUint(0 | 1 | 2) varUint8Array(stateVector | update)
    awareness   = 1  varUint8Array(awarenessUpdate)
    auth        = 2  varUint(0 = permission denied) varString(reason)   (server → client)
    query-aw.   = 3  (no payload)

Decoding is strict and total: any frame that is not exactly one well-formed message
raises :class:`ProtocolError` (the socket is closed with 4400). The awareness payload is
decoded here too, down to its JSON states, so that what reaches pycrdt's ``Awareness``
can no longer fail. Varints and length-prefixed strings reuse pycrdt's codec.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pycrdt import Decoder, YMessageType, YSyncMessageType, write_var_uint

MSG_AUTH = 2
MSG_QUERY_AWARENESS = 3
AUTH_PERMISSION_DENIED = 0
#: An update that carries nothing (no structs, empty delete set), as clients send in
#: sync step 2 when they have nothing the server lacks.
EMPTY_UPDATE = b"\x00\x00"
#: Awareness states are JSON objects of a few hundred bytes (a name, a colour, a cursor).
MAX_AWARENESS_CLIENTS = 64


class ProtocolError(ValueError):
    """A frame that is not a well-formed y-websocket message."""


@dataclass(frozen=True, slots=True)
class SyncStep1:
    state_vector: bytes


@dataclass(frozen=True, slots=True)
class SyncStep2:
    update: bytes


@dataclass(frozen=True, slots=True)
class SyncUpdate:
    update: bytes


@dataclass(frozen=True, slots=True)
class AwarenessEntry:
    client_id: int
    clock: int
    #: ``None`` means the client went away.
    state: dict[str, object] | None
    #: The JSON text as received, forwarded as is (never re-serialised).
    raw: str


@dataclass(frozen=True, slots=True)
class AwarenessMessage:
    payload: bytes
    entries: tuple[AwarenessEntry, ...]


@dataclass(frozen=True, slots=True)
class QueryAwareness:
    pass


Message = SyncStep1 | SyncStep2 | SyncUpdate | AwarenessMessage | QueryAwareness


class _Reader:
    """A bounded reader over one frame, positioned like pycrdt's ``Decoder``.

    Varints are read here rather than with ``Decoder.read_var_uint`` because a hostile
    frame of 2 MiB of 0xff bytes makes that loop quadratic (seconds to minutes of a
    blocked event loop); this one stops after 8 bytes (56 bits, far above any Yjs
    client id, clock or length).
    """

    __slots__ = ("_d",)

    def __init__(self, data: bytes) -> None:
        self._d = Decoder(data)

    def uint(self) -> int:
        d = self._d
        stream = d.stream
        i = d.i0
        end = min(i + 8, i + d.length)
        value = 0
        shift = 0
        while i < end:
            byte = stream[i]
            i += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                d.length -= i - d.i0
                d.i0 = i
                return value
            shift += 7
        if i - d.i0 >= 8:
            raise ProtocolError("varint too long")
        raise ProtocolError("truncated varint")

    def bytes_(self) -> bytes:
        d = self._d
        length = self.uint()
        if length > d.length:
            raise ProtocolError("length prefix past end of frame")
        start = d.i0
        d.i0 += length
        d.length -= length
        return d.stream[start : d.i0]

    def string(self) -> str:
        try:
            return self.bytes_().decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("string is not UTF-8") from None

    def end(self) -> None:
        if self._d.length != 0:
            raise ProtocolError("trailing bytes after message")


_SYNC_TYPES: tuple[type[SyncStep1] | type[SyncStep2] | type[SyncUpdate], ...] = (
    SyncStep1,
    SyncStep2,
    SyncUpdate,
)


def decode(frame: bytes) -> Message:
    """Decode one frame. Raises :class:`ProtocolError` on anything malformed."""
    # Fast path for the frame of every keystroke: sync, one-byte sub-type, a length of
    # one or two bytes that ends exactly at the end of the frame. Everything else, and
    # every malformed frame, goes through the general reader below.
    n = len(frame)
    if n >= 3 and frame[0] == 0 and frame[1] <= 2:
        b = frame[2]
        if b < 0x80:
            if 3 + b == n:
                return _SYNC_TYPES[frame[1]](frame[3:])
        elif n >= 4 and frame[3] < 0x80 and 4 + ((b & 0x7F) | (frame[3] << 7)) == n:
            return _SYNC_TYPES[frame[1]](frame[4:])
    return _decode_slow(frame)


def _decode_slow(frame: bytes) -> Message:
    r = _Reader(frame)
    kind = r.uint()
    msg: Message
    if kind == YMessageType.SYNC:
        sub = r.uint()
        body = r.bytes_()
        if sub == YSyncMessageType.SYNC_STEP1:
            msg = SyncStep1(body)
        elif sub == YSyncMessageType.SYNC_STEP2:
            msg = SyncStep2(body)
        elif sub == YSyncMessageType.SYNC_UPDATE:
            msg = SyncUpdate(body)
        else:
            raise ProtocolError(f"unknown sync message type {sub}")
    elif kind == YMessageType.AWARENESS:
        payload = r.bytes_()
        msg = AwarenessMessage(payload, decode_awareness(payload))
    elif kind == MSG_QUERY_AWARENESS:
        msg = QueryAwareness()
    else:
        # MSG_AUTH is server → client only; anything else is unknown.
        raise ProtocolError(f"unknown message type {kind}")
    r.end()
    return msg


def _not_json(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def decode_awareness(payload: bytes) -> tuple[AwarenessEntry, ...]:
    """The entries of an awareness update (the payload of an awareness message)."""
    r = _Reader(payload)
    count = r.uint()
    if count > MAX_AWARENESS_CLIENTS:
        raise ProtocolError("too many awareness entries")
    entries = []
    for _ in range(count):
        client_id = r.uint()
        clock = r.uint()
        raw = r.string()
        try:
            # parse_constant: NaN and Infinity are not JSON; browsers' JSON.parse would
            # throw on them and one peer would break awareness for the whole doc.
            state = json.loads(raw, parse_constant=_not_json) if raw else None
        except (ValueError, RecursionError):
            raise ProtocolError("awareness state is not JSON") from None
        if state is not None and not isinstance(state, dict):
            raise ProtocolError("awareness state is not an object")
        entries.append(
            AwarenessEntry(client_id, clock, state, raw if state is not None else "null")
        )
    r.end()
    return tuple(entries)


def decode_state_vector(sv: bytes) -> dict[int, int]:
    """client id → clock, from an encoded state vector."""
    r = _Reader(sv)
    out = {}
    for _ in range(r.uint()):
        client = r.uint()
        out[client] = r.uint()
    r.end()
    return out


# --- encoding (server → client) ---


def _sync_frame(sub: int, body: bytes) -> bytes:
    return bytes((YMessageType.SYNC, sub)) + write_var_uint(len(body)) + body


def sync_step1_frame(state_vector: bytes) -> bytes:
    return _sync_frame(YSyncMessageType.SYNC_STEP1, state_vector)


def sync_step2_frame(update: bytes) -> bytes:
    return _sync_frame(YSyncMessageType.SYNC_STEP2, update)


def update_frame(update: bytes) -> bytes:
    return _sync_frame(YSyncMessageType.SYNC_UPDATE, update)


def awareness_frame(payload: bytes) -> bytes:
    return bytes((YMessageType.AWARENESS,)) + write_var_uint(len(payload)) + payload


def permission_denied_frame(reason: str) -> bytes:
    """y-protocols auth message: permission denied, with a reason the client logs."""
    # Not Encoder.write_var_string: it prefixes the length in characters, not bytes,
    # which breaks on the French reasons we send.
    raw = reason.encode("utf-8")
    return bytes((MSG_AUTH, AUTH_PERMISSION_DENIED)) + write_var_uint(len(raw)) + raw
