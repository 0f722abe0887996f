"""Property tests: garbage in, ProtocolError out — and a doc that keeps working.

1. ``decode`` is total: a Message or a ProtocolError, never any other exception.
2. ``DocSession.receive`` on garbage and on real frames with bytes flipped, inserted or
   deleted: an Outcome or a ProtocolError; a refused frame leaves the doc as it was, and
   a valid update applies afterwards.
3. Two pycrdt docs editing at random, talking only through DocSession outcomes (frames
   delivered in order per socket, interleaved at random), converge.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pycrdt import Awareness, Doc, Text, create_awareness_message, write_var_uint

from server.sync.awareness import AwarenessTable
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
    sync_step1_frame,
    sync_step2_frame,
    update_frame,
)
from server.sync.session import DocSession, Outcome
from tests.sync.peers import Peer, awareness_update, connect, seeded_doc

# Bounded, and no example database written into the work tree.
FUZZ = settings(
    max_examples=400,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# Well-formed prefixes so that garbage reaches past the message type.
PREFIXES = [b"", b"\x00\x00", b"\x00\x01", b"\x00\x02", b"\x01", b"\x03", b"\x02\x00"]

garbage = st.one_of(
    st.binary(max_size=64),
    st.builds(lambda p, b: p + b, st.sampled_from(PREFIXES), st.binary(max_size=64)),
)


def _json_ish() -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=20),
        st.sampled_from(["null", "{}", "[]", '{"a":NaN}', '{"a":1', "1e999", '"x"', ""]),
        st.dictionaries(st.text(max_size=5), st.integers(), max_size=3).map(json.dumps),
    )


awareness_garbage = st.lists(
    st.tuples(st.integers(0, 2**40), st.integers(0, 2**40), _json_ish()), max_size=4
).map(lambda items: awareness_frame(awareness_update(*items)))


# --- 1. decode is total ------------------------------------------------------------------


@FUZZ
@given(frame=st.one_of(garbage, awareness_garbage))
def test_decode_is_total(frame: bytes) -> None:
    try:
        msg = decode(frame)
    except ProtocolError:
        return
    assert isinstance(msg, SyncStep1 | SyncStep2 | SyncUpdate | AwarenessMessage | QueryAwareness)
    if isinstance(msg, AwarenessMessage):
        assert len(msg.entries) <= MAX_AWARENESS_CLIENTS
        assert all(e.state is None or isinstance(e.state, dict) for e in msg.entries)


@FUZZ
@given(body=st.binary(max_size=300), sub=st.integers(0, 2))
def test_any_sync_body_round_trips(body: bytes, sub: int) -> None:
    frame = (sync_step1_frame, sync_step2_frame, update_frame)[sub](body)
    msg = decode(frame)
    assert msg == (SyncStep1, SyncStep2, SyncUpdate)[sub](body)


@FUZZ
@given(
    size=st.one_of(st.integers(0, 300), st.sampled_from([127, 128, 16_383, 16_384])),
    declared_delta=st.sampled_from([-3, -2, -1, 1, 2, 3]),
    sub=st.integers(0, 2),
)
def test_sync_length_that_disagrees_with_the_frame_is_refused(
    size: int, declared_delta: int, sub: int
) -> None:
    """Short and long length prefixes alike: a body one byte off is never taken."""
    declared = size + declared_delta
    if declared < 0:
        return
    frame = bytes([0, sub]) + write_var_uint(declared) + b"\x07" * size
    try:
        decode(frame)
    except ProtocolError:
        return
    raise AssertionError(f"declared {declared}, carried {size}: decoded anyway")


# --- 2. The session survives garbage -----------------------------------------------------

CHECK_CLIENT = 2_000_000_007  # a replica id no mutation is likely to produce


@dataclass
class Scene:
    """A server doc with some history, and real frames a peer would send to it."""

    server: Doc
    session: DocSession
    frames: list[bytes] = field(default_factory=list)


def scene() -> Scene:
    server = seeded_doc("hello world", client_id=1)
    session = DocSession(server, AwarenessTable())
    peer = Peer(2)
    peer.doc.apply_update(server.get_update())
    peer.take()
    peer.text.insert(5, ", dear")
    peer.text.insert(0, "« ")
    del peer.text[3:5]
    frames = peer.take()
    session.receive(frames[0], writable=True, now=0)  # the server knows the first edit
    aw = Awareness(Doc(client_id=3))
    aw.set_local_state({"user": {"name": "Zoé", "color": "#0af"}, "cursor": [1, 2]})
    frames += [
        create_awareness_message(aw.encode_awareness_update([3])),
        sync_step2_frame(peer.doc.get_update(server.get_state())),
        sync_step1_frame(peer.doc.get_state()),
        b"\x03",
    ]
    return Scene(server, session, frames)


mutation = st.tuples(
    st.sampled_from(["flip", "set", "insert", "delete"]),
    st.integers(0, 10_000),
    st.integers(0, 255),
)


def mutate(frame: bytes, edits: list[tuple[str, int, int]]) -> bytes:
    data = bytearray(frame)
    for op, pos, byte in edits:
        if op == "insert":
            data.insert(pos % (len(data) + 1), byte)
            continue
        if not data:
            continue
        i = pos % len(data)
        if op == "flip":
            data[i] ^= 1 << (byte % 8)
        elif op == "set":
            data[i] = byte
        else:
            del data[i]
    return bytes(data)


def assert_still_usable(s: Scene, text_before: str, state_before: bytes, changed: bool) -> None:
    """A replica of the doc as it was before the garbage writes; the server takes it."""
    replica = Doc(client_id=CHECK_CLIENT)
    replica.apply_update(s.server.get_update())
    updates: list[bytes] = []
    replica.observe(lambda e: updates.append(e.update))
    replica.get("t", type=Text).insert(0, "XYZ")
    out = s.session.receive(update_frame(updates[-1]), writable=True, now=1)
    assert out.update == updates[-1]
    text = str(s.server.get("t", type=Text))
    if changed:
        assert "XYZ" in text
    else:
        assert s.server.get_state() != state_before
        assert text == "XYZ" + text_before


def feed_garbage(s: Scene, frame: bytes, writable: bool) -> None:
    text_before = str(s.server.get("t", type=Text))
    state_before = s.server.get_state()
    full_before = s.server.get_update()
    try:
        out = s.session.receive(frame, writable=writable, now=0)
    except ProtocolError:
        event("refused")
        # Refused: no partial effect on the doc.
        assert s.server.get_update() == full_before
        changed = False
    else:
        assert isinstance(out, Outcome)
        if not writable:
            assert out.update is None and out.broadcast is None
            assert s.server.get_update() == full_before
        changed = s.server.get_update() != full_before
        event("denied" if out.denied else "changed the doc" if changed else "accepted, no change")
        if out.update is not None:
            assert out.broadcast is not None and decode(out.broadcast) == SyncUpdate(out.update)
    assert_still_usable(s, text_before, state_before, changed)
    # The awareness table still works too.
    late = awareness_frame(awareness_update((CHECK_CLIENT, 2**30, '{"ok":true}')))
    assert s.session.receive(late, writable=True, now=2).awareness == late


@FUZZ
@given(frame=st.one_of(garbage, awareness_garbage), writable=st.booleans())
def test_session_survives_arbitrary_bytes(frame: bytes, writable: bool) -> None:
    feed_garbage(scene(), frame, writable)


@FUZZ
@given(
    which=st.integers(0, 100),
    edits=st.lists(mutation, min_size=1, max_size=4),
    writable=st.booleans(),
)
def test_session_survives_mutated_real_frames(
    which: int, edits: list[tuple[str, int, int]], writable: bool
) -> None:
    s = scene()
    frame = s.frames[which % len(s.frames)]
    feed_garbage(s, mutate(frame, edits), writable)


def test_scene_frames_are_valid() -> None:
    """The frames mutated above are real ones: unmutated, the server takes them all."""
    s = scene()
    for frame in s.frames:
        s.session.receive(frame, writable=True, now=0)
    assert (
        str(s.server.get("t", type=Text)) == "« llo, dear world"
    )  # pycrdt Text indexes UTF-8 bytes


# --- 3. Convergence through the session --------------------------------------------------

PEERS = 2

op = st.one_of(
    st.tuples(
        st.just("insert"),
        st.integers(0, PEERS - 1),
        st.integers(0, 100),
        st.text("abc\n", min_size=1, max_size=4),
    ),
    st.tuples(st.just("delete"), st.integers(0, PEERS - 1), st.integers(0, 100), st.integers(1, 3)),
    st.tuples(st.just("send"), st.integers(0, PEERS - 1), st.just(0), st.just(0)),
    st.tuples(st.just("recv"), st.integers(0, PEERS - 1), st.just(0), st.just(0)),
)


@settings(FUZZ, max_examples=250)
@given(
    offline=st.lists(st.text("xyz", max_size=3), min_size=PEERS, max_size=PEERS),
    ops=st.lists(op, max_size=40),
)
def test_random_edits_converge_through_sessions(
    offline: list[str], ops: list[tuple[str, int, int, object]]
) -> None:
    server = seeded_doc("base", client_id=1)
    table = AwarenessTable()
    sessions = [DocSession(server, table) for _ in range(PEERS)]
    peers = [Peer(100 + i) for i in range(PEERS)]
    up: list[list[bytes]] = [[] for _ in range(PEERS)]  # peer → server, in order
    down: list[list[bytes]] = [[] for _ in range(PEERS)]  # server → peer, in order

    for i, peer in enumerate(peers):
        if offline[i]:
            peer.text += offline[i]
        peer.take()  # not connected yet: nothing is sent
        peer.hello()
        down[i] += sessions[i].opening()

    def collect(i: int) -> None:
        up[i] += peers[i].take()

    def send(i: int) -> None:
        if not up[i]:
            return
        out = sessions[i].receive(up[i].pop(0), writable=True, now=0)
        down[i] += out.reply
        if out.broadcast is not None:
            for j in range(PEERS):
                if j != i:
                    down[j].append(out.broadcast)

    def recv(i: int) -> None:
        if down[i]:
            peers[i].feed(down[i].pop(0))
            collect(i)

    for i in range(PEERS):
        collect(i)
    for kind, i, pos, arg in ops:
        text = peers[i].text
        if kind == "insert":
            text.insert(pos % (len(text) + 1), str(arg))
        elif kind == "delete" and len(text):
            start = pos % len(text)
            del text[start : min(len(text), start + int(arg))]  # type: ignore[call-overload]
        elif kind == "send":
            send(i)
        elif kind == "recv":
            recv(i)
        collect(i)

    while any(up) or any(down):
        for i in range(PEERS):
            send(i)
            recv(i)

    texts = [str(p.text) for p in peers]
    assert texts == [str(server.get("t", type=Text))] * PEERS
    # Same state vectors (their encodings may list clients in any order).
    expected = decode_state_vector(server.get_state())
    assert [decode_state_vector(p.doc.get_state()) for p in peers] == [expected] * PEERS


def test_convergence_harness_with_connect() -> None:
    """The same through the plain handshake helper, as a sanity check of the harness."""
    server = seeded_doc("x")
    a, b = Peer(5), Peer(6)
    sa, sb = DocSession(server, AwarenessTable()), DocSession(server, AwarenessTable())
    connect(a, sa)
    b.text += "offline"
    connect(b, sb)
    assert str(b.text) == str(server.get("t", type=Text))
    assert "offline" in str(server.get("t", type=Text))
