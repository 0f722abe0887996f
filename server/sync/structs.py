"""The structs of a Yjs update (format v1), decoded strictly — who wrote which clocks.

pycrdt applies updates but does not show what is inside them; attribution needs exactly
that: which client ids an update carries, which clock ranges hold which characters, which
ranges it deletes. This module reads the bytes itself, pure and sans I/O.

Theory of operation
-------------------
An update v1 (yjs ``writeStructs`` / ``writeDeleteSet``; lib0 encoding) is::

    update      = varUint(#groups) group* deleteSet
    group       = varUint(#structs) varUint(client) varUint(clock) struct*
    struct      = info:uint8 ...
        info 0        GC      varUint(len)
        info 10       Skip    varUint(len)
        otherwise     Item    [origin: client clock  if info & 0x80]
                              [rightOrigin: client clock  if info & 0x40]
                              [parent  if neither origin:
                                 varUint(1) varString(root name) | varUint(0) client clock
                               then varString(parentSub)  if info & 0x20]
                              content, chosen by info & 0x1f (1..9, see ``Kind``)
    deleteSet   = varUint(#clients) (varUint(client) varUint(#ranges) (clock len)*)*

The structs of a group are consecutive: each starts where the previous one ended, so a
struct's clock is the group's clock plus the lengths before it. Lengths are in *clock
units*: one per array element, map value, embed, format marker or nested type, and one
per UTF-16 code unit of a string (``"👋"`` is 2 units: JavaScript strings are UTF-16;
its varString is UTF-8 on the wire, 4 bytes).

Strict and total: :func:`decode_update` returns an :class:`Update` or raises
:class:`~server.sync.messages.ProtocolError`, never anything else. Varints stop after 8
bytes (56 bits, as ``messages._Reader``: pycrdt's ``Decoder`` loops are quadratic on
2 MiB of 0xff); every count is checked against the bytes left before anything loops on
it (each element takes at least one byte), so hostile input fails in time linear in its
size. Refused beyond plain truncation: trailing bytes, info bytes no Yjs writes (content
refs 0 or 10 with flag bits, 11..31), unknown type refs and "any" tags, strings that are
not UTF-8, JSON contents that JavaScript's ``JSON.parse`` would refuse, "any" values
nested deeper than :data:`MAX_ANY_DEPTH`, zero-length structs (a struct occupies at least
one clock) and a client's structs split over two groups (Yjs keeps only the last one).
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass

from server.sync.lib0 import ProtocolError, Reader

#: Nesting of lib0 "any" values (objects and arrays in map values and XML attributes).
#: Editors write two or three levels; 64 is generous and keeps Python's stack safe.


class Kind(enum.IntEnum):
    """What a struct holds. The values are the content refs of the wire format."""

    GC = 0
    DELETED = 1
    JSON = 2
    BINARY = 3
    STRING = 4
    EMBED = 5
    FORMAT = 6
    TYPE = 7
    ANY = 8
    DOC = 9
    SKIP = 10


class TypeRef(enum.IntEnum):
    """The shared type a TYPE struct creates (yjs ``typeRefs``)."""

    ARRAY = 0
    MAP = 1
    TEXT = 2
    XML_ELEMENT = 3
    XML_FRAGMENT = 4
    XML_HOOK = 5
    XML_TEXT = 6


@dataclass(frozen=True, slots=True)
class Struct:
    client: int
    clock: int
    #: In clock units (UTF-16 code units for a STRING).
    length: int
    kind: Kind
    #: STRING only: the characters.
    text: str | None = None
    #: The id (client, clock) of the character this item was typed after / before.
    origin: tuple[int, int] | None = None
    right_origin: tuple[int, int] | None = None
    #: Written only when the item has neither origin: the root type's name …
    parent_root: str | None = None
    #: … or the id of the TYPE struct that is its parent.
    parent_id: tuple[int, int] | None = None
    #: The map key, for a map entry (also XML attributes), when the parent is written.
    parent_sub: str | None = None
    #: TYPE only: which type; and the node name of an XmlElement / key of an XmlHook.
    type_ref: TypeRef | None = None
    name: str | None = None
    #: FORMAT only: the attribute name and its value as JSON text (``"null"`` ends it).
    format_key: str | None = None
    format_value: str | None = None


@dataclass(frozen=True, slots=True)
class Update:
    structs: tuple[Struct, ...]
    #: (client, clock, length) ranges, in wire order.
    deletes: tuple[tuple[int, int, int], ...]


def _not_json(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _check_json(text: str) -> None:
    try:
        # parse_constant: NaN and Infinity are not JSON to JavaScript; yjs would throw.
        json.loads(text, parse_constant=_not_json)
    except (ValueError, RecursionError):
        raise ProtocolError("content is not JSON") from None


def utf16_length(text: str) -> int:
    """The length of ``text`` in UTF-16 code units, as JavaScript's ``.length``."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le")) >> 1


