"""DocSession: bytes in, Outcome out — by the sections of y-protocols' PROTOCOL.md.

The peer on the other end is a pycrdt doc driven by pycrdt's own sync handler
(:class:`tests.sync.peers.Peer`), so what the session sends is checked by what a stock
client makes of it, not by our own decoder.
"""

from __future__ import annotations

import pytest
from pycrdt import (
    Awareness,
    Doc,
    Text,
    create_awareness_message,
    create_sync_message,
    create_update_message,
    write_var_uint,
)

from server.sync.awareness import AwarenessTable
from server.sync.messages import (
    AwarenessMessage,
    ProtocolError,
    SyncStep1,
    SyncStep2,
    awareness_frame,
    decode,
    decode_state_vector,
    permission_denied_frame,
    sync_step1_frame,
    sync_step2_frame,
    update_frame,
)
from server.sync.replica import Replica
from server.sync.session import (
    DOC_BYTES,
    READ_ONLY_REASON,
    TOO_LARGE_REASON,
    DocSession,
    Outcome,
)
from tests.sync.peers import Peer, awareness_update, connect, exchange, seeded_doc

DENIED = b"\x02\x00" + write_var_uint(len(READ_ONLY_REASON.encode())) + READ_ONLY_REASON.encode()


@pytest.fixture
def server() -> Doc:
    return seeded_doc("hello")


@pytest.fixture
def session(server: Doc, table: AwarenessTable) -> DocSession:
    return DocSession(server, table)


def text_of(doc: Doc) -> str:
    return str(doc.get("t", type=Text))


def edit(peer: Peer, index: int, value: str) -> bytes:
    """One local edit of the peer; returns the update frame it would send."""
    peer.text.insert(index, value)
    [frame] = peer.take()
    return frame


def synced_peer(server: Doc, client_id: int = 2) -> Peer:
    peer = Peer(client_id)
    peer._remote = True
    peer.doc.apply_update(server.get_update())
    peer._remote = False
    return peer


# --- Opening -----------------------------------------------------------------------------


def test_opening_of_an_empty_doc_is_sync_step1(table: AwarenessTable) -> None:
    assert DocSession(Doc(), table).opening() == [b"\x00\x00\x01\x00"]


def test_opening_sends_the_server_state_vector(session: DocSession, server: Doc) -> None:
    [frame] = session.opening()
    assert frame == create_sync_message(server)
    msg = decode(frame)
    assert isinstance(msg, SyncStep1)
    assert decode_state_vector(msg.state_vector) == {1: 5}


def test_opening_includes_everyone_present(session: DocSession, table: AwarenessTable) -> None:
    payload = awareness_update((20, 2, '{"user":"a"}'), (21, 1, '{"user":"b"}'))
    other = DocSession(session.replica, table)
    other.receive(awareness_frame(payload), writable=True, now=0)
    step1, everyone = session.opening()
    assert step1 == create_sync_message(session.doc)
    assert everyone == awareness_frame(payload)


def test_opening_handshake_syncs_both_ways(session: DocSession, server: Doc) -> None:
    peer = Peer(2)
    peer.text += "offline "  # written before connecting
    outcomes = connect(peer, session)
    assert text_of(server) == text_of(peer.doc)
    assert "offline " in text_of(server) and "hello" in text_of(server)
    # The peer's step 2 is what the others need: it is applied and broadcast once.
    writes = [o for o in outcomes if o.update is not None]
    assert len(writes) == 1
    assert writes[0].broadcast == update_frame(writes[0].update)


# --- Sync step 1 → sync step 2 -----------------------------------------------------------


def test_step1_is_answered_with_the_missing_diff(session: DocSession, server: Doc) -> None:
    peer = Peer(2)
    out = session.receive(create_sync_message(peer.doc), writable=True, now=0)
    [reply] = out.reply
    msg = decode(reply)
    assert isinstance(msg, SyncStep2)
    assert msg.update == server.get_update(b"\x00")
    assert (out.update, out.broadcast, out.awareness, out.denied) == (None, None, None, None)
    peer.feed(reply)
    assert text_of(peer.doc) == "hello"


