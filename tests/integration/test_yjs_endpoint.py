"""The /yjs endpoint against a real server process, with real sockets."""

from __future__ import annotations

from pathlib import Path

import httpx
import jwt
import pytest

from server.sync.messages import update_frame
from tests.support.server import AtelierServer, make_server
from tests.support.stored import compacted, stored_doc, text_of
from tests.support.yclient import YClient, eventually

pytestmark = pytest.mark.integration


def url(
    server: AtelierServer,
    user: str | None,
    doc: str = "rapport",
    room: str = "2nde-a-g1",
    token: str | None = None,
) -> str:
    base = f"{server.ws_url}/yjs/{room}/{doc}"
    if token is None and user is not None:
        token = server.token(user)
    return base if token is None else f"{base}?token={token}"


async def test_two_students_co_edit_and_converge(atelier: AtelierServer, doc: str) -> None:
    a = await YClient(url(atelier, "s-01", doc)).connect()
    b = await YClient(url(atelier, "s-02", doc)).connect()
    await a.type("Bonjour ")
    await b.type("tout le monde", index=0)
    await eventually(lambda: a.content() == b.content() and len(a.content()) == 21)
    assert sorted(a.content()) == sorted("Bonjour tout le monde")
    await a.close()
    await b.close()


async def test_late_joiner_gets_the_whole_doc(atelier: AtelierServer, doc: str) -> None:
    a = await YClient(url(atelier, "s-01", doc)).connect()
    for i in range(50):
        await a.type(f"{i},")
    late = await YClient(url(atelier, "s-03", doc)).connect()
    await eventually(lambda: late.content() == a.content())
    await a.close()
    await late.close()


async def test_doc_survives_unload_and_reload(atelier: AtelierServer, doc: str) -> None:
    a = await YClient(url(atelier, "s-01", doc)).connect()
    await a.type("gardé en base")
    await a.round_trip()  # the server has the edit
    await a.close()
    # The last client left: once the unload delay (0.2 s in tests) passes, the unload
    # flushes and folds the log into the snapshot; that fold is its trace in the database.
    await eventually(lambda: compacted(atelier.database_url, "2nde-a-g1", doc))
    stored = await stored_doc(atelier.database_url, "2nde-a-g1", doc)
    assert text_of(stored) == "gardé en base"
    b = await YClient(url(atelier, "s-02", doc)).connect()
    await eventually(lambda: b.content() == "gardé en base")
    await b.close()


async def test_awareness_echoed_seen_and_removed_on_close(atelier: AtelierServer, doc: str) -> None:
    a = await YClient(url(atelier, "s-01", doc)).connect()
    b = await YClient(url(atelier, "s-02", doc)).connect()
    await a.set_awareness(1, {"user": {"name": "Léa"}})
    await eventually(lambda: a.doc.client_id in a.awareness)  # echoed to its sender
    await eventually(lambda: b.awareness.get(a.doc.client_id) == {"user": {"name": "Léa"}})
    late = await YClient(url(atelier, "s-03", doc)).connect()
    await eventually(lambda: a.doc.client_id in late.awareness)  # sent on join
    await a.close()
    await eventually(lambda: a.doc.client_id not in b.awareness)
    await eventually(lambda: a.doc.client_id not in late.awareness)
    await b.close()
    await late.close()


# --- refusals ---


@pytest.mark.parametrize(
    "token",
    [
        None,
        "not-a-jwt",
        jwt.encode(
            {"sub": "s-01", "exp": 4102444800}, "wrong-secret-wrong-secret-wrong-secret", "HS256"
        ),
    ],
    ids=["missing", "garbage", "forged"],
)
async def test_bad_token_closes_4401(atelier: AtelierServer, token: str | None, doc: str) -> None:
    c = YClient(url(atelier, None, doc, token=token))
    await c.connect(wait_synced=False)
    assert await c.wait_closed() == 4401
    assert not c.synced.is_set()


async def test_expired_token_closes_4401(atelier: AtelierServer, doc: str) -> None:
    c = YClient(url(atelier, None, doc, token=atelier.token("s-01", ttl=-60)))
    await c.connect(wait_synced=False)
    assert await c.wait_closed() == 4401


async def test_unknown_user_closes_4401(atelier: AtelierServer, doc: str) -> None:
    c = YClient(url(atelier, "nobody", doc))
    await c.connect(wait_synced=False)
    assert await c.wait_closed() == 4401


