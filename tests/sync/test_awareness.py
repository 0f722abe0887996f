"""The awareness table against y-protocols' awareness.js rules, server side.

A state replaces the held one when its clock is higher; an equal clock with a null
state removes it; a lower clock is ignored; states not renewed within the timeout are
dropped. What the table encodes must read back the same through our decoder and
through pycrdt's ``Awareness`` (a stock client's reading).
"""

from __future__ import annotations

from pycrdt import Awareness, Doc

from server.sync.awareness import AwarenessTable
from server.sync.messages import AwarenessEntry, AwarenessMessage, awareness_frame, decode
from tests.sync.peers import awareness_update


def ids(accepted: list[AwarenessEntry]) -> list[int]:
    """The client ids of the accepted entries, in order."""
    return [e.client_id for e in accepted]


def entries(*items: tuple[int, int, str]) -> tuple[AwarenessEntry, ...]:
    msg = decode(awareness_frame(awareness_update(*items)))
    assert isinstance(msg, AwarenessMessage)
    return msg.entries


def read_back(payload: bytes | None) -> list[tuple[int, int, object]]:
    assert payload is not None
    return [(e.client_id, e.clock, e.state) for e in entries_of(payload)]


def entries_of(payload: bytes) -> tuple[AwarenessEntry, ...]:
    msg = decode(awareness_frame(payload))
    assert isinstance(msg, AwarenessMessage)
    return msg.entries


# --- Clock rules -------------------------------------------------------------------------


def test_first_state_is_taken(table: AwarenessTable) -> None:
    assert ids(table.apply(entries((1, 1, '{"n":"a"}')), now=0)) == [1]
    assert table.state(1) == {"n": "a"}
    assert len(table) == 1


def test_higher_clock_replaces(table: AwarenessTable) -> None:
    table.apply(entries((1, 1, '{"n":"a"}')), now=0)
    assert ids(table.apply(entries((1, 2, '{"n":"b"}')), now=1)) == [1]
    assert table.state(1) == {"n": "b"}


def test_clock_may_jump(table: AwarenessTable) -> None:
    table.apply(entries((1, 1, '{"n":"a"}')), now=0)
    assert ids(table.apply(entries((1, 1000, '{"n":"b"}')), now=1)) == [1]
    assert table.state(1) == {"n": "b"}


def test_lower_clock_is_ignored(table: AwarenessTable) -> None:
    table.apply(entries((1, 5, '{"n":"new"}')), now=0)
    assert ids(table.apply(entries((1, 4, '{"n":"old"}')), now=1)) == []
    assert table.state(1) == {"n": "new"}


def test_lower_clock_null_does_not_remove(table: AwarenessTable) -> None:
    table.apply(entries((1, 5, "{}")), now=0)
    assert ids(table.apply(entries((1, 4, "null")), now=1)) == []
    assert table.state(1) == {}
    assert len(table) == 1


def test_equal_clock_with_null_removes(table: AwarenessTable) -> None:
    table.apply(entries((1, 3, '{"n":"a"}')), now=0)
    assert ids(table.apply(entries((1, 3, "null")), now=1)) == [1]
    assert table.state(1) is None
    assert len(table) == 0
    assert table.full_update() is None


def test_equal_clock_with_a_state_changes_nothing(table: AwarenessTable) -> None:
    table.apply(entries((1, 3, '{"n":"a"}')), now=0)
    assert ids(table.apply(entries((1, 3, '{"n":"b"}')), now=1)) == []
    assert table.state(1) == {"n": "a"}


def test_equal_clock_null_after_removal_is_not_news(table: AwarenessTable) -> None:
    table.apply(entries((1, 3, "{}")), now=0)
    table.apply(entries((1, 3, "null")), now=1)
    assert ids(table.apply(entries((1, 3, "null")), now=2)) == []


def test_higher_clock_null_removes(table: AwarenessTable) -> None:
    """What a closing y-websocket client sends: setLocalState(null) bumps the clock."""
    table.apply(entries((1, 3, "{}")), now=0)
    assert ids(table.apply(entries((1, 4, "null")), now=1)) == [1]
    assert table.state(1) is None


def test_removed_client_comes_back_with_a_higher_clock(table: AwarenessTable) -> None:
    table.apply(entries((1, 3, '{"n":1}')), now=0)
    table.remove([1])
    assert ids(table.apply(entries((1, 3, '{"n":2}')), now=1)) == []  # the old clock is kept
    assert ids(table.apply(entries((1, 4, '{"n":2}')), now=1)) == [1]
    assert table.state(1) == {"n": 2}


def test_entries_of_one_message_are_independent(table: AwarenessTable) -> None:
    table.apply(entries((1, 5, "{}"), (2, 5, "{}")), now=0)
    accepted = ids(table.apply(entries((1, 6, '{"a":1}'), (2, 4, '{"b":1}'), (3, 1, "{}")), now=1))
    assert accepted == [1, 3]
    assert (table.state(1), table.state(2), table.state(3)) == ({"a": 1}, {}, {})


def test_unknown_client_state(table: AwarenessTable) -> None:
    assert table.state(99) is None


