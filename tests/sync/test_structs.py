"""The structs of Yjs updates v1, decoded: bytes in, structs out.

Organised like the format (yjs src/utils/encoding.js ``writeStructs``, DeleteSet.js
``writeDeleteSet``, structs/*.js): hand-built bytes for every struct and content kind,
refusals one byte wrong, then real updates written by pycrdt and by stock Yjs under Node
(whose struct lengths must add up to the state vector), then hostile input.
"""

from __future__ import annotations

import time
import timeit
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText, merge_updates
from pycrdt import write_var_uint as vu

from server.sync.lib0 import MAX_ANY_DEPTH
from server.sync.messages import ProtocolError, decode_state_vector
from server.sync.structs import (
    Kind,
    Struct,
    TypeRef,
    Update,
    decode_update,
    update_clients,
    utf16_length,
)
from tests.support.node import node_json


def vs(text: str) -> bytes:
    raw = text.encode("utf-8")
    return vu(len(raw)) + raw


def update(*groups: tuple[int, int, list[bytes]], deletes: bytes = b"\x00") -> bytes:
    """An update v1 from (client, clock, [encoded structs]) groups and a delete set."""
    out = vu(len(groups))
    for client, clock, structs in groups:
        out += vu(len(structs)) + vu(client) + vu(clock) + b"".join(structs)
    return out + deletes


ROOT_T = b"\x01" + vs("t")  # parent info: a root named "t"


def string_in_root(text: str) -> bytes:
    return b"\x04" + ROOT_T + vs(text)


def one(struct: bytes) -> Struct:
    (s,) = decode_update(update((7, 0, [struct]))).structs
    return s


# --- the update and its groups


def test_empty_update() -> None:
    assert decode_update(b"\x00\x00") == Update((), ())


def test_string_named_root() -> None:
    assert decode_update(update((7, 0, [string_in_root("ab")]))) == Update(
        (Struct(7, 0, 2, Kind.STRING, text="ab", parent_root="t"),), ()
    )


def test_clocks_follow_lengths_within_a_group() -> None:
    u = decode_update(
        update(
            (9, 4, [b"\x00" + vu(3), b"\x0a" + vu(2), b"\x84" + vu(9) + vu(8) + vs("x")]),
            (7, 0, [string_in_root("é👋")]),
        )
    )
    assert [(s.client, s.clock, s.length, s.kind) for s in u.structs] == [
        (9, 4, 3, Kind.GC),
        (9, 7, 2, Kind.SKIP),
        (9, 9, 1, Kind.STRING),
        (7, 0, 3, Kind.STRING),  # é is one UTF-16 unit, 👋 two
    ]
    assert u.structs[2].origin == (9, 8)


def test_delete_set() -> None:
    ds = vu(2) + vu(9) + vu(2) + vu(0) + vu(3) + vu(10) + vu(1) + vu(7) + vu(1) + vu(5) + vu(300)
    assert decode_update(update(deletes=ds)).deletes == ((9, 0, 3), (9, 10, 1), (7, 5, 300))


def test_big_client_ids_and_clocks() -> None:
    client = 2**53 - 1  # the largest Yjs client id (a JavaScript safe integer)
    (s,) = decode_update(update((client, 2**40, [string_in_root("z")]))).structs
    assert (s.client, s.clock) == (client, 2**40)


# --- items: origins and parents


def test_origin_and_right_origin() -> None:
    s = one(b"\xc4" + vu(1) + vu(2) + vu(3) + vu(4) + vs("q"))
    assert (s.origin, s.right_origin, s.parent_root, s.parent_id) == ((1, 2), (3, 4), None, None)


def test_right_origin_only() -> None:
    s = one(b"\x44" + vu(3) + vu(4) + vs("q"))
    assert (s.origin, s.right_origin) == (None, (3, 4))


def test_parent_id_and_parent_sub() -> None:
    # A map entry inside a nested type: parent by id, then its key.
    s = one(b"\x28" + vu(0) + vu(5) + vu(6) + vs("clé") + vu(1) + b"\x78")
    assert (s.parent_id, s.parent_sub, s.kind, s.length) == ((5, 6), "clé", Kind.ANY, 1)


def test_parent_sub_flag_ignored_when_origin_is_written() -> None:
    # yjs sets 0x20 whenever the item has a key, but writes the key only with the parent.
    s = one(b"\xa8" + vu(1) + vu(0) + vu(1) + b"\x78")
    assert (s.origin, s.parent_sub) == ((1, 0), None)


# --- contents