@pytest.mark.parametrize(
    ("user", "room"),
    [
        ("s-07", "2nde-a-g1"),  # a student of another group
        ("s-31", "2nde-a"),  # a student of another class
        ("p-01", "2nde-a-g1"),  # a parent: never a group room
        ("a-admin", "2nde-a"),  # admin: roster only, no content
        ("t-durand", "2nde-a-g1"),  # teacher of another class
        ("s-01", "no-such-room"),
    ],
)
async def test_no_access_gets_permission_denied_then_4403(
    atelier: AtelierServer, user: str, room: str, doc: str
) -> None:
    c = YClient(url(atelier, user, doc, room=room))
    await c.connect(wait_synced=False)
    assert await c.wait_closed() == 4403
    assert c.denied and c.denied[0][:2] == b"\x02\x00"  # y-protocols auth: permission denied
    assert not c.synced.is_set()


async def test_invalid_doc_name_closes_4400(atelier: AtelierServer, doc: str) -> None:
    c = YClient(url(atelier, "s-01", "Rapport!"))
    await c.connect(wait_synced=False)
    assert await c.wait_closed() == 4400


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\x00",
        b"\x07\x00",  # unknown message type
        b"\x00\x02\x05abc",  # length prefix past the end
        b"\x00\x02\x03\x01\x02\x03",  # an update pycrdt refuses
        b"\x01\x05\x01\x01\x01\x01[",  # awareness with broken JSON
        b"\x00\x00\x01\x00junk",  # trailing bytes
    ],
)
async def test_malformed_frame_closes_4400_and_room_goes_on(
    atelier: AtelierServer, frame: bytes, doc: str
) -> None:
    good = await YClient(url(atelier, "s-01", doc)).connect()
    await good.type("avant ")
    bad = await YClient(url(atelier, "s-02", doc)).connect()
    await bad.send_raw(frame)
    assert await bad.wait_closed() == 4400
    other = await YClient(url(atelier, "s-03", doc)).connect()
    await good.type("après")
    await eventually(lambda: other.content() == "avant après")
    await good.close()
    await other.close()


async def test_text_frame_closes_4400(atelier: AtelierServer, doc: str) -> None:
    c = await YClient(url(atelier, "s-01", doc)).connect()
    await c.ws.send("hello")
    assert await c.wait_closed() == 4400


async def test_oversized_frame_closes_1009(tmp_path: Path) -> None:
    server = make_server(tmp_path, ATELIER_MAX_FRAME_BYTES="65536")
    server.start()
    try:
        good = await YClient(url(server, "s-01")).connect()
        big = await YClient(url(server, "s-02")).connect()
        await big.send_raw(update_frame(b"\x00" * 70000))
        assert await big.wait_closed() == 1009
        await good.type("toujours là")
        third = await YClient(url(server, "s-03")).connect()
        await eventually(lambda: third.content() == "toujours là")
        await good.close()
        await third.close()
    finally:
        server.stop()


# --- read-only ---


async def _assert_write_refused(
    atelier: AtelierServer, writer: YClient, watcher: YClient, frame_kind: str
) -> None:
    from pycrdt import Doc, Text

    from server.sync.messages import sync_step2_frame

    scratch = Doc()
    scratch.get("content", type=Text).insert(0, "intrus")
    update = scratch.get_update()
    frame = update_frame(update) if frame_kind == "update" else sync_step2_frame(update)
    await writer.send_raw(frame)
    # Answered, not closed: the writer's next round trip is answered after the refusal.
    await writer.round_trip()
    assert len(writer.denied) == 1 and b"read-only" in writer.denied[0]
    assert writer.close_code is None
    # Never applied: the watcher's round trip, sent after the refusal was handled, is
    # answered after anything fanned out to it before (and its step 2 would carry the
    # edit too); a newcomer's initial sync is the server's whole doc.
    await watcher.round_trip()
    assert "intrus" not in watcher.content()
    fresh = await YClient(watcher.url).connect()
    assert fresh.synced.is_set()
    assert "intrus" not in fresh.content()
    await fresh.close()


@pytest.mark.parametrize("frame_kind", ["update", "step2"])
async def test_student_is_read_only_in_class_room(
    atelier: AtelierServer, frame_kind: str, doc: str
) -> None:
    teacher = await YClient(url(atelier, "t-martin", doc, room="2nde-a")).connect()
    await teacher.type("Consignes du jour")
    student = await YClient(url(atelier, "s-05", doc, room="2nde-a")).connect()
    await eventually(lambda: student.content() == "Consignes du jour")
    await _assert_write_refused(atelier, student, teacher, frame_kind)
    await teacher.close()
    await student.close()


