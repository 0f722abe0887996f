"""Chat delivery (live/room.py): every socket gets the room's messages in seq order, each
once, whatever order the bus brings them in; gaps are filled from the database; edits
go out at once; a socket reading its history misses nothing and sees nothing twice."""

from __future__ import annotations

import time
from collections.abc import Callable

from server.live.room import GAP_WAIT_S
from tests.live.conftest import Channel
from tests.support.inproc import until

Make = Callable[..., Channel]


async def test_messages_arriving_out_of_order_are_delivered_in_seq_order_once(
    channel: Make,
) -> None:
    room = channel()
    lea, tom = room.socket("s-01"), room.socket("s-02", "Tom")
    one, two, three = [await room.post(t) for t in ("un", "deux", "trois")]

    room.live.accept(three)
    assert lea.seen() == []  # held: 1 and 2 come first
    room.live.accept(one)
    assert lea.seen() == [(1, 1)]
    room.live.accept(two)
    room.live.accept(two)  # the bus may repeat itself
    room.live.accept(one)

    for screen in (lea, tom):
        assert screen.seen() == [(1, 1), (2, 1), (3, 1)]
        assert screen.texts() == ["un", "deux", "trois"]
    assert room.live.buffer == {}


async def test_a_gap_is_filled_from_the_database_after_a_short_wait(channel: Make) -> None:
    room = channel()
    lea = room.socket()
    one, _lost, three = [await room.post(t) for t in ("un", "deux", "trois")]

    room.live.accept(one)
    room.live.accept(three)  # 2 was lost by the bus
    held_at = time.monotonic()
    assert lea.seen() == [(1, 1)]

    await until(lambda: len(lea.seen()) == 3, "the gap filled")
    assert time.monotonic() - held_at >= GAP_WAIT_S - 0.02
    assert lea.texts() == ["un", "deux", "trois"]  # 3 once: from the buffer, not again


async def test_a_posted_message_is_delivered_here_and_relayed(channel: Make) -> None:
    room = channel()
    lea = room.socket()
    one = await room.post("coucou")

    room.live.posted(one)

    assert lea.seen() == [(1, 1)]
    assert room.published == [("chat", one)]


async def test_an_edit_of_a_delivered_message_goes_out_at_once(channel: Make) -> None:
    room = channel()
    lea = room.socket()
    one = await room.post("bonjuor")
    room.live.accept(one)

    room.live.accept(await room.edit(one, "bonjour"))
    room.live.accept(one)  # the first version again (a late bus message): dropped

    assert lea.seen() == [(1, 1), (1, 2)]
    assert lea.texts() == ["bonjuor", "bonjour"]


async def test_an_edit_of_a_held_message_replaces_it(channel: Make) -> None:
    room = channel()
    lea = room.socket()
    one, two = await room.post("un"), await room.post("duex")
    fixed = await room.edit(two, "deux")

    room.live.accept(two)  # held until 1 arrives
    room.live.accept(fixed)
    room.live.accept(two)  # an older version never replaces a newer one
    room.live.accept(one)

    assert lea.seen() == [(1, 1), (2, 2)]  # 2 once, in its last version
    assert lea.texts() == ["un", "deux"]


async def test_a_socket_reading_its_history_gets_no_duplicate_and_no_gap(channel: Make) -> None:
    room = channel()
    one, two = await room.post("un"), await room.post("deux")
    room.live.accept(one)
    room.live.accept(two)
    slow = room.socket("s-02", "Tom", high=None)  # attached, reading its history
    fast = room.socket("s-03", "Zoé", high=None)
    three = await room.post("trois")
    room.live.accept(three)  # delivered while they read: queued
    assert slow.seen() == fast.seen() == []

    slow.conn.start(2)  # its history was read before 3 was stored
    fast.conn.start(3)  # its history already holds 3
    room.live.accept(await room.post("quatre"))

    assert slow.seen() == [(3, 1), (4, 1)]
    assert fast.seen() == [(4, 1)]


async def test_the_load_drops_what_the_database_had_and_applies_mutes_relayed_meanwhile(
    channel: Make,
) -> None:
    room = channel(loaded=False)
    posted = [await room.post(t) for t in ("un", "deux", "trois", "quatre")]
    lea = room.socket()
    for message in posted[1:]:  # relayed while the node reads where the room stands
        room.live.accept(message)
    room.live.set_muted("s-02", True, "t-martin", relay=False)
    room.live.set_muted("s-01", False, "t-martin", relay=False)
    assert lea.seen() == []

    room.live.loaded(3, {"s-01", "s-03"})  # what the database said, read meanwhile

    assert lea.seen() == [(4, 1)]  # 2 and 3 were in the database (the history) already
    assert room.live.next_seq == 5
    assert room.live.buffer == {}
    assert room.live.muted == {"s-02", "s-03"}


async def test_a_gap_left_by_the_load_is_filled_without_waiting_for_the_next_message(
    channel: Make,
) -> None:
    """Bug (fixed): ``loaded`` drained the buffer but never watched the gap it left, so
    the room stayed stuck behind it until another message arrived (or the minute-long
    catch-up loop ran)."""
    room = channel(loaded=False)
    posted = [await room.post(t) for t in ("un", "deux", "trois", "quatre", "cinq")]
    lea = room.socket()
    room.live.accept(posted[4])  # 5 relayed while loading; 4's bus message was lost

    room.live.loaded(3, set())

    await until(lambda: room.live.next_seq == 6, "the gap after the load filled")
    assert lea.seen() == [(4, 1), (5, 1)]
