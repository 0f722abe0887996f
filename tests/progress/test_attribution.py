"""Who wrote what: the ledger's figures from real multi-user sessions, bytes in.

Each story is played by pycrdt docs and by stock Yjs under Node (Y.Text, and XmlFragment
as Tiptap writes it), with known amounts typed and deleted; the figures must be exact.
Then the properties the server relies on: any order of the log, duplicates, forged
client ids, folding the log into a snapshot.
"""

from __future__ import annotations

import json
import random
import time
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Text, merge_updates
from pycrdt import write_var_uint as vu

from server.progress.attribution import UNATTRIBUTED, Figures, Ledger
from server.progress.service import rename_summary
from server.sync.messages import ProtocolError, decode_state_vector
from tests.progress.sessions import Log, PycrdtSession, yjs_session

ALICE, BOB, CAROL = 101, 202, 303
CLIENTS = {"alice": ALICE, "bob": BOB}
T0 = 28_333_334 * 60.0  # a minute boundary, in November 2023


def timed(log: Log, step: float = 7.0) -> list[tuple[bytes, str | None, float]]:
    """The log with the times the server stored it at (7 s apart: several minutes)."""
    return [(update, author, T0 + i * step) for i, (update, author) in enumerate(log)]


def replay(
    entries: list[tuple[bytes, str | None, float]],
    owners: dict[str, int] = CLIENTS,
    ledger: Ledger | None = None,
) -> Ledger:
    ledger = ledger if ledger is not None else Ledger()
    for user, client in owners.items():
        ledger.bind(client, user)
    for update, author, at in entries:
        ledger.apply(update, author, at)
    return ledger


def counts(ledger: Ledger) -> dict[str, tuple[int, int, int]]:
    """user → (inserted, deleted, edits)."""
    return {u: (f.inserted, f.deleted, f.edits) for u, f in ledger.figures().items()}


def raw_keystroke(client: int, clock: int, ch: str, root: str = "content") -> bytes:
    """A keystroke as a forger writes it by hand: no origin, the root named."""
    raw = ch.encode()
    name = root.encode()
    body = b"\x04\x01" + vu(len(name)) + name + vu(len(raw)) + raw
    return b"\x01\x01" + vu(client) + vu(clock) + body + b"\x00"


def raw_delete(client: int, clock: int, length: int) -> bytes:
    return b"\x00\x01" + vu(client) + b"\x01" + vu(clock) + vu(length)


# --- the Y.Text story: alice and bob type, then delete some of each other's text
#
#   alice types "Bonjour à tous 👋"          16 characters (the emoji is 2 UTF-16 units)
#   bob types " — Bob écrit" after it       12
#   bob deletes alice's "tous"               4
#   alice deletes bob's "écrit"              5
#   alice deletes her own "à "               2
#
# present: alice 16 - 4 - 2 = 10, bob 12 - 5 = 7; deleted: alice 7, bob 4;
# edits: alice 16 keystrokes + 2 deletions, bob 12 + 1.

TEXT_EXPECTED = {"alice": (10, 7, 18), "bob": (7, 4, 13)}
TEXT_FINAL = "Bonjour  👋 — Bob "


def text_story_pycrdt() -> tuple[Log, str, bytes]:
    s = PycrdtSession(CLIENTS)
    s.type("alice", 0, "Bonjour à tous 👋")
    s.type("bob", 16, " — Bob écrit")
    s.delete("bob", 10, 4)
    s.delete("alice", 19, 5)
    s.delete("alice", 8, 2)
    return s.log, str(s.text("alice")), s.docs["alice"].get_update()


TEXT_OPS = [
    {"who": "alice", "op": "type", "pos": 0, "text": "Bonjour à tous 👋"},
    {"who": "bob", "op": "type", "pos": 16, "text": " — Bob écrit"},
    {"who": "bob", "op": "delete", "pos": 10, "len": 4},
    {"who": "alice", "op": "delete", "pos": 19, "len": 5},
    {"who": "alice", "op": "delete", "pos": 8, "len": 2},
]
YJS_CLIENTS = {"alice": 1001, "bob": 2002}


@pytest.fixture(scope="module")
def yjs_text() -> dict[str, Any]:
    return yjs_session("text", YJS_CLIENTS, TEXT_OPS)


def test_text_story_pycrdt() -> None:
    log, final, _state = text_story_pycrdt()
    assert final == TEXT_FINAL
    assert counts(replay(timed(log))) == TEXT_EXPECTED