def test_step1_of_a_partly_synced_peer_gets_only_what_it_lacks(
    session: DocSession, server: Doc
) -> None:
    peer = synced_peer(server)
    server.get("t", type=Text).insert(5, " world")
    out = session.receive(create_sync_message(peer.doc), writable=True, now=0)
    [reply] = out.reply
    diff = decode(reply).update  # type: ignore[union-attr]
    assert diff == server.get_update(peer.doc.get_state())
    assert len(diff) < len(server.get_update())
    peer.feed(reply)
    assert text_of(peer.doc) == "hello world"


def test_step1_of_a_synced_peer_gets_an_empty_diff(session: DocSession, server: Doc) -> None:
    peer = synced_peer(server)
    [reply] = session.receive(create_sync_message(peer.doc), writable=True, now=0).reply
    assert reply == sync_step2_frame(b"\x00\x00")


def test_step1_is_answered_to_read_only_sockets_too(session: DocSession) -> None:
    out = session.receive(sync_step1_frame(b"\x00"), writable=False, now=0)
    assert len(out.reply) == 1 and out.denied is None


@pytest.mark.parametrize("sv", [b"\x05", b"\x01\x01", b"\xff", b""])
def test_step1_with_a_malformed_state_vector_is_a_protocol_error(
    session: DocSession, sv: bytes
) -> None:
    with pytest.raises(ProtocolError):
        session.receive(sync_step1_frame(sv), writable=True, now=0)


# --- Updates (and step 2) from a writer --------------------------------------------------


def test_update_is_applied_and_broadcast_as_received(session: DocSession, server: Doc) -> None:
    peer = synced_peer(server)
    frame = edit(peer, 5, " world")
    out = session.receive(frame, writable=True, now=0)
    assert text_of(server) == "hello world"
    assert out.update == decode(frame).update  # type: ignore[union-attr]
    assert out.broadcast == frame
    assert out.broadcast is frame  # decode once, encode once: the very bytes
    assert (out.reply, out.awareness, out.denied) == ([], None, None)


def test_update_applied_twice_is_in_the_doc_once(session: DocSession, server: Doc) -> None:
    peer = synced_peer(server)
    frame = edit(peer, 0, "» ")
    session.receive(frame, writable=True, now=0)
    session.receive(frame, writable=True, now=0)
    assert text_of(server) == "» hello"


def test_step2_payload_is_broadcast_as_an_update_frame(session: DocSession, server: Doc) -> None:
    """A step-2 payload reaches the others as the same frame an update would have been."""
    peer = synced_peer(server)
    update = decode(edit(peer, 5, "!")).update  # type: ignore[union-attr]
    out2 = DocSession(seeded_doc("hello"), AwarenessTable()).receive(
        sync_step2_frame(update), writable=True, now=0
    )
    outu = session.receive(create_update_message(update), writable=True, now=0)
    assert out2.update == outu.update == update
    assert out2.broadcast == outu.broadcast == create_update_message(update)
    assert out2.reply == [] and out2.denied is None


@pytest.mark.parametrize("frame", [update_frame(b"\x00\x00"), sync_step2_frame(b"\x00\x00")])
@pytest.mark.parametrize("writable", [True, False])
def test_empty_update_goes_nowhere(
    session: DocSession, server: Doc, frame: bytes, writable: bool
) -> None:
    before = server.get_update()
    assert session.receive(frame, writable=writable, now=0) == Outcome()
    assert server.get_update() == before


@pytest.mark.parametrize("payload", [b"\x01", b"\x00", b"\xff", b"\x01\x01\x05", b"\x02\x00\x00"])
@pytest.mark.parametrize("wrap", [update_frame, sync_step2_frame])
def test_update_pycrdt_refuses_is_a_protocol_error(
    session: DocSession, server: Doc, payload: bytes, wrap: object
) -> None:
    before = server.get_update()
    with pytest.raises(ProtocolError):
        session.receive(wrap(payload), writable=True, now=0)  # type: ignore[operator]
    assert server.get_update() == before
    assert text_of(server) == "hello"


def test_update_with_missing_dependencies_is_kept_and_forwarded(
    session: DocSession, server: Doc
) -> None:
    """Yjs semantics: an update ahead of its causes is pending, not an error."""
    peer = synced_peer(server)
    edit(peer, 5, "a")
    second = edit(peer, 6, "b")
    out = session.receive(second, writable=True, now=0)
    assert out.broadcast == second
    assert text_of(server) == "hello"
    first_and_second = peer.doc.get_update(server.get_state())
    session.receive(update_frame(first_and_second), writable=True, now=0)
    assert text_of(server) == "helloab"