def _item(r: Reader, client: int, clock: int, info: int) -> Struct:
    origin = (r.uint(), r.uint()) if info & 0x80 else None
    right_origin = (r.uint(), r.uint()) if info & 0x40 else None
    parent_root = parent_sub = None
    parent_id = None
    if not info & 0xC0:
        flag = r.uint()
        if flag == 1:
            parent_root = r.string()
        elif flag == 0:
            parent_id = (r.uint(), r.uint())
        else:
            raise ProtocolError(f"bad parent flag {flag}")
        if info & 0x20:
            parent_sub = r.string()
    ref = info & 0x1F
    text = name = key = value = None
    type_ref = None
    if ref == 4:
        text = r.string()
        length = utf16_length(text)
    elif ref == 1:
        length = r.uint()
    elif ref == 8:
        length = r.count()
        for _ in range(length):
            r.skip_any()
    elif ref == 6:
        key = r.string()
        value = r.string()
        _check_json(value)
        length = 1
    elif ref == 7:
        tref = r.uint()
        if tref > 6:
            raise ProtocolError(f"unknown type ref {tref}")
        type_ref = TypeRef(tref)
        if tref == 3 or tref == 5:
            name = r.string()
        length = 1
    elif ref == 2:
        length = r.count()
        for _ in range(length):
            element = r.string()
            if element != "undefined":
                _check_json(element)
    elif ref == 3:
        r.bytes_()
        length = 1
    elif ref == 5:
        _check_json(r.string())
        length = 1
    elif ref == 9:
        r.string()
        r.skip_any()
        length = 1
    else:
        raise ProtocolError(f"unknown content ref {ref}")
    if length == 0:
        raise ProtocolError("struct of length 0")
    return Struct(
        client,
        clock,
        length,
        Kind(ref),
        text,
        origin,
        right_origin,
        parent_root,
        parent_id,
        parent_sub,
        type_ref,
        name,
        key,
        value,
    )


def decode_update(update: bytes) -> Update:
    """Every struct and delete range of an update v1. Raises ProtocolError if malformed."""
    r = Reader(bytes(update))
    structs: list[Struct] = []
    seen: set[int] = set()
    for _ in range(r.count()):
        n = r.count()
        client = r.uint()
        clock = r.uint()
        if client in seen:
            raise ProtocolError(f"client {client} in two groups")
        seen.add(client)
        for _ in range(n):
            info = r.byte()
            if info == 0 or info == 10:
                length = r.uint()
                if length == 0:
                    raise ProtocolError("struct of length 0")
                s = Struct(client, clock, length, Kind.GC if info == 0 else Kind.SKIP)
            elif info & 0x1F in (0, 10):
                raise ProtocolError(f"bad info byte {info:#x}")
            else:
                s = _item(r, client, clock, info)
            structs.append(s)
            clock += s.length
    deletes: list[tuple[int, int, int]] = []
    for _ in range(r.count()):
        client = r.uint()
        for _ in range(r.count()):
            deletes.append((client, r.uint(), r.uint()))
    if r.pos != r.end:
        raise ProtocolError("trailing bytes after update")
    return Update(tuple(structs), tuple(deletes))


def update_clients(update: bytes) -> frozenset[int]:
    """The client ids whose structs ``update`` carries (empty for a delete-only update).

    On the hot path (bound on every update a socket sends): a keystroke's update has one
    group, and its header names the client, so only that header is read — the structs
    are not validated here (pycrdt refuses a malformed update when it applies it). Other
    updates (sync step 2, merged ones) are decoded in full, strictly.
    """
    n = len(update)
    if n >= 4 and update[0] <= 1:
        if update[0] == 0:
            return frozenset()
        # One group: #structs (a keystroke: 1, one byte), then the client id, a varint of
        # at most 8 bytes (as Reader.uint). The clock is not needed.
        if update[1] == 0:
            return frozenset()
        i = 2
        if update[1] >= 0x80:  # 128 structs or more (a merged update): skip the count
            while update[i - 1] >= 0x80:
                if i >= min(n, 9):
                    raise ProtocolError("bad varint in update header")
                i += 1
        value = shift = 0
        stop = min(i + 8, n)
        while i < stop:
            byte = update[i]
            i += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return frozenset((value,))
            shift += 7
        raise ProtocolError("bad varint in update header")
    return frozenset(s.client for s in decode_update(update).structs)