def test_text_story_stock_yjs(yjs_text: dict[str, Any]) -> None:
    assert yjs_text["text"] == TEXT_FINAL
    assert counts(replay(timed(yjs_text["log"]), YJS_CLIENTS)) == TEXT_EXPECTED


def test_inserted_is_what_the_doc_still_holds(yjs_text: dict[str, Any]) -> None:
    figures = replay(timed(yjs_text["log"]), YJS_CLIENTS).figures()
    assert sum(f.inserted for f in figures.values()) == len(TEXT_FINAL)


def test_minutes_and_times() -> None:
    log, _, _ = text_story_pycrdt()
    entries = timed(log)  # 31 updates, 7 s apart: 217 s, 4 minutes
    figures = replay(entries).figures()
    alice = figures["alice"]
    assert alice.first_edit == T0
    assert alice.last_edit == entries[-1][2]
    assert figures["bob"].first_edit == entries[16][2]
    activity = replay(entries).activity(0)
    minute0 = int(T0 // 60)
    assert activity["alice"][minute0] == 9  # keystrokes at 0, 7, … 56 s
    assert sum(activity["alice"].values()) == 18
    assert alice.active_minutes == len(activity["alice"])
    # From 180 s: updates 26 to 30, bob's last two keystrokes and deletion, alice's two.
    assert replay(entries).activity(minute0 + 3) == {
        "alice": {minute0 + 3: 2},
        "bob": {minute0 + 3: 3},
    }


# --- the XmlFragment story, Tiptap-style
#
#   alice adds a paragraph, types "Le soleil brille"        16
#   bob adds a heading (level 2), types "Été 🌞"              5
#   alice makes "Le" bold                                    (format markers: no characters)
#   bob deletes alice's "soleil "                            7
#   alice deletes bob's "🌞"                                  1
#   bob types "!" at the end of alice's paragraph             1
#
# present: alice 16 - 7 = 9, bob 5 - 1 + 1 = 5; deleted: alice 1, bob 7;
# edits: alice 1 + 16 + 1 + 1 = 19, bob 1 + 5 + 1 + 1 = 8.

XML_EXPECTED = {"alice": (9, 1, 19), "bob": (5, 7, 8)}


def xml_story_pycrdt() -> tuple[Log, PycrdtSession]:
    s = PycrdtSession(CLIENTS)
    s.block("alice", "paragraph")
    s.xml_type("alice", 0, 0, "Le soleil brille")
    s.block("bob", "heading", {"level": 2})
    s.xml_type("bob", 1, 0, "Été 🌞")
    s.xml_format("alice", 0, 0, 2, {"bold": True})
    s.xml_delete("bob", 0, 3, 7)
    s.xml_delete("alice", 1, 4, 1)
    s.xml_type("bob", 0, 9, "!")
    return s.log, s


XML_OPS = [
    {"who": "alice", "op": "block", "at": 0, "tag": "paragraph"},
    {"who": "alice", "op": "type", "block": 0, "pos": 0, "text": "Le soleil brille"},
    {"who": "bob", "op": "block", "at": 1, "tag": "heading", "attrs": {"level": 2}},
    {"who": "bob", "op": "type", "block": 1, "pos": 0, "text": "Été 🌞"},
    {"who": "alice", "op": "format", "block": 0, "pos": 0, "len": 2, "marks": {"bold": {}}},
    {"who": "bob", "op": "delete", "block": 0, "pos": 3, "len": 7},
    {"who": "alice", "op": "delete", "block": 1, "pos": 4, "len": 1},
    {"who": "bob", "op": "type", "block": 0, "pos": 9, "text": "!"},
]


def test_xml_story_pycrdt() -> None:
    log, session = xml_story_pycrdt()
    assert str(session.fragment("bob")) == (
        '<paragraph><bold>Le</bold> brille!</paragraph><heading level="2">Été </heading>'
    )
    assert counts(replay(timed(log))) == XML_EXPECTED


def test_xml_story_stock_yjs() -> None:
    out = yjs_session("xml", YJS_CLIENTS, XML_OPS)
    assert (
        out["xml"]
        == '<paragraph><bold>Le</bold> brille!</paragraph><heading level="2">Été </heading>'
    )
    assert counts(replay(timed(out["log"]), YJS_CLIENTS)) == XML_EXPECTED


# --- what a socket claims counts for nothing


def test_forged_client_id_gains_the_forger_nothing() -> None:
    log, _, state = text_story_pycrdt()
    ledger = replay(timed(log))
    before = ledger.figures()
    next_clock = decode_state_vector(state_vector_of(state))[ALICE]
    forged = raw_keystroke(ALICE, next_clock, "FAUX")
    assert ledger.bind(ALICE, "bob") is False
    assert ledger.owner(ALICE) == "alice"
    ledger.apply(forged, "bob", T0 + 1000)
    after = ledger.figures()
    assert after["bob"] == before["bob"]
    # The characters sit under alice's client id (the doc says so), but are no edit of hers.
    assert after["alice"].edits == before["alice"].edits
    assert after["alice"].inserted == before["alice"].inserted + 4


def state_vector_of(state: bytes) -> bytes:
    doc = Doc()
    doc.apply_update(state)
    return doc.get_state()


def test_bind_first_user_wins() -> None:
    ledger = Ledger()
    assert ledger.bind(5, "alice") is True
    assert ledger.bind(5, "alice") is True
    assert ledger.bind(5, "bob") is False
    assert ledger.bind(6, "bob") is True
    assert ledger.owners() == {5: "alice", 6: "bob"}
    assert ledger.owner(7) is None


def test_unbound_clients_and_unknown_authors_are_unattributed() -> None:
    ledger = Ledger()
    for i, ch in enumerate("abcd"):
        ledger.apply(raw_keystroke(CAROL, i, ch), "carol", T0 + i)
    ledger.apply(raw_delete(CAROL, 1, 2), None, T0 + 10)  # a repair: no author
    figures = ledger.figures()
    assert figures[UNATTRIBUTED] == Figures(2, 2, 0, 0, None, None)
    assert figures["carol"].inserted == 0
    assert figures["carol"].edits == 4  # her socket sent them: her edits
    ledger.bind(CAROL, "carol")  # bound late: her characters follow
    figures = ledger.figures()
    assert figures["carol"].inserted == 2
    assert figures[UNATTRIBUTED] == Figures(0, 2, 0, 0, None, None)


def test_no_unattributed_entry_when_there_is_none() -> None:
    log, _, _ = text_story_pycrdt()
    assert UNATTRIBUTED not in replay(timed(log)).figures()


# --- unicode: code points, not UTF-16 units nor bytes


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("é", 1),
        ("e\u0301", 2),  # e + combining acute: two code points (not graphemes)
        ("👋", 1),  # two UTF-16 units
        ("🇫🇷", 2),  # two regional indicators, four units
        ("日本語", 3),
        ("a👋b🎉c", 5),
    ],
)
def test_code_points_are_counted(typed: str, expected: int) -> None:
    s = PycrdtSession({"alice": ALICE})
    s.edit("alice", lambda doc: doc.get("content", type=Text).insert(0, typed))
    s.type("alice", len(typed), typed)  # and once more, a keystroke per code point
    ledger = replay(timed(s.log), {"alice": ALICE})
    assert ledger.figures()["alice"].inserted == 2 * expected