# --- Read-only sockets: every write-carrying message is refused --------------------------


def test_permission_denied_frame_is_the_y_protocols_auth_message() -> None:
    assert permission_denied_frame(READ_ONLY_REASON) == DENIED


@pytest.mark.parametrize("wrap", [update_frame, sync_step2_frame], ids=["update", "step2"])
def test_read_only_write_is_refused_and_denied(
    session: DocSession, server: Doc, wrap: object
) -> None:
    peer = synced_peer(server)
    update = decode(edit(peer, 0, "pirate ")).update  # type: ignore[union-attr]
    before = server.get_update()
    out = session.receive(wrap(update), writable=False, now=0)  # type: ignore[operator]
    assert out.reply == [DENIED]
    assert out.denied == READ_ONLY_REASON
    assert (out.update, out.broadcast, out.awareness) == (None, None, None)
    assert server.get_update() == before
    assert text_of(server) == "hello"


def test_read_only_handshake_with_offline_edits_is_denied(session: DocSession) -> None:
    peer = Peer(2)
    peer.text += "mine"
    outcomes = connect(peer, session, writable=False)
    assert [o.denied for o in outcomes if o.denied] == [READ_ONLY_REASON]
    assert peer.denied == [DENIED]
    assert text_of(session.doc) == "hello"
    assert all(o.update is None and o.broadcast is None for o in outcomes)


def test_read_only_step2_with_nothing_new_is_dropped_silently(
    session: DocSession, server: Doc
) -> None:
    """A read-only client's step 2 holding only what the server has: not a write."""
    peer = synced_peer(server)
    everything = peer.doc.get_update()  # a full state, all of it known to the server
    assert everything != b"\x00\x00"
    before = server.get_update()
    assert session.receive(sync_step2_frame(everything), writable=False, now=0) == Outcome()
    assert server.get_update() == before


def test_read_only_handshake_of_a_synced_reader_is_quiet(session: DocSession) -> None:
    peer = Peer(2)
    connect(peer, session, writable=False)  # gets the doc
    outcomes = connect(peer, session, writable=False)  # reconnects: sends its full state
    assert peer.denied == []
    assert all(o.denied is None and o.update is None for o in outcomes)
    assert text_of(peer.doc) == "hello"


def test_read_only_garbage_that_is_not_an_update_is_denied(session: DocSession) -> None:
    out = session.receive(update_frame(b"\x01\x01"), writable=False, now=0)
    assert out.reply == [DENIED]


@pytest.mark.parametrize("wrap", [update_frame, sync_step2_frame], ids=["update", "step2"])
def test_read_only_second_edit_is_denied(session: DocSession, server: Doc, wrap: object) -> None:
    """Every refused edit of a read-only client is answered, not only its first one, so
    the client never believes an edit went through.

    The pycrdt subtlety this guards against: ``get_state(update)`` only counts a
    client's structs contiguous from clock 0 (as Yjs' ``encodeStateVectorFromUpdate``
    does), so an update whose structs start later — every edit of a client after its
    first — has an empty state vector (b"\\x00"). Deciding "nothing new" from that
    state vector would drop the second keystroke silently. ``carries_news`` asks the
    doc what it lacks instead (``get_update(update, doc state)``)."""
    peer = synced_peer(server)
    session.receive(edit(peer, 0, "a"), writable=False, now=0)  # denied, as it should
    second = decode(edit(peer, 1, "b")).update  # type: ignore[union-attr]
    out = session.receive(wrap(second), writable=False, now=0)  # type: ignore[operator]
    assert text_of(server) == "hello"  # never applied: that part holds
    assert out.reply == [DENIED]
    assert out.denied == READ_ONLY_REASON


def test_read_only_deletion_is_denied(session: DocSession, server: Doc) -> None:
    """A read-only client's deletion is refused *and answered*, like an insertion.

    A deletion is an update with no structs, only a delete set — here
    update_frame(b"\\x00\\x01\\x01\\x01\\x00\\x02") (no structs; delete client 1,
    clocks 0..1). Judging news by structs alone would drop it silently and the client
    would never be told; ``carries_news`` counts a delete set as news in an update
    message (not in a sync step 2, where Yjs clients resend their whole delete set)."""
    peer = synced_peer(server)
    del peer.text[0:2]
    [frame] = peer.take()
    assert frame == update_frame(b"\x00\x01\x01\x01\x00\x02")
    out = session.receive(frame, writable=False, now=0)
    assert text_of(server) == "hello"
    assert out.reply == [DENIED]


