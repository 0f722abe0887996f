"""Frames, as y-protocols' PROTOCOL.md lays them out: decode, encode, and nothing else.

    sync       0 · varUint(0 step1 | 1 step2 | 2 update) · varUint8Array
    awareness  1 · varUint8Array(awareness update)
    auth       2 · varUint(0 permission denied) · varString(reason)   server → client
    query      3

Our encoders are checked byte for byte against pycrdt's, our decoder against frames
pycrdt built; strictness against frames that are one byte wrong.
"""

from __future__ import annotations

import time

import pytest
from pycrdt import (
    Awareness,
    Doc,
    Text,
    YMessageType,
    YSyncMessageType,
    create_awareness_message,
    create_sync_message,
    create_update_message,
    handle_sync_message,
    write_message,
    write_var_uint,
)

from server.sync.messages import (
    MAX_AWARENESS_CLIENTS,
    AwarenessMessage,
    ProtocolError,
    QueryAwareness,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    awareness_frame,
    decode,
    decode_state_vector,
    permission_denied_frame,
    sync_step1_frame,
    sync_step2_frame,
    update_frame,
)
from tests.sync.peers import awareness_update, seeded_doc

# Payload sizes on each side of the one-byte varint length (127/128) and well past it.
SIZES = [0, 1, 127, 128, 300, 20_000]


def _pycrdt_sync(sub: YSyncMessageType, body: bytes) -> bytes:
    # pycrdt's create_sync_step1/2_message are not exported; the same, from public parts.
    return bytes([YMessageType.SYNC, sub]) + write_message(body)


def _edited_doc(text: str = "bonjour") -> Doc:
    doc = Doc(client_id=7)
    doc["t"] = Text(text)
    return doc


# --- Sync step 1: the state vector -------------------------------------------------------


def test_step1_from_pycrdt_decodes_to_the_doc_state_vector() -> None:
    doc = _edited_doc()
    frame = create_sync_message(doc)
    assert sync_step1_frame(doc.get_state()) == frame
    msg = decode(frame)
    assert msg == SyncStep1(doc.get_state())
    assert decode_state_vector(msg.state_vector) == {7: len("bonjour")}


def test_step1_of_an_empty_doc() -> None:
    assert create_sync_message(Doc()) == b"\x00\x00\x01\x00"
    assert decode(b"\x00\x00\x01\x00") == SyncStep1(b"\x00")
    assert decode_state_vector(b"\x00") == {}


def test_state_vector_of_several_clients() -> None:
    a, b = Doc(client_id=1), Doc(client_id=300_000)
    a["t"] = ta = Text("abc")
    b.apply_update(a.get_update())
    tb = b.get("t", type=Text)
    tb += "de"
    del ta[0:1]  # a deletion does not move the state vector
    a.apply_update(b.get_update())
    assert decode_state_vector(a.get_state()) == {1: 3, 300_000: 2}


@pytest.mark.parametrize("size", SIZES)
def test_step1_frame_is_pycrdts(size: int) -> None:
    body = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    assert sync_step1_frame(body) == _pycrdt_sync(YSyncMessageType.SYNC_STEP1, body)
    assert decode(sync_step1_frame(body)) == SyncStep1(body)


# --- Sync step 2 and update: the document update -----------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_step2_and_update_frames_are_pycrdts(size: int) -> None:
    body = b"\x5a" * size
    assert sync_step2_frame(body) == _pycrdt_sync(YSyncMessageType.SYNC_STEP2, body)
    assert update_frame(body) == create_update_message(body)
    assert decode(sync_step2_frame(body)) == SyncStep2(body)
    assert decode(update_frame(body)) == SyncUpdate(body)


def test_step2_built_by_pycrdt_decodes_to_the_missing_diff() -> None:
    server = _edited_doc("abc")
    reply = handle_sync_message(create_sync_message(Doc())[1:], server)
    assert reply is not None
    msg = decode(reply)
    assert isinstance(msg, SyncStep2)
    assert sync_step2_frame(msg.update) == reply
    fresh = Doc()
    fresh.apply_update(msg.update)
    assert str(fresh.get("t", type=Text)) == "abc"


def test_update_built_by_pycrdt_decodes_to_the_update() -> None:
    doc = _edited_doc()
    updates: list[bytes] = []
    doc.observe(lambda e: updates.append(e.update))
    doc.get("t", type=Text).insert(0, "« ")
    msg = decode(create_update_message(updates[0]))
    assert msg == SyncUpdate(updates[0])