def test_deleting_an_emoji_counts_one_character() -> None:
    ledger = Ledger()
    ledger.bind(ALICE, "alice")
    ledger.apply(raw_keystroke(ALICE, 0, "a👋b"), "alice", T0)  # units 0, 1-2, 3
    ledger.apply(raw_delete(ALICE, 1, 2), "bob", T0 + 1)
    assert counts(ledger) == {"alice": (2, 0, 1), "bob": (0, 1, 1)}


def test_two_copies_of_a_split_surrogate_pair_count_the_same_in_any_order() -> None:
    # yjs replaces a surrogate pair split by an edit with two U+FFFD: the log can hold the
    # emoji from the keystroke and the replacement from a later state.
    whole = raw_keystroke(ALICE, 0, "👋")
    split = (
        b"\x01\x02"
        + vu(ALICE)
        + b"\x00"
        + b"\x04\x01\x07content\x03\xef\xbf\xbd"
        + (b"\x84" + vu(ALICE) + b"\x00\x03\xef\xbf\xbd")
        + b"\x00"
    )
    seen = set()
    for order in ([whole, split], [split, whole]):
        ledger = Ledger()
        ledger.bind(ALICE, "alice")
        for i, u in enumerate(order):
            ledger.apply(u, "alice", T0 + i)
        seen.add(ledger.figures()["alice"].inserted)
    assert len(seen) == 1


# --- order, duplicates