# --- Awareness ---------------------------------------------------------------------------


def test_accepted_awareness_is_echoed_as_the_same_frame(session: DocSession) -> None:
    aw = Awareness(Doc(client_id=77))
    aw.set_local_state({"user": {"name": "Inès"}})
    frame = create_awareness_message(aw.encode_awareness_update([77]))
    out = session.receive(frame, writable=True, now=0)
    assert out.awareness == frame
    assert out.awareness_payload == aw.encode_awareness_update([77])
    assert (out.reply, out.update, out.broadcast) == ([], None, None)
    assert session.owned == {77}
    assert session.awareness.state(77) == {"user": {"name": "Inès"}}


def test_awareness_from_read_only_sockets_is_accepted(session: DocSession) -> None:
    """Awareness is not a write to the doc: readers show their cursor too."""
    frame = awareness_frame(awareness_update((5, 1, '{"user":"r"}')))
    assert session.receive(frame, writable=False, now=0).awareness == frame


def test_stale_awareness_goes_nowhere(session: DocSession) -> None:
    session.receive(awareness_frame(awareness_update((5, 3, "{}"))), writable=True, now=0)
    out = session.receive(awareness_frame(awareness_update((5, 2, "{}"))), writable=True, now=1)
    assert out == Outcome()


def test_awareness_echo_includes_rejected_entries_of_the_same_frame(session: DocSession) -> None:
    session.receive(awareness_frame(awareness_update((5, 3, "{}"))), writable=True, now=0)
    frame = awareness_frame(awareness_update((5, 1, "{}"), (6, 1, "{}")))
    out = session.receive(frame, writable=True, now=0)
    assert out.awareness == frame  # forwarded whole; clients apply the same clock rules
    assert session.owned == {5, 6}


def test_closing_removes_what_the_socket_set(session: DocSession, table: AwarenessTable) -> None:
    session.receive(awareness_frame(awareness_update((5, 3, '{"u":1}'))), writable=True, now=0)
    session.receive(awareness_frame(awareness_update((6, 1, '{"u":2}'))), writable=True, now=0)
    removal = session.closing()
    assert removal is not None
    msg = decode(awareness_frame(removal))
    assert isinstance(msg, AwarenessMessage)
    assert sorted((e.client_id, e.clock, e.state, e.raw) for e in msg.entries) == [
        (5, 3, None, "null"),
        (6, 1, None, "null"),
    ]
    assert len(table) == 0
    assert session.closing() is None  # once


def test_closing_removal_is_understood_by_a_pycrdt_client(session: DocSession) -> None:
    watcher = Awareness(Doc(client_id=1))
    out = session.receive(
        awareness_frame(awareness_update((5, 3, '{"u":1}'))), writable=True, now=0
    )
    watcher.apply_awareness_update(decode(out.awareness).payload, "server")  # type: ignore[arg-type,union-attr]
    assert watcher.states[5] == {"u": 1}
    removal = session.closing()
    assert removal is not None
    watcher.apply_awareness_update(removal, "server")
    assert 5 not in watcher.states


def test_closing_of_a_socket_that_set_nothing(session: DocSession) -> None:
    assert session.closing() is None


def test_client_that_removed_itself_needs_no_removal(session: DocSession) -> None:
    session.receive(awareness_frame(awareness_update((5, 3, "{}"))), writable=True, now=0)
    out = session.receive(awareness_frame(awareness_update((5, 4, "null"))), writable=True, now=1)
    assert out.awareness is not None
    assert session.owned == set()
    assert session.closing() is None


def test_closing_leaves_other_sockets_states(session: DocSession, table: AwarenessTable) -> None:
    other = DocSession(session.replica, table)
    session.receive(awareness_frame(awareness_update((5, 1, "{}"))), writable=True, now=0)
    other.receive(awareness_frame(awareness_update((6, 1, "{}"))), writable=True, now=0)
    session.closing()
    assert table.state(6) == {} and table.state(5) is None
    assert other.owned == {6}


