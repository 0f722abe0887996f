"""The Hocuspocus codec (server/sync/hocuspocus.py): bytes in, bytes out.

Organised like the protocol's message table: the name prefix, each message type a client
sends, what the server sends, the y-websocket frames inside, and garbage. The bytes are
written out by hand from lib0's encoding (varUint, varString = varUint length in UTF-8
bytes + bytes), as @hocuspocus/provider 3 and 4 write them; tests/integration/
test_collab.py runs the stock providers themselves.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Text

from server.sync import hocuspocus as hp
from server.sync.awareness import AwarenessTable
from server.sync.messages import ProtocolError, sync_step1_frame, update_frame
from server.sync.session import DocSession

FUZZ = settings(
    max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

NAME = "2nde-a-g1/rapport"
PREFIX = bytes((len(NAME),)) + NAME.encode()


def frame(*parts: bytes) -> bytes:
    return PREFIX + b"".join(parts)


# --- the name prefix ---


def test_the_prefix_is_the_name_as_a_var_string() -> None:
    assert hp.prefix(NAME) == PREFIX
    accented = "classe/élève"
    assert hp.prefix(accented) == bytes((len(accented.encode()),)) + accented.encode()


def test_a_provider_4_routing_key_is_kept_whole() -> None:
    key = NAME + "\x00k3j4"
    msg = hp.decode(hp.prefix(key) + b"\x03")
    assert msg == hp.YFrame(key, b"\x03")


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "truncated"),
        (b"\x05ab", "truncated document name"),
        (bytes((201,)) + b"\x01" + b"a" * 201 + b"\x03", "document name too long"),
        (b"\x02\xff\xfe\x03", "not UTF-8"),
        (PREFIX, "truncated"),
    ],
)
def test_a_bad_name_is_refused(data: bytes, why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        hp.decode(data)


# --- client → server ---


def test_auth_carries_the_token() -> None:
    assert hp.decode(frame(b"\x02\x00\x03tok")) == hp.Auth(NAME, "tok")


def test_provider_4_auth_adds_its_version() -> None:
    assert hp.decode(frame(b"\x02\x00\x03tok\x054.8.0")) == hp.Auth(NAME, "tok")


@pytest.mark.parametrize(
    ("tail", "why"),
    [
        (b"\x02\x01\x03why", "server → client only"),  # PermissionDenied from a client
        (b"\x02\x02\x0aread-write", "server → client only"),  # Authenticated from a client
        (b"\x02\x00\x03to", "truncated token"),
        (b"\x02\x00\x03tok\x054.8.0\x00", "trailing bytes"),
        (b"\x02\x00\x03tok\x41" + b"v" * 65, "provider version too long"),
    ],
)
def test_a_bad_auth_is_refused(tail: bytes, why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        hp.decode(frame(tail))


def test_a_token_past_its_bound_is_refused() -> None:
    n = hp.MAX_TOKEN_BYTES + 1
    length = bytes(((n & 0x7F) | 0x80, n >> 7))
    with pytest.raises(ProtocolError, match="token too long"):
        hp.decode(frame(b"\x02\x00" + length + b"t" * n))


def test_sync_awareness_and_query_awareness_carry_the_y_websocket_frame_as_is() -> None:
    step1 = sync_step1_frame(Doc().get_state())
    update = b"\x00\x02\x02\x00\x00"
    awareness = b"\x01\x03\x01\x00\x00"  # one entry whose bytes sync/messages.py checks
    for inner in (step1, update, awareness, b"\x03"):
        assert hp.decode(PREFIX + inner) == hp.YFrame(NAME, inner)


def test_sync_reply_is_sync() -> None:
    assert hp.decode(frame(b"\x04\x01\x02\x00\x00")) == hp.YFrame(NAME, b"\x00\x01\x02\x00\x00")


def test_stateless_close_and_pong() -> None:
    assert hp.decode(frame(b"\x05\x02{}")) == hp.Stateless(NAME, "{}")
    assert hp.decode(frame(b"\x07")) == hp.CloseDoc(NAME)
    assert hp.decode(frame(b"\x07\x03bye")) == hp.CloseDoc(NAME)
    assert hp.decode(b"\x0a") == hp.Pong()


@pytest.mark.parametrize("kind", [6, 8, 9, 11, 127])
def test_types_a_client_does_not_send_are_refused(kind: int) -> None:
    with pytest.raises(ProtocolError, match=f"unknown message type {kind}"):
        hp.decode(frame(bytes((kind,))))


def test_a_stateless_payload_past_its_bound_is_refused() -> None:
    n = hp.MAX_STATELESS_BYTES + 1
    with pytest.raises(ProtocolError, match="stateless payload too long"):
        hp.decode(frame(b"\x05" + bytes(((n & 0x7F) | 0x80, n >> 7)) + b"x" * n))


# --- server → client ---


def test_auth_answers() -> None:
    assert hp.authenticated(PREFIX, "read-write") == frame(b"\x02\x02\x0aread-write")
    assert hp.authenticated(PREFIX, "readonly") == frame(b"\x02\x02\x08readonly")
    reason = "accès refusé"  # 12 characters, 14 bytes
    assert hp.permission_denied(PREFIX, reason) == frame(b"\x02\x01\x0e" + reason.encode())
    assert hp.token_request(PREFIX) == frame(b"\x02\x00")


def test_sync_status_and_stateless() -> None:
    assert hp.sync_status(PREFIX, True) == frame(b"\x08\x01")
    assert hp.sync_status(PREFIX, False) == frame(b"\x08\x00")
    assert hp.stateless(PREFIX, '{"event":"saved"}') == frame(b"\x05\x11" + b'{"event":"saved"}')


def test_from_y_prefixes_and_turns_a_refused_write_into_sync_status_0() -> None:
    step1 = sync_step1_frame(Doc().get_state())
    assert hp.from_y(PREFIX, step1) == PREFIX + step1
    assert hp.from_y(PREFIX, b"\x01\x01\x00") == PREFIX + b"\x01\x01\x00"
    assert hp.from_y(PREFIX, b"\x02\x00\x04read") == hp.sync_status(PREFIX, False)


def test_acknowledge_answers_each_step_2_and_update_once() -> None:
    assert hp.acknowledge(PREFIX, b"\x00\x01\x02\x00\x00", False) == hp.sync_status(PREFIX, True)
    assert hp.acknowledge(PREFIX, b"\x00\x02\x02\x00\x00", False) == hp.sync_status(PREFIX, True)
    assert hp.acknowledge(PREFIX, b"\x00\x02\x02\x00\x00", True) is None  # refused: told already
    assert (
        hp.acknowledge(PREFIX, b"\x00\x00\x01\x00", False) is None
    )  # step 1 is answered by step 2
    assert hp.acknowledge(PREFIX, b"\x01\x01\x00", False) is None
    assert hp.acknowledge(PREFIX, b"\x03", False) is None


# --- the doc behind: one DocSession for both protocols ---


def test_a_hocuspocus_update_is_applied_and_broadcast_as_the_inner_bytes() -> None:
    source = Doc()
    text = source.get("content", type=Text)
    with source.transaction():
        text += "bonjour"
    inner = update_frame(source.get_update())
    msg = hp.decode(PREFIX + inner)
    assert isinstance(msg, hp.YFrame)
    target = Doc()
    out = DocSession(target, AwarenessTable()).receive(msg.frame, writable=True, now=0.0)
    assert out.broadcast == inner  # the same bytes go to /yjs sockets; /collab ones prefix them
    assert str(target.get("content", type=Text)) == "bonjour"


def test_a_read_only_write_becomes_sync_status_0_and_no_ack() -> None:
    source = Doc()
    with source.transaction():
        source.get("content", type=Text).insert(0, "non")
    inner = update_frame(source.get_update())
    out = DocSession(Doc(), AwarenessTable()).receive(inner, writable=False, now=0.0)
    assert out.denied is not None
    assert [hp.from_y(PREFIX, r) for r in out.reply] == [hp.sync_status(PREFIX, False)]
    assert hp.acknowledge(PREFIX, inner, out.denied is not None) is None


# --- garbage ---

PREFIXES = [b"", PREFIX, PREFIX + b"\x00", PREFIX + b"\x02", PREFIX + b"\x02\x00", PREFIX + b"\x05"]
garbage = st.one_of(
    st.binary(max_size=64),
    st.builds(lambda p, b: p + b, st.sampled_from(PREFIXES), st.binary(max_size=64)),
)


@FUZZ
@given(garbage)
def test_decode_is_total(data: bytes) -> None:
    try:
        msg = hp.decode(data)
    except ProtocolError:
        return
    assert isinstance(msg, hp.Auth | hp.YFrame | hp.Stateless | hp.CloseDoc | hp.Pong)


@FUZZ
@given(garbage)
def test_garbage_through_the_session_is_a_protocol_error_or_an_outcome(data: bytes) -> None:
    doc = Doc()
    session = DocSession(doc, AwarenessTable())
    try:
        msg = hp.decode(data)
        if isinstance(msg, hp.YFrame):
            session.receive(msg.frame, writable=True, now=0.0)
    except ProtocolError:
        pass
    # The doc still takes a real edit afterwards.
    source = Doc()
    with source.transaction():
        source.get("content", type=Text).insert(0, "ok")
    session.receive(update_frame(source.get_update()), writable=True, now=0.0)
    assert str(doc.get("content", type=Text)).endswith("ok")


@FUZZ
@given(st.text(min_size=1, max_size=60), st.binary(max_size=40))
def test_any_name_and_inner_frame_round_trip(name: str, inner: bytes) -> None:
    data = hp.prefix(name) + b"\x00" + inner
    msg = hp.decode(data) if len(name.encode()) <= hp.MAX_NAME_BYTES else None
    if msg is not None:
        assert msg == hp.YFrame(name, b"\x00" + inner)


def test_split_finds_the_doc_of_a_keystroke_by_its_prefix_bytes() -> None:
    update = b"\x00\x02\x02\x00\x00"
    assert hp.split(PREFIX + update) == (PREFIX, update)
    assert hp.split(PREFIX + b"\x01\x01\x00") == (PREFIX, b"\x01\x01\x00")
    assert hp.split(PREFIX + b"\x03") == (PREFIX, b"\x03")
    for other in (b"", PREFIX, PREFIX + b"\x02\x00\x01t", PREFIX + b"\x05\x00", b"\x0a"):
        assert hp.split(other) is None  # decoded in full instead
    long_name = hp.prefix("g/" + "d" * 200)
    assert hp.split(long_name + update) is None


@FUZZ
@given(garbage)
def test_split_agrees_with_decode(data: bytes) -> None:
    parts = hp.split(data)
    if parts is None:
        return
    prefix, inner = parts
    try:
        msg = hp.decode(data)
    except ProtocolError:
        return  # a malformed name: the caller finds no doc by these bytes
    assert msg == hp.YFrame(msg.doc, inner) and hp.prefix(msg.doc) == prefix  # type: ignore[union-attr]