def test_a_delete_before_its_insert_credits_the_deleter() -> None:
    ledger = Ledger()
    ledger.bind(ALICE, "alice")
    ledger.apply(raw_delete(ALICE, 0, 3), "bob", T0 + 5)
    assert counts(ledger) == {"alice": (0, 0, 0), "bob": (0, 0, 1)}
    ledger.apply(raw_keystroke(ALICE, 0, "abcd"), "alice", T0)
    assert counts(ledger) == {"alice": (1, 0, 1), "bob": (0, 3, 1)}


def test_the_earliest_of_two_deletions_of_a_character_gets_it() -> None:
    ledger = Ledger()
    ledger.bind(ALICE, "alice")
    ledger.apply(raw_keystroke(ALICE, 0, "abcd"), "alice", T0)
    ledger.apply(raw_delete(ALICE, 0, 2), "carol", T0 + 9)
    ledger.apply(raw_delete(ALICE, 1, 2), "bob", T0 + 3)  # stored earlier, applied later
    assert counts(ledger) == {"alice": (1, 0, 1), "bob": (0, 2, 1), "carol": (0, 1, 1)}


def test_duplicates_count_once(yjs_text: dict[str, Any]) -> None:
    entries = timed(yjs_text["log"])
    once = replay(entries, YJS_CLIENTS).figures()
    later = [(u, a, at + 3600) for u, a, at in entries]
    twice = replay(entries + entries + later, YJS_CLIENTS).figures()
    assert twice == once


def test_empty_and_malformed_updates() -> None:
    ledger = Ledger()
    ledger.apply(b"\x00\x00", "alice", T0)
    assert ledger.figures() == {}
    with pytest.raises(ProtocolError):
        ledger.apply(b"\x01\x01", "alice", T0)
    with pytest.raises(ValueError):
        ledger.apply(b"\x00\x00", "alice", float("nan"))


# A longer stock-Yjs session for the properties: three users, one of whom goes offline,
# edits, and comes back with a sync step 2 that repeats the doc's whole delete set; two
# users delete the same characters concurrently.
RICH_CLIENTS = {"alice": 1001, "bob": 2002, "carol": 3003}
RICH_OPS = [
    {"who": "alice", "op": "type", "pos": 0, "text": "Notre exposé 🌍 sur l'été"},
    {"who": "bob", "op": "type", "pos": 0, "text": "Intro: "},
    {"who": "carol", "op": "paste", "pos": 31, "text": " Fin."},
    {"who": "bob", "op": "delete", "pos": 13, "len": 6},
    {"who": "carol", "op": "offline"},
    {"who": "carol", "op": "type", "pos": 0, "text": "¡Hola! "},
    {"who": "carol", "op": "delete", "pos": 7, "len": 7},  # bob's "Intro: ", offline
    {"who": "alice", "op": "delete", "pos": 0, "len": 3},  # the same "Int", online
    {"who": "bob", "op": "type", "pos": 10, "text": "ü😀"},
    {"who": "carol", "op": "online"},
    {"who": "alice", "op": "delete", "pos": 2, "len": 4},
]


@pytest.fixture(scope="module")
def rich() -> dict[str, Any]:
    return yjs_session("text", RICH_CLIENTS, RICH_OPS)


def test_rich_session_figures(rich: dict[str, Any]) -> None:
    ledger = replay(timed(rich["log"]), RICH_CLIENTS)
    assert sum(f.inserted for f in ledger.figures().values()) == len(rich["text"])
    assert counts(ledger) == {
        # 24 typed, "exposé" deleted by bob; deleted "Int" and carol's "ola!"
        "alice": (24 - 6, 3 + 4, 24 + 2),
        # "Intro: " (deleted by alice and carol) and "ü😀"; deleted "exposé"
        "bob": (2, 6, 7 + 1 + 2),
        # " Fin." and "¡Hola! " less "ola!". Her offline deletion of "Intro: " reached
        # the server after alice's of "Int": carol gets "ro: ". Her two sync steps 2
        # (one per peer) are one edit: the second brought nothing new.
        "carol": (5 + 7 - 4, 4, 1 + 1),
    }


@settings(max_examples=40, deadline=None)
@given(st.randoms(use_true_random=False))
def test_any_order_of_the_log_gives_the_same_figures(
    rich: dict[str, Any], rnd: random.Random
) -> None:
    entries = timed(rich["log"])
    expected = replay(entries, RICH_CLIENTS)
    shuffled = list(entries)
    rnd.shuffle(shuffled)
    got = replay(shuffled, RICH_CLIENTS)
    assert got.figures() == expected.figures()
    assert got.activity(0) == expected.activity(0)