def test_ownership_follows_accepted_entries_not_client_ids(
    session: DocSession, table: AwarenessTable
) -> None:
    """A socket owns the awareness states it set, decided by the entries the table
    accepted, in frame order — not by the client ids the frame mentions.

    Frame 01 12 02 05 03 07 7b2261223a317d 05 01 04 6e756c6c: client 5's state {"a":1}
    at clock 3 (accepted), then a null for client 5 at clock 1 (stale, rejected). The
    table keeps {"a":1}, so the socket still owns client 5 and its closing removes it;
    deciding by id ("5 is in the frame with a null") would un-own it and leave the
    cursor on everyone's screen until the awareness timeout."""
    frame = awareness_frame(awareness_update((5, 3, '{"a":1}'), (5, 1, "null")))
    session.receive(frame, writable=True, now=0)
    assert table.state(5) == {"a": 1}
    assert session.owned == {5}
    assert session.closing() is not None


def test_query_awareness_is_answered_with_all_states(
    session: DocSession, table: AwarenessTable
) -> None:
    a, b = DocSession(session.replica, table), DocSession(session.replica, table)
    a.receive(awareness_frame(awareness_update((5, 2, '{"n":"a"}'))), writable=True, now=0)
    b.receive(awareness_frame(awareness_update((6, 1, '{"n":"b"}'))), writable=True, now=0)
    out = session.receive(b"\x03", writable=False, now=0)
    [reply] = out.reply
    msg = decode(reply)
    assert isinstance(msg, AwarenessMessage)
    assert {(e.client_id, e.clock, e.raw) for e in msg.entries} == {
        (5, 2, '{"n":"a"}'),
        (6, 1, '{"n":"b"}'),
    }
    assert (out.awareness, out.update) == (None, None)


def test_query_awareness_with_nobody_there(session: DocSession) -> None:
    assert session.receive(b"\x03", writable=True, now=0) == Outcome()


# --- Two sockets on one doc --------------------------------------------------------------


def test_what_one_writes_the_others_peer_receives(server: Doc, table: AwarenessTable) -> None:
    sa, sb = DocSession(server, table), DocSession(server, table)
    alice, bob = Peer(2), Peer(3)
    connect(alice, sa)
    connect(bob, sb)
    alice.text.insert(5, ", Bob")
    [out] = exchange(alice, sa)
    assert out.broadcast is not None
    bob.feed(out.broadcast)
    assert text_of(bob.doc) == text_of(alice.doc) == text_of(server) == "hello, Bob"
    bob.text += "!"
    [out] = exchange(bob, sb)
    alice.feed(out.broadcast)  # type: ignore[arg-type]
    assert text_of(alice.doc) == "hello, Bob!"


def test_what_a_reader_tries_to_write_no_one_receives(server: Doc, table: AwarenessTable) -> None:
    writer, reader = DocSession(server, table), DocSession(server, table)
    wpeer, rpeer = Peer(2), Peer(3)
    connect(wpeer, writer)
    connect(rpeer, reader, writable=False)
    rpeer.text += " vandalised"
    outs = exchange(rpeer, reader, writable=False)
    assert all(o.broadcast is None and o.update is None for o in outs)
    assert rpeer.denied == [DENIED]
    wpeer.text += " world"
    [out] = exchange(wpeer, writer)
    rpeer.feed(out.broadcast)  # type: ignore[arg-type]
    assert "world" in text_of(rpeer.doc)  # readers still follow the doc
    assert text_of(server) == "hello world"


def test_awareness_of_one_reaches_the_other(server: Doc, table: AwarenessTable) -> None:
    sa, sb = DocSession(server, table), DocSession(server, table)
    alice, bob = Peer(2), Peer(3)
    connect(alice, sa)
    connect(bob, sb)
    alice.awareness.set_local_state({"user": "alice"})
    out = sa.receive(
        create_awareness_message(alice.awareness.encode_awareness_update([2])), writable=True, now=0
    )
    bob.feed(out.awareness)  # type: ignore[arg-type]
    assert bob.awareness.states[2] == {"user": "alice"}
    removal = sa.closing()
    assert removal is not None
    bob.feed(awareness_frame(removal))
    assert 2 not in bob.awareness.states
    # A newcomer after alice left does not see her.
    carol = Peer(4)
    for frame in DocSession(server, table).opening():
        carol.feed(frame)
    assert 2 not in carol.awareness.states


# --- The size limit (max_doc_bytes) ------------------------------------------------------


