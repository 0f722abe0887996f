"""live/names.py: how a room names its students under each policy."""

from __future__ import annotations

from server.live.names import initial, pseudonym, pseudonym_key, shown_name

KEY = pseudonym_key("a-secret")


def test_a_pseudonym_is_stable_per_room_and_differs_between_rooms() -> None:
    a = pseudonym(KEY, "2nde-a-g1", "s-01")
    assert a == pseudonym(KEY, "2nde-a-g1", "s-01")
    assert a != pseudonym(KEY, "2nde-a-g2", "s-01")
    assert a != pseudonym(pseudonym_key("another-secret"), "2nde-a-g1", "s-01")
    # A class's thirty students get thirty pseudonyms here (the space is ~52,000).
    names = {pseudonym(KEY, "2nde-a", f"s-{n:02d}") for n in range(1, 31)}
    assert len(names) == 30


def test_initial_and_who_is_renamed() -> None:
    assert initial("Léa Martin") == "Léa M."
    assert initial("Léa") == "Léa"
    assert initial("  ") == "  "
    assert shown_name("initial", KEY, "r", "s-01", "student", "Léa Martin") == "Léa M."
    assert shown_name("pseudonym", KEY, "r", "t-1", "teacher", "M. Martin") == "M. Martin"
    assert shown_name("full", KEY, "r", "s-01", "student", "Léa Martin") == "Léa Martin"
    assert shown_name("pseudonym", KEY, "r", "s-01", "student", "Léa") == pseudonym(
        KEY, "r", "s-01"
    )
