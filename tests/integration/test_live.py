"""The room channel on one real node: chat, moderation, limits, presence, refusals."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgpack
import pytest
import websockets

from tests.support.liveclient import LiveClient
from tests.support.server import AtelierServer, make_server
from tests.support.yclient import eventually

pytestmark = pytest.mark.integration


def live(server: AtelierServer, user: str | None, room: str, token: str | None = None) -> str:
    token = token if token is not None else (server.token(user) if user else "")
    return f"{server.ws_url}/rooms/{room}/live?token={token}"


# Each test uses its own group room of class 1ere-b or 2nde-a, so that tests sharing the
# module's server never see each other's messages.


async def test_students_chat_both_ways_in_one_order(atelier: AtelierServer) -> None:
    room = "2nde-a-g2"  # s-07 … s-12
    a = await LiveClient(live(atelier, "s-07", room)).connect()
    b = await LiveClient(live(atelier, "s-08", room)).connect()
    assert a.hello is not None and a.hello["v"] == 1 and a.hello["access"]["chat"] is True
    for i in range(5):
        await a.send({"t": "post", "text": f"a{i}"})
        await b.send({"t": "post", "text": f"b{i}"})
    await eventually(lambda: len(a.messages) == 10 and len(b.messages) == 10)
    assert a.order == b.order == list(range(1, 11))  # same order, each once
    assert a.texts() == b.texts()
    late = await LiveClient(live(atelier, "s-09", room)).connect()
    assert late.texts() == a.texts()  # the history in the hello
    ok = await late.request({"t": "post", "text": "  <b>gras ?</b> **oui**\u202e  "})
    assert ok["t"] == "ok" and ok["seq"] == 11
    await eventually(lambda: 11 in b.order)
    # Stored and sent as text, trimmed, bidi override removed; never turned into HTML.
    assert b.texts()[-1] == "<b>gras ?</b> **oui**"
    for c in (a, b, late):
        await c.close()


async def test_edit_delete_and_moderation(atelier: AtelierServer) -> None:
    room = "2nde-a-g3"  # s-13 … s-18, teacher t-martin
    alice = await LiveClient(live(atelier, "s-13", room)).connect()
    bob = await LiveClient(live(atelier, "s-14", room)).connect()
    teacher = await LiveClient(live(atelier, "t-martin", room)).connect()
    first = await alice.request({"t": "post", "text": "premier jet"})
    mine = first["id"]
    assert (await alice.request({"t": "edit", "id": mine, "text": "version propre"}))["t"] == "ok"
    await eventually(lambda: bob.messages.get(mine, {}).get("text") == "version propre")
    assert bob.messages[mine]["version"] == 2 and bob.messages[mine]["edited_at"] is not None

    # A student cannot edit or delete another's message.
    assert (await bob.request({"t": "delete", "id": mine}))["code"] == "forbidden"
    assert (await bob.request({"t": "edit", "id": mine, "text": "hack"}))["code"] == "forbidden"
    assert (await bob.request({"t": "delete", "id": 999999}))["code"] == "not_found"
    # The teacher deletes any message; the text is gone for everyone.
    assert (await teacher.request({"t": "delete", "id": mine}))["t"] == "ok"
    await eventually(lambda: bob.messages[mine]["deleted"] is True)
    assert bob.messages[mine]["text"] == "" and bob.messages[mine]["deleted_by"] == "t-martin"

    # Mute: only the teacher; the muted student is told and cannot post; cannot unmute.
    said = (await bob.request({"t": "post", "text": "avant la sourdine"}))["id"]
    assert (await bob.request({"t": "mute", "user": "s-13"}))["code"] == "forbidden"
    assert (await teacher.request({"t": "mute", "user": "s-14"}))["t"] == "ok"
    await eventually(lambda: any(f["user"] == "s-14" and f["muted"] for f in bob.of_type("muted")))
    assert (await bob.request({"t": "post", "text": "je parle"}))["code"] == "muted"
    # Nor slip a message in by editing an old one.
    assert (await bob.request({"t": "edit", "id": said, "text": "contourné"}))["code"] == "muted"
    assert (await teacher.request({"t": "mute", "user": "t-martin"}))["code"] == "bad_request"
    assert (await bob.request({"t": "unmute", "user": "s-14"}))["code"] == "forbidden"
    again = await LiveClient(live(atelier, "s-14", room)).connect()
    assert again.hello is not None and again.hello["muted"] is True  # remembered
    assert (await teacher.request({"t": "unmute", "user": "s-14"}))["t"] == "ok"
    assert (await bob.request({"t": "post", "text": "merci"}))["t"] == "ok"
    for c in (alice, bob, teacher, again):
        await c.close()


async def test_parents_have_no_chat_and_admins_no_room(atelier: AtelierServer) -> None:
    parent = await LiveClient(live(atelier, "p-01", "2nde-a")).connect()
    teacher = await LiveClient(live(atelier, "t-martin", "2nde-a")).connect()
    assert (await teacher.request({"t": "mute", "user": "s-02"}))["t"] == "ok"
    assert (await teacher.request({"t": "unmute", "user": "s-02"}))["t"] == "ok"
    await teacher.close()
    assert parent.hello is not None
    assert parent.hello["access"]["chat"] is False and parent.hello["history"] == []
    assert "presence" not in parent.hello
    assert (await parent.request({"t": "post", "text": "bonjour"}))["code"] == "forbidden"
    # No names of students reach a parent: no presence, no mute notices.
    assert parent.of_type("muted") == [] and parent.of_type("presence_diff") == []
    await parent.close()
    group = await LiveClient(live(atelier, "p-01", "2nde-a-g1")).connect()
    assert await group.wait_closed() == 4403
    admin = await LiveClient(live(atelier, "a-admin", "2nde-a")).connect()
    assert await admin.wait_closed() == 4403
    stranger = await LiveClient(live(atelier, "s-31", "2nde-a")).connect()
    assert await stranger.wait_closed() == 4403
    nobody = await LiveClient(live(atelier, None, "2nde-a", token="forged")).connect()
    assert await nobody.wait_closed() == 4401
    async with httpx.AsyncClient(base_url=atelier.http_url) as http:
        r = await http.get(
            "/api/rooms/2nde-a/messages",
            headers={"Authorization": f"Bearer {atelier.token('p-01')}"},
        )
        assert r.status_code == 403


async def test_limits_answered_with_error_frames(atelier: AtelierServer) -> None:
    room = "2nde-a-g4"  # s-19 … s-24
    c = await LiveClient(live(atelier, "s-19", room)).connect()
    assert (await c.request({"t": "post", "text": "x" * 2001}))["code"] == "too_long"
    assert (await c.request({"t": "post", "text": " \u200b \n "}))["code"] == "empty"
    answers = [await c.request({"t": "post", "text": f"spam {i}"}) for i in range(8)]
    codes = [a.get("code", "ok") for a in answers]
    assert codes[:5] == ["ok"] * 5 and "rate_limited" in codes
    limited = next(a for a in answers if a.get("code") == "rate_limited")
    assert limited["retry_after"] > 0 and limited["message"]["fr"] and limited["message"]["en"]
    await c.close()


@pytest.mark.parametrize(
    "data",
    [
        b"\xc1",  # not msgpack
        msgpack.packb([1, 2, 3]),  # not a map
        msgpack.packb({"t": "explode"}),  # unknown type
        msgpack.packb({"t": "post"}),  # missing text
        msgpack.packb({"t": "post", "text": 42}),  # wrong type
        msgpack.packb({"t": "presence", "doc": "../etc"}),  # not a doc name
        "text frame",
    ],
)
async def test_malformed_frames_close_4400_and_the_room_goes_on(
    atelier: AtelierServer, data: bytes | str
) -> None:
    room = "2nde-a-g5"  # s-25 … s-30
    good = await LiveClient(live(atelier, "s-25", room)).connect()
    bad = await LiveClient(live(atelier, "s-26", room)).connect()
    await bad.send_raw(data)
    assert await bad.wait_closed() == 4400
    assert (await good.request({"t": "ping"}))["t"] == "pong"
    await eventually(lambda: "s-26" not in good.online())
    fresh = await LiveClient(live(atelier, "s-27", room)).connect()
    assert fresh.hello is not None and "s-25" in fresh.online()
    await fresh.close()
    await good.close()


async def test_oversized_frame_closes_1009(atelier: AtelierServer) -> None:
    room = "1ere-b-g5"  # s-55 … s-60
    good = await LiveClient(live(atelier, "s-55", room)).connect()
    big = await LiveClient(live(atelier, "s-56", room)).connect()
    # The server may close (1009) while the client is still writing the 3 MiB: the send
    # itself can then fail; what counts is the code the client was given.
    with contextlib.suppress(websockets.ConnectionClosed, OSError):
        await big.send_raw(msgpack.packb({"t": "post", "text": "x" * (3 * 1024 * 1024)}))
    try:
        assert await big.wait_closed() == 1009
        assert (await good.request({"t": "post", "text": "rien de cassé"}))["t"] == "ok"
    finally:
        await big.close()
        await good.close()


async def test_presence_two_tabs_one_person_and_typing(atelier: AtelierServer) -> None:
    room = "1ere-b-g1"  # s-31 … s-36
    tab1 = await LiveClient(live(atelier, "s-31", room)).connect()
    tab2 = await LiveClient(live(atelier, "s-31", room)).connect()
    other = await LiveClient(live(atelier, "s-32", room)).connect()
    await eventually(lambda: other.online() == {"s-31": 2, "s-32": 1})
    assert other.presence["s-31"]["name"]  # a display name, from the roster
    await tab1.send({"t": "presence", "doc": "rapport", "typing": True})
    await eventually(
        lambda: any(
            m["doc"] == "rapport" and m["typing"] for m in other.presence["s-31"]["metas"].values()
        )
    )
    await tab1.close()
    await eventually(lambda: other.online() == {"s-31": 1, "s-32": 1})  # still there: tab 2
    await tab2.close()
    await eventually(lambda: other.online() == {"s-32": 1})
    await other.close()


@pytest.fixture
def roomy_atelier(tmp_path: Path) -> Iterator[AtelierServer]:
    """A node whose chat limit lets one user post a dozen messages back to back.

    Teachers are rate limited too (burst 5, 20 a minute by default); that limit is
    checked by test_limits_answered_with_error_frames on the default settings.
    """
    server = make_server(tmp_path, ATELIER_CHAT_MESSAGES_PER_MINUTE="600", ATELIER_CHAT_BURST="50")
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_history_pages_over_rest(roomy_atelier: AtelierServer) -> None:
    atelier = roomy_atelier
    room = "1ere-b-g2"  # s-37 … s-42, teacher t-durand
    teacher = await LiveClient(live(atelier, "t-durand", room)).connect()
    for i in range(1, 13):
        assert (await teacher.request({"t": "post", "text": f"consigne {i}"}))["t"] == "ok"
    headers = {"Authorization": f"Bearer {atelier.token('s-37')}"}
    seen: list[str] = []
    before: int | None = None
    async with httpx.AsyncClient(base_url=atelier.http_url) as http:
        for _ in range(10):
            params = {"limit": "5", **({"before": str(before)} if before else {})}
            page = (
                await http.get(f"/api/rooms/{room}/messages", params=params, headers=headers)
            ).json()
            seen = [m["text"] for m in page["messages"]] + seen
            before = page["next_before"]
            if before is None:
                break
        bad = await http.get(f"/api/rooms/{room}/messages?limit=1000", headers=headers)
        assert bad.status_code == 400
    assert seen == [f"consigne {i}" for i in range(1, 13)]
    await teacher.close()


async def test_doc_saved_tells_the_room_what_is_stored(atelier: AtelierServer) -> None:
    from server.sync.messages import decode_state_vector
    from tests.support.yclient import YClient

    room = "1ere-b-g3"  # s-43 … s-48
    channel = await LiveClient(live(atelier, "s-43", room)).connect()
    writer = await YClient(
        f"{atelier.ws_url}/yjs/{room}/rapport?token={atelier.token('s-43')}"
    ).connect()
    await writer.type("Introduction")
    mine = writer.doc.client_id
    local_clock = decode_state_vector(writer.doc.get_state())[mine]

    def saved_clock() -> int:
        events = [
            f
            for f in channel.of_type("event")
            if f["kind"] == "doc_saved" and f["doc"] == "rapport"
        ]
        return max((decode_state_vector(e["sv"]).get(mine, 0) for e in events), default=0)

    await eventually(lambda: saved_clock() >= local_clock, timeout=5)
    await writer.close()
    await channel.close()