def test_pycrdt_reads_our_frames() -> None:
    """The other direction: a pycrdt peer handles what we encode."""
    server = seeded_doc("salut")
    client = Doc()
    reply = handle_sync_message(sync_step1_frame(client.get_state())[1:], server)
    assert reply is not None
    handle_sync_message(sync_step2_frame(decode(reply).update)[1:], client)  # type: ignore[union-attr]
    assert str(client.get("t", type=Text)) == "salut"
    other = Doc()
    handle_sync_message(update_frame(server.get_update())[1:], other)
    assert str(other.get("t", type=Text)) == "salut"


def test_empty_update_is_a_well_formed_update() -> None:
    assert decode(b"\x00\x02\x02\x00\x00") == SyncUpdate(b"\x00\x00")
    assert decode(b"\x00\x01\x02\x00\x00") == SyncStep2(b"\x00\x00")


# --- Awareness ---------------------------------------------------------------------------


def test_awareness_from_pycrdt_decodes_to_its_states() -> None:
    aw = Awareness(Doc(client_id=42))
    aw.set_local_state({"user": {"name": "Élodie", "color": "#ff0"}})
    payload = aw.encode_awareness_update([42])
    msg = decode(create_awareness_message(payload))
    assert isinstance(msg, AwarenessMessage)
    assert msg.payload == payload
    [entry] = msg.entries
    assert (entry.client_id, entry.clock) == (42, 1)
    assert entry.state == {"user": {"name": "Élodie", "color": "#ff0"}}
    assert entry.raw == '{"user":{"name":"\\u00c9lodie","color":"#ff0"}}'  # json.dumps


def test_awareness_frame_is_pycrdts() -> None:
    payload = awareness_update((1, 2, '{"a": 1}'))
    assert awareness_frame(payload) == create_awareness_message(payload)


def test_awareness_keeps_the_json_text_as_received() -> None:
    text = '{ "cursor" : {"anchor": 3},  "name":"Zoë" }'
    [entry] = decode(awareness_frame(awareness_update((5, 1, text)))).entries  # type: ignore[union-attr]
    assert entry.raw == text
    assert entry.state == {"cursor": {"anchor": 3}, "name": "Zoë"}


@pytest.mark.parametrize("text", ["null", ""])
def test_awareness_null_state_means_gone(text: str) -> None:
    """PROTOCOL: a null state removes the client; pycrdt reads an empty string the same."""
    [entry] = decode(awareness_frame(awareness_update((5, 3, text)))).entries  # type: ignore[union-attr]
    assert (entry.client_id, entry.clock, entry.state, entry.raw) == (5, 3, None, "null")


def test_awareness_with_no_entries() -> None:
    msg = decode(awareness_frame(b"\x00"))
    assert msg == AwarenessMessage(b"\x00", ())


def test_awareness_with_many_entries_in_order() -> None:
    entries = [(i, i + 1, f'{{"i":{i}}}') for i in range(MAX_AWARENESS_CLIENTS)]
    msg = decode(awareness_frame(awareness_update(*entries)))
    assert isinstance(msg, AwarenessMessage)
    assert [(e.client_id, e.clock, e.state) for e in msg.entries] == [
        (i, i + 1, {"i": i}) for i in range(MAX_AWARENESS_CLIENTS)
    ]


def test_awareness_with_32_bit_client_id() -> None:
    [entry] = decode(awareness_frame(awareness_update((2**32 - 1, 2**31, "{}")))).entries  # type: ignore[union-attr]
    assert (entry.client_id, entry.clock) == (2**32 - 1, 2**31)


# --- Query awareness and auth ------------------------------------------------------------


def test_query_awareness() -> None:
    assert decode(b"\x03") == QueryAwareness()


def test_permission_denied_frame_is_lib0_var_string() -> None:
    """auth = 2 · 0 (permission denied) · varString — lib0 counts the UTF-8 bytes."""
    reason = "lecture seule : vous n'avez pas les droits d'écriture"
    raw = reason.encode()
    assert len(raw) > len(reason)
    assert permission_denied_frame(reason) == b"\x02\x00" + write_var_uint(len(raw)) + raw
    long = "é" * 100  # 200 bytes: a two-byte length
    assert permission_denied_frame(long) == b"\x02\x00\xc8\x01" + long.encode()


def test_auth_frame_from_a_client_is_refused() -> None:
    with pytest.raises(ProtocolError):
        decode(permission_denied_frame("no"))


# --- Strictness: one frame, exactly one well-formed message ------------------------------

_AW = awareness_update((1, 1, "{}"))