@pytest.mark.parametrize(
    ("content", "kind", "length"),
    [
        (b"\x01" + vu(4), Kind.DELETED, 4),
        (b"\x02" + vu(3) + vs('{"a":[1]}') + vs("undefined") + vs('"x"'), Kind.JSON, 3),
        (b"\x03" + vu(3) + b"\x00\xff\x10", Kind.BINARY, 1),
        (b"\x05" + vs('{"image":"a.png"}'), Kind.EMBED, 1),
        (b"\x08" + vu(2) + b"\x7d\x41" + b"\x77" + vs("s"), Kind.ANY, 2),
        (b"\x09" + vs("guid-1") + b"\x76" + vu(1) + vs("gc") + b"\x78", Kind.DOC, 1),
    ],
)
def test_content(content: bytes, kind: Kind, length: int) -> None:
    info, rest = content[:1], content[1:]
    s = one(info + ROOT_T + rest)
    assert (s.kind, s.length) == (kind, length)


def test_format() -> None:
    s = one(b"\x06" + ROOT_T + vs("bold") + vs("{}"))
    assert (s.kind, s.length, s.format_key, s.format_value) == (Kind.FORMAT, 1, "bold", "{}")


@pytest.mark.parametrize(
    ("payload", "type_ref", "name"),
    [
        (vu(0), TypeRef.ARRAY, None),
        (vu(1), TypeRef.MAP, None),
        (vu(2), TypeRef.TEXT, None),
        (vu(3) + vs("paragraph"), TypeRef.XML_ELEMENT, "paragraph"),
        (vu(4), TypeRef.XML_FRAGMENT, None),
        (vu(5) + vs("hook"), TypeRef.XML_HOOK, "hook"),
        (vu(6), TypeRef.XML_TEXT, None),
    ],
)
def test_type(payload: bytes, type_ref: TypeRef, name: str | None) -> None:
    s = one(b"\x07" + ROOT_T + payload)
    assert (s.kind, s.length, s.type_ref, s.name) == (Kind.TYPE, 1, type_ref, name)


ANY_VALUES = [
    b"\x7f",  # undefined
    b"\x7e",  # null
    b"\x7d\x00",  # integer 0
    b"\x7d\xff\xff\xff\x7f",  # a negative integer, several bytes
    b"\x7c" + bytes(4),  # float32
    b"\x7b" + bytes(8),  # float64
    b"\x7a" + bytes(8),  # bigint64
    b"\x79",  # false
    b"\x78",  # true
    b"\x77" + vs("chaîne"),
    b"\x76" + vu(2) + vs("a") + b"\x7e" + vs("b") + b"\x75" + vu(1) + b"\x78",  # object
    b"\x75" + vu(0),  # empty array
    b"\x74" + vu(2) + b"\x01\x02",  # Uint8Array
]


@pytest.mark.parametrize("value", ANY_VALUES)
def test_any_values(value: bytes) -> None:
    s = one(b"\x08" + ROOT_T + vu(1) + value)
    assert (s.kind, s.length) == (Kind.ANY, 1)


# --- refusals


def nested_any(depth: int) -> bytes:
    return b"\x75\x01" * depth + b"\x7e"


REFUSED = {
    "truncated count": b"",
    "no delete set": update((7, 0, [string_in_root("a")]), deletes=b""),
    "trailing byte": update((7, 0, [string_in_root("a")])) + b"\x00",
    "varint too long": b"\xff" * 9,
    "group count past end": b"\x05\x00",
    "struct count past end": b"\x01\x09\x07\x00",
    "unknown content ref": update((7, 0, [b"\x0b" + ROOT_T])),
    "GC with flags": update((7, 0, [b"\x80" + vu(1) + vu(0) + vu(1)])),
    "skip with flags": update((7, 0, [b"\x4a" + vu(1) + vu(0) + vu(1)])),
    "zero-length GC": update((7, 0, [b"\x00" + vu(0)])),
    "zero-length string": update((7, 0, [string_in_root("")])),
    "zero-length deleted": update((7, 0, [b"\x01" + ROOT_T + vu(0)])),
    "empty JSON": update((7, 0, [b"\x02" + ROOT_T + vu(0)])),
    "bad parent flag": update((7, 0, [b"\x04" + b"\x02" + vs("t") + vs("a")])),
    "unknown type ref": update((7, 0, [b"\x07" + ROOT_T + vu(7)])),
    "unknown any tag": update((7, 0, [b"\x08" + ROOT_T + vu(1) + b"\x73"])),
    "any nested too deep": update(
        (7, 0, [b"\x08" + ROOT_T + vu(1) + nested_any(MAX_ANY_DEPTH + 1)])
    ),
    "string not UTF-8": update((7, 0, [b"\x04" + ROOT_T + vu(2) + b"\xc3\x28"])),
    "surrogate in UTF-8": update((7, 0, [b"\x04" + ROOT_T + vu(3) + b"\xed\xa0\x80"])),
    "string past end": update((7, 0, [b"\x04" + ROOT_T + vu(50) + b"ab"])),
    "format value not JSON": update((7, 0, [b"\x06" + ROOT_T + vs("bold") + vs("{")])),
    "format value NaN": update((7, 0, [b"\x06" + ROOT_T + vs("x") + vs("NaN")])),
    "embed not JSON": update((7, 0, [b"\x05" + ROOT_T + vs("<img>")])),
    "JSON element not JSON": update((7, 0, [b"\x02" + ROOT_T + vu(1) + vs("undef")])),
    "float32 cut short": update((7, 0, [b"\x08" + ROOT_T + vu(1) + b"\x7c\x00\x00"])),
    "client in two groups": update((7, 0, [string_in_root("a")]), (7, 1, [string_in_root("b")])),
    "delete count past end": b"\x00\x01\x07\x09\x00",
}


