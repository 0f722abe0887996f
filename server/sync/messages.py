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
can no longer fail. Encoding is pycrdt's; decoding has its own bounded reader (see
:class:`~server.sync.lib0.Reader` for why).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pycrdt import (
    YMessageType,
    YSyncMessageType,
    create_awareness_message,
    create_update_message,
    write_var_uint,
)
from pycrdt._sync import create_sync_step1_message, create_sync_step2_message

from server.sync.lib0 import ProtocolError, Reader

MSG_AUTH = 2
MSG_QUERY_AWARENESS = 3
AUTH_PERMISSION_DENIED = 0
#: An update that carries nothing (no structs, empty delete set), as clients send in
#: sync step 2 when they have nothing the server lacks.
EMPTY_UPDATE = b"\x00\x00"
#: Awareness states are JSON objects of a few hundred bytes (a name, a colour, a cursor).
MAX_AWARENESS_CLIENTS = 64


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
    r = Reader(frame)
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
    r.done()
    return msg


def _not_json(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def decode_awareness(payload: bytes) -> tuple[AwarenessEntry, ...]:
    """The entries of an awareness update (the payload of an awareness message)."""
    r = Reader(payload)
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
    r.done()
    return tuple(entries)


def decode_state_vector(sv: bytes) -> dict[int, int]:
    """client id → clock, from an encoded state vector."""
    r = Reader(sv)
    out = {}
    for _ in range(r.uint()):
        client = r.uint()
        out[client] = r.uint()
    r.done()
    return out


# --- encoding (server → client) ---


# pycrdt's own encoders, under the names our callers use: the bytes are pycrdt's, so the
# two can never drift apart. Step 1 and step 2 come from ``pycrdt._sync`` because pycrdt
# 0.14 does not re-export them at top level (``create_sync_message`` takes a Doc, not a
# state vector); pyproject pins pycrdt to 0.14.x and tests/sync checks the bytes.
sync_step1_frame = create_sync_step1_message
sync_step2_frame = create_sync_step2_message
update_frame = create_update_message
awareness_frame = create_awareness_message


def permission_denied_frame(reason: str) -> bytes:
    """y-protocols auth message: permission denied, with a reason the client logs."""
    # Not Encoder.write_var_string: it prefixes the length in characters, not bytes,
    # which breaks on the French reasons we send.
    raw = reason.encode("utf-8")
    return bytes((MSG_AUTH, AUTH_PERMISSION_DENIED)) + write_var_uint(len(raw)) + raw