MALFORMED = {
    "empty frame": b"",
    "truncated message type": b"\x80",
    "sync without subtype": b"\x00",
    "truncated sync subtype": b"\x00\x81",
    "sync without length": b"\x00\x02",
    "truncated length varint": b"\x00\x02\x80",
    "length past end": b"\x00\x02\x05abcd",
    "length far past end": b"\x00\x01\xff\xff\x03\x00\x00",
    "step1 trailing bytes": b"\x00\x00\x01\x00\x00",
    "update trailing bytes": b"\x00\x02\x02\x00\x00\x00",
    "unknown sync subtype 3": b"\x00\x03\x02\x00\x00",
    "unknown sync subtype 128": b"\x00\x80\x01\x02\x00\x00",
    "auth from client": b"\x02\x00\x00",
    "unknown message type 4": b"\x04",
    "unknown message type 127": b"\x7f\x00",
    "query with trailing bytes": b"\x03\x00",
    "varint of 9 bytes": b"\x00\x02" + b"\x80" * 8 + b"\x00",
    "awareness without payload": b"\x01",
    "awareness length past end": b"\x01\x10" + _AW,
    "awareness frame trailing bytes": awareness_frame(_AW) + b"\x00",
    "awareness payload trailing bytes": awareness_frame(_AW + b"\x00"),
    "awareness count past entries": awareness_frame(b"\x02" + _AW[1:]),
    "awareness truncated entry": awareness_frame(b"\x01\x01"),
    "awareness state length past end": awareness_frame(b"\x01\x01\x01\x09{}"),
    "awareness state not JSON": awareness_frame(awareness_update((1, 1, "{nope"))),
    "awareness state JSON array": awareness_frame(awareness_update((1, 1, "[1]"))),
    "awareness state JSON number": awareness_frame(awareness_update((1, 1, "3"))),
    "awareness state JSON string": awareness_frame(awareness_update((1, 1, '"x"'))),
    "awareness state whitespace": awareness_frame(awareness_update((1, 1, " "))),
    "awareness state not UTF-8": awareness_frame(b"\x01\x01\x01\x03\xff\xfe\xfd"),
    "awareness state deeply nested": awareness_frame(
        awareness_update((1, 1, '{"a":' + "[" * 100_000 + "]" * 100_000 + "}"))
    ),
    "awareness too many entries": awareness_frame(
        awareness_update(*[(i, 1, "{}") for i in range(MAX_AWARENESS_CLIENTS + 1)])
    ),
}


@pytest.mark.parametrize("frame", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_frame_is_a_protocol_error(frame: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode(frame)


@pytest.mark.parametrize("cut", range(1, 14))
def test_every_truncation_of_a_valid_frame_is_refused(cut: int) -> None:
    frame = awareness_frame(awareness_update((300, 2, '{"n":1}')))
    assert len(frame) == 14
    with pytest.raises(ProtocolError):
        decode(frame[:cut])


@pytest.mark.parametrize("sv", [b"", b"\x01", b"\x01\x05", b"\x00\x00", b"\x02\x01\x01"])
def test_malformed_state_vector_is_a_protocol_error(sv: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_state_vector(sv)


def test_protocol_error_is_a_value_error() -> None:
    assert issubclass(ProtocolError, ValueError)


# --- Hostile input: refused, and refused cheaply -----------------------------------------


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_awareness_state_with_non_json_constant_is_refused(constant: str) -> None:
    """An awareness state holding NaN or ±Infinity is a protocol error.

    Python's ``json.loads`` accepts these constants, but they are not JSON. The raw
    text is forwarded verbatim to every client, whose ``JSON.parse`` would throw in
    y-protocols' applyAwarenessUpdate: one peer could break the awareness of everyone
    on the doc. ``_decode_awareness`` refuses them (``parse_constant``)."""
    frame = awareness_frame(awareness_update((9, 1, f'{{"x":{constant}}}')))
    with pytest.raises(ProtocolError):
        decode(frame)


def test_overlong_varint_is_refused_without_reading_it_all() -> None:
    """An overlong varint is refused after its first 8 bytes, in constant time.

    Reading the whole varint before checking its length would be quadratic: pycrdt's
    ``read_var_uint`` grows a Python int 7 bits per byte, so 64 KiB of 0xff would take
    ~0.7 s and a 2 MiB frame (max_frame_bytes) would block the event loop for minutes.
    ``_Reader.uint`` stops at the limit instead."""
    frame = b"\xff" * 65_536 + b"\x01"
    start = time.perf_counter()
    with pytest.raises(ProtocolError):
        decode(frame)
    elapsed = time.perf_counter() - start
    assert elapsed < 0.05, f"decoding a 64 KiB varint took {elapsed:.2f} s"
