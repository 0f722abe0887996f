"""Room-channel frames: msgpack maps with a type ``t``. Pure: no I/O.

Client frames are untrusted: ``decode`` unpacks with tight msgpack limits, inside a
guard, and checks the type and the fields every handler relies on, so a handler never
sees a frame of the wrong shape. See docs/protocol.md for every frame.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import msgpack

PROTOCOL_VERSION = 1
MESSAGE_CHARS = 2000
HISTORY = 50
PRESENCE_PER_SECOND = 10.0

_DOC_NAME = re.compile(r"[a-z0-9_-]{1,64}")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


class LiveProtocolError(ValueError):
    """A frame that is not a well-formed room-channel frame (close 4400)."""


# type → {field: (types, required)}
_SCHEMAS: dict[str, dict[str, tuple[tuple[type, ...], bool]]] = {
    "post": {"text": ((str,), True)},
    "edit": {"id": ((int,), True), "text": ((str,), True)},
    "delete": {"id": ((int,), True)},
    "mute": {"user": ((str,), True)},
    "unmute": {"user": ((str,), True)},
    "presence": {"doc": ((str, type(None)), False), "typing": ((bool,), False)},
    "ping": {},
}


def decode(data: bytes) -> dict[str, Any]:
    """Unpack and validate one client frame."""
    try:
        frame = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            max_str_len=64 * 1024,
            max_bin_len=0,
            max_array_len=64,
            max_map_len=32,
            max_ext_len=0,
        )
    except Exception as exc:
        raise LiveProtocolError(f"not a msgpack frame ({type(exc).__name__})") from None
    if not isinstance(frame, dict):
        raise LiveProtocolError("a frame is a map")
    kind = frame.get("t")
    schema = _SCHEMAS.get(kind) if isinstance(kind, str) else None
    if schema is None:
        raise LiveProtocolError(f"unknown frame type {str(kind)[:32]!r}")
    ref = frame.get("ref")
    if ref is not None and not (isinstance(ref, str) and len(ref) <= 64):
        raise LiveProtocolError("ref is a string of at most 64 characters")
    for name, (types, required) in schema.items():
        if name not in frame:
            if required:
                raise LiveProtocolError(f"{kind}: missing {name}")
            continue
        value = frame[name]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise LiveProtocolError(f"{kind}: {name} has the wrong type")
    if kind == "presence" and isinstance(frame.get("doc"), str):
        if not _DOC_NAME.fullmatch(frame["doc"]):
            raise LiveProtocolError("presence: doc is not a document name")
    return frame


def encode(frame: dict[str, Any]) -> bytes:
    return msgpack.packb(frame, use_bin_type=True)


def clean_text(text: str) -> str:
    """NFC, no control or bidi-override characters (newlines and tabs kept), trimmed."""
    return _CONTROL.sub("", unicodedata.normalize("NFC", text)).strip()


_ERRORS: dict[str, tuple[str, str]] = {
    "forbidden": (
        "Vous n'avez pas le droit de faire cela dans cet espace.",
        "You are not allowed to do that in this room.",
    ),
    "muted": (
        "Un enseignant a suspendu vos messages dans cet espace.",
        "A teacher has muted you in this room.",
    ),
    "too_long": (
        f"Message trop long (au plus {MESSAGE_CHARS} caractères).",
        f"Message too long (at most {MESSAGE_CHARS} characters).",
    ),
    "empty": ("Message vide.", "Empty message."),
    "rate_limited": (
        "Trop de messages : patientez un instant.",
        "Too many messages: please wait a moment.",
    ),
    "not_found": ("Ce message n'existe pas ici.", "No such message in this room."),
    "bad_request": ("Requête invalide.", "Invalid request."),
    "unavailable": (
        "Service momentanément indisponible, réessayez.",
        "Temporarily unavailable, please retry.",
    ),
}


def error(code: str, ref: str | None = None, retry_after: float | None = None) -> bytes:
    fr, en = _ERRORS[code]
    return encode(
        {
            "t": "error",
            "ref": ref,
            "code": code,
            "key": f"error.{code}",
            "message": {"fr": fr, "en": en},
            "retry_after": retry_after,
        }
    )