def limited(server: Doc, table: AwarenessTable, room: int) -> DocSession:
    """A session on ``server`` whose state may grow by ``room`` bytes at most."""
    return DocSession(Replica(server, max_bytes=len(server.get_update()) + room), table)


TOO_LARGE = b"\x02\x00" + write_var_uint(len(TOO_LARGE_REASON.encode())) + TOO_LARGE_REASON.encode()


@pytest.mark.parametrize("wrap", [update_frame, sync_step2_frame], ids=["update", "step2"])
def test_a_write_past_the_size_limit_is_refused_and_the_doc_stays(
    server: Doc, table: AwarenessTable, wrap: object
) -> None:
    session = limited(server, table, 100)
    peer = synced_peer(server)
    before = server.get_update()
    update = decode(edit(peer, 0, "x" * 200)).update  # type: ignore[union-attr]
    out = session.receive(wrap(update), writable=True, now=0)  # type: ignore[operator]
    assert out.reply == [TOO_LARGE]
    assert (out.denied, out.limit, out.first) == (TOO_LARGE_REASON, DOC_BYTES, True)
    assert (out.update, out.broadcast) == (None, None)
    assert server.get_update() == before


def test_after_a_size_refusal_the_sockets_later_writes_are_refused_not_left_pending(
    server: Doc, table: AwarenessTable
) -> None:
    session = limited(server, table, 100)
    peer = synced_peer(server)
    session.receive(edit(peer, 0, "x" * 200), writable=True, now=0)
    out = session.receive(edit(peer, 0, "y"), writable=True, now=0)  # small, but after x
    assert out.reply == [TOO_LARGE] and out.first is False and out.update is None
    assert session.replica.pending is None
    assert text_of(server) == "hello"


def test_writes_within_the_limit_and_deletions_pass(server: Doc, table: AwarenessTable) -> None:
    mine = limited(server, table, 100)
    theirs = DocSession(mine.replica, table)  # another socket on the same doc
    writer, other = synced_peer(server, 2), synced_peer(server, 3)
    assert mine.receive(edit(writer, 5, " world"), writable=True, now=0).update is not None
    # Another socket fills the doc to the brim; then its deletion frees room.
    full = theirs.receive(edit(other, 0, "z" * 60), writable=True, now=0)
    assert full.update is not None
    writer._remote = True
    writer.doc.apply_update(full.update)
    writer._remote = False
    late = DocSession(mine.replica, table)
    assert late.receive(edit(synced_peer(server, 4), 0, "w" * 80), writable=True, now=0).limit
    del other.text[0:60]
    [deletion] = other.take()
    assert theirs.receive(deletion, writable=True, now=0).update is not None
    assert text_of(server) == "hello world"
    # The freed room counts once the doc is measured again (at most once a second).
    assert mine.receive(edit(writer, 0, "v" * 50), writable=True, now=2).update is not None


def test_the_replica_measures_exactly_only_when_the_estimate_is_past_the_limit() -> None:
    doc: Doc = Doc()
    text = doc.get("t", type=Text)
    updates: list[bytes] = []
    doc.observe(lambda e: updates.append(e.update))
    for _ in range(50):
        text.insert(0, "ab")
    replica = Replica(max_bytes=2000)
    for update in updates:
        assert replica.fits(update)
        replica.apply(update)
    exact = len(replica.doc.get_update())
    assert replica.size >= exact  # an upper estimate
    assert replica.measure() == exact == replica.size


def test_a_doc_at_its_limit_is_measured_at_most_once_a_second(server: Doc) -> None:
    replica = Replica(server, max_bytes=len(server.get_update()) + 100)
    peer = synced_peer(server)
    near = decode(edit(peer, 5, "w" * 90)).update  # type: ignore[union-attr]
    assert replica.fits(near, now=0)
    replica.apply(near)
    del peer.text[0:90]
    [deletion] = peer.take()
    replica.apply(decode(deletion).update)  # type: ignore[union-attr]
    more = decode(edit(peer, 0, "v" * 60)).update  # type: ignore[union-attr]
    assert replica.fits(more, now=5)  # measured: the deletion made room
    replica.apply(more)
    del peer.text[0:60]
    [again] = peer.take()
    replica.apply(decode(again).update)  # type: ignore[union-attr]
    last = decode(edit(peer, 0, "u" * 60)).update  # type: ignore[union-attr]
    assert not replica.fits(last, now=5.5)  # within the second: the estimate decides
    assert replica.fits(last, now=6.5)