@pytest.mark.parametrize("frame_kind", ["update", "step2"])
async def test_parent_reads_class_doc_but_cannot_write(
    atelier: AtelierServer, frame_kind: str, doc: str
) -> None:
    teacher = await YClient(url(atelier, "t-martin", doc, room="2nde-a")).connect()
    await teacher.type("Sortie au musée")
    parent = await YClient(url(atelier, "p-01", doc, room="2nde-a")).connect()
    await eventually(lambda: parent.content() == "Sortie au musée")
    await _assert_write_refused(atelier, parent, teacher, frame_kind)
    await teacher.close()
    await parent.close()


async def test_locked_doc_is_read_only_for_students_not_teacher(
    atelier: AtelierServer, doc: str
) -> None:
    student = await YClient(url(atelier, "s-01", doc)).connect()
    teacher = await YClient(url(atelier, "t-martin", doc)).connect()
    await student.type("brouillon ")
    await eventually(lambda: teacher.content() == "brouillon ")
    lock_url = f"{atelier.http_url}/api/rooms/2nde-a-g1/docs/{doc}/lock"
    async with httpx.AsyncClient() as http:
        r = await http.put(
            lock_url,
            json={"locked": True},
            headers={"Authorization": f"Bearer {atelier.token('s-01')}"},
        )
        assert r.status_code == 403  # a student cannot lock
        r = await http.put(
            lock_url,
            json={"locked": True},
            headers={"Authorization": f"Bearer {atelier.token('t-martin')}"},
        )
        assert r.status_code == 200 and r.json() == {"locked": True}
    await _assert_write_refused(atelier, student, teacher, "update")
    await teacher.type("corrigé")
    await eventually(lambda: student.content() == "brouillon corrigé")
    await student.close()
    await teacher.close()


# --- operations ---


async def test_health_readiness_and_openapi(atelier: AtelierServer, doc: str) -> None:
    async with httpx.AsyncClient(base_url=atelier.http_url) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        ready = await http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["database"] == "ok"
        spec = (await http.get("/api/openapi.json")).json()
        assert "/api/rooms/{room_id}/docs/{doc_name}/lock" in spec["paths"]


async def test_tokens_never_logged(atelier: AtelierServer, doc: str) -> None:
    token = atelier.token("s-01")
    mark = len(atelier.log())  # what this test's requests log comes after this
    c = await YClient(url(atelier, None, doc, token=token)).connect()
    await c.close()
    bad = YClient(url(atelier, None, doc, token="leaky.token.value"))
    await bad.connect(wait_synced=False)
    await bad.wait_closed()
    async with httpx.AsyncClient(base_url=atelier.http_url) as http:
        await http.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        await http.get(f"/api/me?token={token}")

    def logged_all() -> bool:
        ours = atelier.log()[mark:]
        return (
            ours.count(f"/yjs/2nde-a-g1/{doc}") >= 2  # both sockets
            and "GET /api/me HTTP" in ours
            and "GET /api/me?token=" in ours
        )

    # Every request above is in the log, so the absence checks below read all of it.
    await eventually(logged_all)
    logs = atelier.log()
    assert token not in logs and "leaky.token.value" not in logs
    assert "token=[redacted]" in logs[mark:]


async def test_room_docs_members_and_class_overview(atelier: AtelierServer, doc: str) -> None:
    writer = await YClient(url(atelier, "s-01", doc)).connect()
    await writer.type("avancée du groupe 1")
    await writer.round_trip()
    await writer.close()
    async with httpx.AsyncClient(base_url=atelier.http_url) as http:
        student = {"Authorization": f"Bearer {atelier.token('s-01')}"}

        async def listed() -> bool:
            body = (await http.get("/api/rooms/2nde-a-g1/docs", headers=student)).json()
            return doc in [d["name"] for d in body["docs"]]

        await eventually(listed)  # once the write-behind committed the edit
        body = (await http.get("/api/rooms/2nde-a-g1/docs", headers=student)).json()
        assert doc in [d["name"] for d in body["docs"]]
        assert [m["id"] for m in body["members"] if m["role"] == "student"] == [
            f"s-0{i}" for i in range(1, 7)
        ]
        assert (await http.get("/api/classes/2nde-a/overview", headers=student)).status_code == 403
        teacher = {"Authorization": f"Bearer {atelier.token('t-martin')}"}
        overview = (await http.get("/api/classes/2nde-a/overview", headers=teacher)).json()
        groups = {g["id"]: g for g in overview["groups"]}
        assert list(groups) == [f"2nde-a-g{i}" for i in range(1, 6)]
        assert groups["2nde-a-g1"]["last_activity"]["doc"] is not None
        assert len(groups["2nde-a-g2"]["members"]) == 6
        # Demo sign-in is off unless demo mode is on.
        assert (await http.get("/api/demo/users")).status_code == 404
        assert (await http.post("/api/demo/token", json={"user": "t-martin"})).status_code == 404