@pytest.mark.parametrize("data", REFUSED.values(), ids=REFUSED.keys())
def test_refused(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_update(data)


def test_any_nesting_up_to_the_limit_is_fine() -> None:
    s = one(b"\x08" + ROOT_T + vu(1) + nested_any(MAX_ANY_DEPTH))
    assert s.kind is Kind.ANY


# --- real updates: pycrdt


def recording(client_id: int) -> tuple[Doc, list[bytes]]:
    doc = Doc(client_id=client_id)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    return doc, updates


def lengths_by_client(u: Update) -> dict[int, int]:
    out: dict[int, int] = {}
    for s in u.structs:
        out[s.client] = out.get(s.client, 0) + s.length
    return out


def test_pycrdt_keystrokes_advance_the_state_vector_by_their_lengths() -> None:
    doc, updates = recording(42)
    doc["t"] = text = Text()
    for ch in "Noël 👋 à tous":
        before = decode_state_vector(doc.get_state()).get(42, 0)
        text += ch
        (s,) = decode_update(updates[-1]).structs
        after = decode_state_vector(doc.get_state())[42]
        assert (s.text, s.clock, s.length) == (ch, before, after - before)
        assert s.length == utf16_length(ch)
    whole = decode_update(doc.get_update())
    assert lengths_by_client(whole) == decode_state_vector(doc.get_state())
    assert "".join(s.text or "" for s in whole.structs) == "Noël 👋 à tous"


def test_pycrdt_xml_with_formatting_and_deletions() -> None:
    doc, updates = recording(3)
    doc["default"] = fragment = XmlFragment()
    paragraph = fragment.children.append(XmlElement("paragraph"))
    text = paragraph.children.append(XmlText())
    text.insert(0, "bonjour tout le monde")
    text.format(0, 7, {"bold": True})
    fragment.children.append(XmlElement("heading", {"level": 2}))
    del text[8:13]
    structs = [s for u in updates for s in decode_update(u).structs]
    assert [(s.kind, s.type_ref, s.name) for s in structs if s.kind is Kind.TYPE] == [
        (Kind.TYPE, TypeRef.XML_ELEMENT, "paragraph"),
        (Kind.TYPE, TypeRef.XML_TEXT, None),
        (Kind.TYPE, TypeRef.XML_ELEMENT, "heading"),
    ]
    formats = [(s.format_key, s.format_value) for s in structs if s.kind is Kind.FORMAT]
    assert formats == [("bold", "true"), ("bold", "null")]
    attribute = next(s for s in structs if s.parent_sub == "level")
    assert attribute.kind is Kind.ANY
    assert decode_update(updates[-1]).deletes == ((3, 10, 5),)  # "tout " after 2 types
    whole = decode_update(doc.get_update())
    assert lengths_by_client(whole) == decode_state_vector(doc.get_state())
    assert any(s.kind is Kind.DELETED for s in whole.structs)


def test_pycrdt_maps_arrays_and_merged_updates_with_skips() -> None:
    doc, updates = recording(11)
    doc["m"] = m = Map()
    m["a"] = 1
    m["b"] = Array(["x", {"y": [None, True, 2.5, "z"]}])
    m["a"] = "deux"
    doc["t"] = t = Text("abc")
    t += "def"
    merged = merge_updates(updates[0], updates[-1])  # a gap between them: a Skip
    kinds = [s.kind for s in decode_update(merged).structs]
    assert Kind.SKIP in kinds
    for u in updates:
        decode_update(u)
    whole = decode_update(doc.get_update())
    assert lengths_by_client(whole) == decode_state_vector(doc.get_state())
    assert {s.parent_sub for s in whole.structs} >= {"a", "b"}


@st.composite
def edits(draw: st.DrawFn) -> list[tuple[str, int, str]]:
    return draw(
        st.lists(
            st.tuples(
                st.sampled_from(["insert", "delete", "map"]),
                st.integers(0, 40),
                st.text(min_size=1, max_size=5),
            ),
            max_size=25,
        )
    )


@settings(max_examples=60, deadline=None)
@given(edits())
def test_random_pycrdt_docs_decode_and_add_up(script: list[tuple[str, int, str]]) -> None:
    doc, updates = recording(5)
    doc["t"] = text = Text()
    doc["m"] = m = Map()
    for op, pos, value in script:
        current = str(text)
        # pycrdt indexes a Text in UTF-8 bytes: cut at character boundaries.
        start = len(current[:pos].encode())
        if op == "insert":
            text.insert(start, value)
        elif op == "delete" and current:
            stop = len(current[: pos + len(value)].encode())
            if stop > start:
                del text[start:stop]
        else:
            m[value] = pos
    for u in updates:
        assert update_clients(u) == frozenset(s.client for s in decode_update(u).structs)
    whole = decode_update(doc.get_update())
    assert lengths_by_client(whole) == decode_state_vector(doc.get_state())


# --- real updates: stock Yjs


@pytest.fixture(scope="module")
def yjs_text() -> dict[str, Any]:
    config = {
        "kind": "text",
        "clients": {"alice": 1001, "bob": 2_000_000_002},
        "ops": [
            {"who": "alice", "op": "type", "pos": 0, "text": "Salut 👋 é"},
            {"who": "bob", "op": "paste", "pos": 0, "text": "🎉 Bob: "},
            {"who": "bob", "op": "delete", "pos": 7, "len": 2},
            {"who": "alice", "op": "format", "pos": 0, "len": 3, "marks": {"bold": True}},
        ],
    }
    result: dict[str, Any] = node_json("yjs_updates.mjs", config)
    return result


@pytest.fixture(scope="module")
def yjs_xml() -> dict[str, Any]:
    config = {
        "kind": "xml",
        "clients": {"alice": 1001, "bob": 2002},
        "ops": [
            {"who": "alice", "op": "block", "at": 0, "tag": "heading", "attrs": {"level": 1}},
            {"who": "alice", "op": "type", "block": 0, "pos": 0, "text": "Titre"},
            {"who": "bob", "op": "block", "at": 1, "tag": "paragraph"},
            {
                "who": "bob",
                "op": "type",
                "block": 1,
                "pos": 0,
                "text": "gras",
                "marks": {"bold": {}},
            },
        ],
    }
    result: dict[str, Any] = node_json("yjs_updates.mjs", config)
    return result


def test_yjs_emoji_is_two_clock_units(yjs_text: dict[str, Any]) -> None:
    keystrokes = [decode_update(bytes.fromhex(u["hex"])) for u in yjs_text["updates"][:9]]
    wave = keystrokes[6].structs[0]
    assert (wave.text, wave.length, wave.clock) == ("👋", 2, 6)
    assert keystrokes[7].structs[0].clock == 8  # the next keystroke starts after both units
    assert keystrokes[0].structs[0].parent_root == "content"


@pytest.mark.parametrize("session", ["yjs_text", "yjs_xml"])
def test_yjs_struct_lengths_add_up_to_its_state_vector(
    session: str, request: pytest.FixtureRequest
) -> None:
    data = request.getfixturevalue(session)
    expected = decode_state_vector(bytes.fromhex(data["stateVector"]))
    assert lengths_by_client(decode_update(bytes.fromhex(data["state"]))) == expected
    total: dict[int, int] = {}
    for u in data["updates"]:
        for client, n in lengths_by_client(decode_update(bytes.fromhex(u["hex"]))).items():
            total[client] = total.get(client, 0) + n
    assert total == expected


def test_yjs_writes_tiptap_blocks_and_marks(yjs_xml: dict[str, Any]) -> None:
    structs = [
        s for u in yjs_xml["updates"] for s in decode_update(bytes.fromhex(u["hex"])).structs
    ]
    elements = [s.name for s in structs if s.type_ref is TypeRef.XML_ELEMENT]
    assert elements == ["heading", "paragraph"]
    assert next(s for s in structs if s.parent_sub == "level").kind is Kind.ANY
    assert ("bold", "{}") in [(s.format_key, s.format_value) for s in structs]
    state = decode_update(bytes.fromhex(yjs_xml["state"]))
    assert lengths_by_client(state) == decode_state_vector(bytes.fromhex(yjs_xml["stateVector"]))


def test_yjs_delete_set(yjs_text: dict[str, Any]) -> None:
    deletion = decode_update(bytes.fromhex(yjs_text["updates"][-2]["hex"]))
    assert deletion.structs == ()
    assert deletion.deletes == ((1001, 0, 2),)  # bob deleted alice's "Sa"


# --- update_clients


def test_update_clients_of_a_keystroke_reads_the_header() -> None:
    assert update_clients(update((2**40 + 3, 7, [b"\x84" + vu(1) + vu(2) + vs("a")]))) == {
        2**40 + 3
    }


def test_update_clients_of_delete_only_and_empty_updates() -> None:
    assert update_clients(b"\x00\x01\x07\x01\x00\x01") == frozenset()
    assert update_clients(b"\x00\x00") == frozenset()


def test_update_clients_of_several_groups_decodes_them() -> None:
    u = update((9, 0, [string_in_root("a")]), (7, 0, [string_in_root("b")]))
    assert update_clients(u) == {7, 9}
    with pytest.raises(ProtocolError):
        update_clients(u[:-3])


def test_update_clients_refuses_a_broken_header() -> None:
    with pytest.raises(ProtocolError):
        update_clients(b"\x01\x01" + b"\xff" * 9)


def test_update_clients_is_fast_for_a_keystroke(yjs_text: dict[str, Any]) -> None:
    keystroke = bytes.fromhex(yjs_text["updates"][3]["hex"])
    assert update_clients(keystroke) == {1001}
    n = 20_000
    per_call = timeit.timeit(lambda: update_clients(keystroke), number=n) / n
    assert per_call < 20e-6, per_call  # ≈ 1 µs on a laptop; generous for shared CI cores


# --- hostile input


def test_two_mib_of_ff_fails_fast() -> None:
    ff = b"\xff" * (2 << 20)
    behind_a_header = b"\x01\x01\x07\x00" + ff
    t0 = time.perf_counter()
    for data in (ff, behind_a_header):
        with pytest.raises(ProtocolError):
            decode_update(data)
    with pytest.raises(ProtocolError):
        update_clients(ff)
    # The fast path reads the header only: pycrdt refuses the structs when it applies them.
    assert update_clients(behind_a_header) == {7}
    assert time.perf_counter() - t0 < 0.5


def test_huge_counts_and_deep_nesting_fail_fast() -> None:
    hostile = [
        vu(2**50) + b"\x00" * (2 << 20),
        b"\x01" + vu(2**50) + b"\x07\x00" + b"\x00\x01" * (1 << 20),
        update((7, 0, [b"\x08" + ROOT_T + vu(1) + b"\x75\x01" * (1 << 20)])),
        update((7, 0, [b"\x06" + ROOT_T + vs("k") + vs("[" * (1 << 20))])),
    ]
    t0 = time.perf_counter()
    for data in hostile:
        with pytest.raises(ProtocolError):
            decode_update(data)
    assert time.perf_counter() - t0 < 0.5


def valid_updates() -> list[bytes]:
    doc, updates = recording(77)
    doc["t"] = text = Text()
    text += "déjà 👋"
    del text[1:3]
    doc["x"] = fragment = XmlFragment()
    fragment.children.append(XmlElement("paragraph", {"level": 1}, [XmlText("hé")]))
    doc["m"] = m = Map()
    m["k"] = {"a": [1, 2.5, None, "s", b"\x00"]}
    return [*updates, doc.get_update()]


VALID = valid_updates()


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_garbage_raises_only_protocol_error(data: bytes) -> None:
    for fn in (decode_update, update_clients):
        try:
            fn(data)
        except ProtocolError:
            pass


@settings(max_examples=300)
@given(st.sampled_from(VALID), st.data())
def test_mutated_updates_raise_only_protocol_error(valid: bytes, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(valid) - 1))
    byte = data.draw(st.integers(0, 255))
    mutated = valid[:i] + bytes([byte]) + valid[i + 1 :]
    try:
        decode_update(mutated)
    except ProtocolError:
        pass


@pytest.mark.parametrize("valid", VALID, ids=range(len(VALID)))
def test_every_prefix_of_a_valid_update_is_refused(valid: bytes) -> None:
    decode_update(valid)
    for n in range(len(valid)):
        with pytest.raises(ProtocolError):
            decode_update(valid[:n])
