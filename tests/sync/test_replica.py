"""Replica.apply integrates updates that arrive out of causal order (pycrdt keeps only
part of its pending updates; see server/sync/replica.py)."""

from __future__ import annotations

import itertools
import random

import pytest
from pycrdt import Doc, Text

from server.sync.messages import ProtocolError
from server.sync.replica import Replica


def edits(script: list[tuple[int, str]]) -> tuple[str, list[bytes]]:
    doc: Doc = Doc()
    text = doc.get("t", type=Text)
    updates: list[bytes] = []
    doc.observe(lambda e: updates.append(e.update))
    for index, chars in script:
        text.insert(min(index, len(text)), chars)
    return str(text), updates


def replay(updates: list[bytes], order: list[int]) -> str:
    replica = Replica()
    for i in order:
        replica.apply(updates[i])
    return str(replica.doc.get("t", type=Text))


def test_the_known_case_converges() -> None:
    final, updates = edits([(0, "a"), (1, "b"), (0, "c"), (2, "d")])
    assert final == "cadb"
    assert replay(updates, [0, 2, 3, 1]) == "cadb"


def test_every_order_of_a_short_history_converges() -> None:
    final, updates = edits([(0, "a"), (1, "b"), (0, "c"), (2, "d"), (1, "e")])
    for order in itertools.permutations(range(len(updates))):
        assert replay(updates, list(order)) == final, order


@pytest.mark.parametrize("seed", range(20))
def test_random_histories_in_random_orders_converge(seed: int) -> None:
    rng = random.Random(seed)
    script = [(rng.randrange(0, 30), rng.choice("xyzw")) for _ in range(25)]
    final, updates = edits(script)
    order = list(range(len(updates)))
    rng.shuffle(order)
    assert replay(updates, order) == final


def test_a_refused_update_is_a_protocol_error_and_the_replica_goes_on() -> None:
    final, updates = edits([(0, "ok")])
    replica = Replica()
    with pytest.raises(ProtocolError):
        replica.apply(b"\x01\x02\x03")
    replica.apply(updates[0])
    assert str(replica.doc.get("t", type=Text)) == final
