"""The one gate before a post or an edit (``LiveRoom.gate``), in this order: muted, then
the text (a refused text spends no token), then the rate."""

from __future__ import annotations

from collections.abc import Callable

from server.live.protocol import MESSAGE_CHARS
from tests.live.conftest import Channel

Make = Callable[..., Channel]


async def test_a_muted_student_is_refused_first_whatever_the_text(channel: Make) -> None:
    room = channel()
    lea = room.socket("s-01")
    room.live.set_muted("s-01", True, "t-martin", relay=False)

    assert room.live.gate(lea.conn, "bonjour") == ("muted", None)
    assert room.live.gate(lea.conn, "   ") == ("muted", None)
    assert room.live.gate(lea.conn, "x" * (MESSAGE_CHARS + 1)) == ("muted", None)
    room.live.set_muted("s-01", False, "t-martin", relay=False)
    assert room.live.gate(lea.conn, "bonjour") == "bonjour"


async def test_the_text_is_cleaned_then_checked(channel: Make) -> None:
    room = channel()
    lea = room.socket()

    assert room.live.gate(lea.conn, "  Cafe\u0301\u202e !\x07 \n") == "Café !"
    assert room.live.gate(lea.conn, " \u200b\x00 \t") == ("empty", None)
    assert room.live.gate(lea.conn, "é" * (MESSAGE_CHARS + 1)) == ("too_long", None)
    assert room.live.gate(lea.conn, "e\u0301" * MESSAGE_CHARS) == "é" * MESSAGE_CHARS


async def test_refused_texts_spend_no_token_and_the_rate_comes_last(channel: Make) -> None:
    room = channel(per_minute=20, burst=3)
    lea = room.socket("s-01")
    tom = room.socket("s-02", "Tom")
    room.live.set_muted("s-01", True, "t-martin", relay=False)
    for _ in range(10):
        room.live.gate(lea.conn, "muet")
    room.live.set_muted("s-01", False, "t-martin", relay=False)
    for _ in range(10):
        room.live.gate(lea.conn, "")
        room.live.gate(lea.conn, "x" * (MESSAGE_CHARS + 1))

    assert [room.live.gate(lea.conn, f"n° {i}") for i in range(3)] == ["n° 0", "n° 1", "n° 2"]
    assert room.live.gate(lea.conn, "encore") == ("rate_limited", 3.0)  # 20/min: one per 3 s
    assert room.live.gate(lea.conn, "") == ("empty", None)  # the text is still checked first
    assert room.live.gate(tom.conn, "moi") == "moi"  # the bucket is the user's own