@settings(max_examples=25, deadline=None)
@given(st.randoms(use_true_random=False))
def test_any_order_with_duplicates_and_equal_times(
    rich: dict[str, Any], rnd: random.Random
) -> None:
    # The store stamps a whole batch with one time: ties must not depend on the order.
    entries = [(u, a, T0 + (i // 5) * 60) for i, (u, a) in enumerate(rich["log"])]
    expected = replay(entries, RICH_CLIENTS).figures()
    shuffled = entries + rnd.sample(entries, len(entries) // 3)
    rnd.shuffle(shuffled)
    assert replay(shuffled, RICH_CLIENTS).figures() == expected


# --- folding the log into a snapshot keeps attribution


def snapshot_of(updates: list[bytes], previous: bytes | None = None) -> bytes:
    doc = Doc()
    parts = ([previous] if previous is not None else []) + updates
    if parts:
        doc.apply_update(merge_updates(*parts))
    return doc.get_update()


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_fold_then_tail_equals_replaying_everything(
    rich: dict[str, Any], data: st.DataObject
) -> None:
    entries = timed(rich["log"])
    full = replay(entries, RICH_CLIENTS)
    k = data.draw(st.integers(0, len(entries)))
    before = replay(entries[:k], RICH_CLIENTS)
    summary = json.loads(json.dumps(before.summary()))  # stored as JSON
    snapshot = snapshot_of([u for u, _, _ in entries[:k]])
    folded = Ledger.from_summary(summary, snapshot)
    for update, author, at in entries[k:]:
        folded.apply(update, author, at)
    assert folded.figures() == full.figures()
    assert folded.activity(0) == full.activity(0)
    assert folded.owners() == full.owners()


def test_two_folds(rich: dict[str, Any]) -> None:
    entries = timed(rich["log"])
    full = replay(entries, RICH_CLIENTS).figures()
    a, b = len(entries) // 3, 2 * len(entries) // 3
    first = replay(entries[:a], RICH_CLIENTS)
    snap1 = snapshot_of([u for u, _, _ in entries[:a]])
    second = Ledger.from_summary(first.summary(), snap1)
    for entry in entries[a:b]:
        second.apply(*entry)
    snap2 = snapshot_of([u for u, _, _ in entries[a:b]], snap1)
    third = Ledger.from_summary(second.summary(), snap2)
    for entry in entries[b:]:
        third.apply(*entry)
    assert third.figures() == full


def test_from_state_counts_present_characters_only(yjs_text: dict[str, Any]) -> None:
    ledger = Ledger.from_state(yjs_text["state"], {1001: "alice", 2002: "bob"})
    assert counts(ledger) == {"alice": (10, 0, 0), "bob": (7, 0, 0)}
    # What the snapshot already deleted can no longer be credited to anyone.
    for update, author, at in timed(yjs_text["log"]):
        ledger.apply(update, author, at)
    assert counts(ledger) == {"alice": (10, 0, 0), "bob": (7, 0, 0)}


def test_summary_is_json_and_refuses_garbage() -> None:
    log, _, _ = text_story_pycrdt()
    summary = replay(timed(log)).summary()
    assert json.loads(json.dumps(summary)) == summary
    assert summary["bindings"] == {str(ALICE): "alice", str(BOB): "bob"}
    assert summary["users"]["bob"]["deleted"] == 4
    for bad in ({}, {"v": 99}, {"v": 1, "bindings": {}}, {"v": 1, "bindings": [], "users": {}}):
        with pytest.raises(ValueError):
            Ledger.from_summary(bad)


# --- a big doc: 50,000 keystrokes from 5 users


def big_session(users: int = 5, keystrokes: int = 50_000) -> list[tuple[bytes, str, float]]:
    """Five students typing in turn, each after their own previous character, and every
    tenth keystroke deleting one of the next student's characters."""
    rnd = random.Random(7)
    clients = [10_000 + u for u in range(users)]
    clocks = [0] * users
    starts: list[list[int]] = [[] for _ in range(users)]  # clocks of undeleted characters
    entries: list[tuple[bytes, str, float]] = []
    at = T0
    for k in range(keystrokes):
        u = k % users
        client, clock = clients[u], clocks[u]
        ch = "aàé👋 b"[k % 6]
        raw = ch.encode()
        if clock == 0:
            body = b"\x04\x01\x07content" + vu(len(raw)) + raw
        else:
            body = b"\x84" + vu(client) + vu(clock - 1) + vu(len(raw)) + raw
        entries.append((b"\x01\x01" + vu(client) + vu(clock) + body + b"\x00", f"s{u}", at))
        starts[u].append(clock)
        clocks[u] += 2 if ch == "👋" else 1
        at += 0.25
        if k % 10 == 9:
            v = (u + 1) % users
            if starts[v]:
                target = starts[v].pop(rnd.randrange(len(starts[v])))
                length = 2 if clocks[v] > target + 1 and target + 1 not in starts[v] else 1
                entries.append((raw_delete(clients[v], target, length), f"s{u}", at))
                at += 0.25
    return entries


@pytest.fixture(scope="module")
def big() -> list[tuple[bytes, str, float]]:
    return big_session()


def test_fifty_thousand_keystrokes(big: list[tuple[bytes, str, float]]) -> None:
    owners = {f"s{u}": 10_000 + u for u in range(5)}
    t0 = time.perf_counter()
    ledger = replay(big, owners)
    apply_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    figures = ledger.figures()
    figures_s = time.perf_counter() - t0

    doc = Doc()
    for update, _, _ in big:  # (pycrdt's merge_updates is quadratic: 25 s for these)
        doc.apply_update(update)
    state = doc.get_update()
    t0 = time.perf_counter()
    from_state = Ledger.from_state(state, {c: u for u, c in owners.items()})
    from_state_s = time.perf_counter() - t0

    present = sum(f.inserted for f in figures.values())
    assert present == len(str(doc.get("content", type=Text)))
    assert {u: f.inserted for u, f in from_state.figures().items()} == {
        u: f.inserted for u, f in figures.items()
    }
    assert sum(f.edits for f in figures.values()) == len(big)
    print(
        f"\n{len(big)} updates: apply {apply_s / len(big) * 1e6:.1f} µs/update, "
        f"figures {figures_s * 1e3:.2f} ms, from_state {from_state_s * 1e3:.1f} ms, "
        f"index {ledger.index_bytes() / 1e6:.2f} MB, after from_state "
        f"{from_state.index_bytes() / 1e3:.1f} kB"
    )
    # Bounds for two shared CI cores; a laptop does ≈ 12 µs, 0.2 ms, 30 ms.
    assert apply_s / len(big) < 100e-6
    assert figures_s < 0.05
    assert from_state_s < 0.5
    assert ledger.index_bytes() < 60 * len(big)
    # After a fold: one range per run of a client, one per scattered deletion (≈ 5,000).
    assert from_state.index_bytes() < 44 * 6_000


# --- an erasure renames a user (server/privacy/erasure.py)


def test_a_rename_moves_every_figure_and_keeps_the_others() -> None:
    log, _, _ = text_story_pycrdt()
    ledger = replay(timed(log))
    before = ledger.figures()
    assert ledger.rename("alice", "anon-1")
    after = ledger.figures()
    assert "alice" not in after and after["anon-1"] == before["alice"]
    assert after["bob"] == before["bob"]
    assert ledger.owner(ALICE) == "anon-1"
    # Later updates of the renamed id count for the pseudonym, and the summary names
    # only it: a fold after the erasure brings nobody back.
    more = PycrdtSession(CLIENTS)
    more.type("bob", 0, "x")
    ledger.apply(more.log[-1][0], "bob", T0 + 999)
    summary = json.dumps(ledger.summary())
    assert "alice" not in summary and "anon-1" in summary
    rebuilt = Ledger.from_summary(ledger.summary())
    assert rebuilt.figures()["anon-1"].edits == after["anon-1"].edits
    assert not ledger.rename("carol", "anon-2")
    with pytest.raises(ValueError):
        ledger.rename("bob", "anon-1")  # a pseudonym is new to the ledger


def test_a_stored_summary_renamed() -> None:
    log, _, _ = text_story_pycrdt()
    blob = msgpack.packb(replay(timed(log)).summary(), use_bin_type=True)
    renamed = rename_summary(blob, "alice", "anon-1")
    assert renamed is not None and b"alice" not in renamed and b"anon-1" in renamed
    assert rename_summary(blob, "carol", "anon-2") is None
    assert rename_summary(b"\xc1 not msgpack", "alice", "anon-1") is None