# --- Removal and expiry ------------------------------------------------------------------


def test_remove_encodes_null_states_with_the_same_clock(table: AwarenessTable) -> None:
    table.apply(entries((1, 7, "{}"), (2, 2, "{}")), now=0)
    assert read_back(table.remove([1, 2])) == [(1, 7, None), (2, 2, None)]
    assert len(table) == 0


def test_remove_unknown_or_already_removed_is_nothing(table: AwarenessTable) -> None:
    assert table.remove([1]) is None
    table.apply(entries((1, 1, "{}")), now=0)
    assert table.remove([1]) is not None
    assert table.remove([1]) is None


def test_removal_is_understood_by_a_pycrdt_client(table: AwarenessTable) -> None:
    table.apply(entries((10, 4, '{"user":"a"}'), (11, 1, '{"user":"b"}')), now=0)
    client = Awareness(Doc(client_id=1))
    full = table.full_update()
    assert full is not None
    client.apply_awareness_update(full, "server")
    assert client.states[10] == {"user": "a"}
    removal = table.remove([10])
    assert removal is not None
    client.apply_awareness_update(removal, "server")
    assert 10 not in client.states
    assert client.states[11] == {"user": "b"}


def test_expire_drops_states_older_than_the_timeout(table: AwarenessTable) -> None:
    table.apply(entries((1, 1, "{}")), now=0)
    table.apply(entries((2, 1, "{}")), now=20)
    assert table.expire(now=30, timeout=30) is None  # exactly the timeout: still there
    assert read_back(table.expire(now=31, timeout=30)) == [(1, 1, None)]
    assert table.state(1) is None and table.state(2) == {}
    assert read_back(table.expire(now=51, timeout=30)) == [(2, 1, None)]
    assert len(table) == 0


def test_renewal_with_a_higher_clock_postpones_expiry(table: AwarenessTable) -> None:
    table.apply(entries((1, 1, "{}")), now=0)
    table.apply(entries((1, 2, "{}")), now=25)
    assert table.expire(now=40, timeout=30) is None
    assert table.expire(now=56, timeout=30) is not None


def test_renewal_repeating_the_clock_postpones_expiry(table: AwarenessTable) -> None:
    table.apply(entries((1, 1, "{}")), now=0)
    assert ids(table.apply(entries((1, 1, "{}")), now=25)) == []
    assert table.expire(now=40, timeout=30) is None


def test_expired_client_cannot_be_revived_by_its_old_clock(table: AwarenessTable) -> None:
    table.apply(entries((1, 1, "{}")), now=0)
    table.expire(now=100, timeout=30)
    assert ids(table.apply(entries((1, 1, "{}")), now=101)) == []
    assert ids(table.apply(entries((1, 2, "{}")), now=101)) == [1]


def test_a_large_table_forgets_removed_clients() -> None:
    table = AwarenessTable()
    for cid in range(5000):
        table.apply(entries((cid, 1, "{}")), now=0)
    table.remove(list(range(4000)))
    assert len(table) == 1000
    # Forgotten: a removed client is taken back even at the clock it left with.
    assert ids(table.apply(entries((0, 1, "{}")), now=1)) == [0]


# --- Full update for newcomers -----------------------------------------------------------


def test_full_update_of_an_empty_table_is_none(table: AwarenessTable) -> None:
    assert table.full_update() is None


def test_full_update_holds_every_present_state(table: AwarenessTable) -> None:
    table.apply(entries((1, 3, '{"a":1}'), (2, 1, '{"b":2}'), (3, 9, "{}")), now=0)
    table.apply(entries((2, 1, "null")), now=1)
    assert read_back(table.full_update()) == [(1, 3, {"a": 1}), (3, 9, {})]


def test_full_update_forwards_json_text_verbatim(table: AwarenessTable) -> None:
    text = '{ "name" : "Noé",  "cursor": null }'
    table.apply(entries((300_000, 2, text)), now=0)
    full = table.full_update()
    assert full == awareness_update((300_000, 2, text))
    [entry] = entries_of(full)
    assert entry.raw == text


def test_full_update_is_read_by_pycrdt(table: AwarenessTable) -> None:
    table.apply(entries((5, 2, '{"user":{"name":"Zoé"}}'), (6, 1, '{"x":[1,2]}')), now=0)
    client = Awareness(Doc(client_id=1))
    full = table.full_update()
    assert full is not None
    client.apply_awareness_update(full, "server")
    assert client.states[5] == {"user": {"name": "Zoé"}}
    assert client.states[6] == {"x": [1, 2]}
    assert client.meta[5]["clock"] == 2


def test_full_update_of_more_clients_than_one_message_may_carry() -> None:
    """A doc with 100 people: the newcomer's full update holds them all."""
    table = AwarenessTable()
    for cid in range(100):
        table.apply(entries((cid, 1, f'{{"i":{cid}}}')), now=0)
    full = table.full_update()
    assert full is not None
    client = Awareness(Doc(client_id=10**6))
    client.apply_awareness_update(full, "server")
    assert {cid: s for cid, s in client.states.items() if cid < 100} == {
        cid: {"i": cid} for cid in range(100)
    }
