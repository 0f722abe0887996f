"""Assignments against a real server: publish, hand in, the deadline, feedback, return,
the notification feed and the ENT webhook (a real HTTP receiver).

Python y-websocket clients (pycrdt) edit the works' docs; every check reads what the
server holds (a fresh client, REST), never the editing client's own replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pycrdt import XmlFragment

from tests.support.liveclient import LiveClient
from tests.support.receiver import Receiver
from tests.support.server import AtelierServer, make_server
from tests.support.yclient import YClient, eventually

pytestmark = pytest.mark.integration

SECRET = "ent-webhook-secret-for-tests"
CLASS = "2nde-a"  # teacher t-martin; g1 = s-01…s-06 (parent p-01 of s-01), g2 = s-07…s-12


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver(SECRET).start()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[AtelierServer]:
    node = make_server(
        tmp_path_factory.mktemp("assignments"),
        ATELIER_RENDU_SETTLE_S="0.3",
        ATELIER_DEADLINE_POLL_S="1",
        ATELIER_ENT_WEBHOOK_URL=receiver.url,
        ATELIER_ENT_WEBHOOK_SECRET=SECRET,
    )
    node.start()
    yield node
    if node.proc is not None and node.proc.poll() is None:
        node.stop()


def api(server: AtelierServer, user: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.http_url,
        headers={"Authorization": f"Bearer {server.token(user)}"},
        timeout=20,
    )


def ws(server: AtelierServer, user: str, room: str, doc: str) -> str:
    return f"{server.ws_url}/yjs/{room}/{doc}?token={server.token(user)}"


def iso_in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def publish(server: AtelierServer, title: str, due_in_s: float, **fields: Any) -> dict:
    body = {
        "title": title,
        "instructions": "Lisez le **chapitre 3** puis rédigez l'exposé.",
        "resources": [{"title": "Manuel", "url": "https://manuel.example/ch3"}],
        "due_at": iso_in(due_in_s),
        "target": "groups",
        "starter": "# " + title + "\n\nIntroduction :\n- idée 1\n- idée 2",
        **fields,
    }
    async with api(server, "t-martin") as http:
        r = await http.post(f"/api/classes/{CLASS}/assignments", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def work_in(published: dict, room: str) -> dict:
    return next(w for w in published["works"] if w["room_id"] == room)


async def server_text(server: AtelierServer, room: str, doc: str) -> str:
    """What the server holds of the doc's plain Y.Text, read by a fresh teacher client."""
    reader = await YClient(ws(server, "t-martin", room, doc)).connect()
    try:
        return reader.content()
    finally:
        await reader.close()


async def feed(server: AtelierServer, user: str) -> dict:
    async with api(server, user) as http:
        r = await http.get("/api/me/notifications")
    assert r.status_code == 200, r.text
    return r.json()


async def test_publishing_gives_each_group_its_doc_with_the_starter_and_tells_everyone(
    server: AtelierServer, receiver: Receiver
) -> None:
    published = await publish(server, "Exposé – La photosynthèse", 3600)
    a = published["assignment"]
    assert [w["room_id"] for w in published["works"]] == [f"{CLASS}-g{i}" for i in range(1, 6)]
    doc = a["doc"]
    assert doc.startswith("expose-la-photosynthese-")
    # The group finds the doc in its room, named after the assignment, with the starter.
    async with api(server, "s-01") as http:
        listed = (await http.get(f"/api/rooms/{CLASS}-g1/docs")).json()["docs"]
    entry = next(d for d in listed if d["name"] == doc)
    assert entry["assignment"]["title"] == "Exposé – La photosynthèse"
    lea = await YClient(ws(server, "s-01", f"{CLASS}-g1", doc)).connect()
    tree = str(lea.doc.get("default", type=XmlFragment))
    assert "<heading" in tree and "Exposé – La photosynthèse" in tree and "idée 2" in tree
    await lea.close()
    # Students of the class and the parent hear of it; the parent about their child only.
    student = await feed(server, "s-07")
    assert any(n["kind"] == "assigned" and n["assignment_id"] == a["id"] for n in student["items"])
    assert student["unread"] >= 1
    parent = await feed(server, "p-01")
    mine = [n for n in parent["items"] if n["assignment_id"] == a["id"]]
    assert len(mine) == 1 and mine[0]["child_id"] == "s-01"
    assert "La photosynthèse" in mine[0]["title"] and "À rendre le" in mine[0]["body"]

    # The ENT receiver got each of them once, signed, with the feed's id as its key.
    async def delivered() -> bool:
        keys = {b["id"] for b in receiver.bodies() if b["assignment_id"] == a["id"]}
        return {n["id"] for n in mine} <= keys and len(keys) == 31  # 30 students + p-01

    await eventually(delivered, timeout=15)
    assert receiver.bad_signatures == 0
    body = next(b for b in receiver.bodies() if b["id"] == mine[0]["id"])
    assert body["user_id"] == "p-01" and body["child_id"] == "s-01" and body["kind"] == "assigned"
    # Marking read.
    async with api(server, "p-01") as http:
        r = await http.post("/api/me/notifications/read", json={"all": True})
    assert r.status_code == 200 and r.json()["unread"] == 0


async def test_a_hand_in_freezes_the_rendu_locks_the_doc_and_tells_the_teacher(
    server: AtelierServer,
) -> None:
    published = await publish(server, "Compte rendu de TP", 3600)
    g1 = work_in(published, f"{CLASS}-g1")
    doc = published["assignment"]["doc"]
    lea = await YClient(ws(server, "s-01", g1["room_id"], doc)).connect()
    hugo = await YClient(ws(server, "s-02", g1["room_id"], doc)).connect()
    await lea.type("Nos mesures : 12 cm. ")
    await eventually(lambda: "12 cm" in hugo.content())
    async with api(server, "s-07") as http:  # another group's student
        r = await http.post(f"/api/works/{g1['id']}/hand-in")
    assert r.status_code in (403, 404)
    async with api(server, "s-01") as http:
        r = await http.post(f"/api/works/{g1['id']}/hand-in")
        assert r.status_code == 200, r.text
        work = r.json()["work"]
        assert work["status"] == "handed_in" and work["submitted_by"] == "s-01"
        again = await http.post(f"/api/works/{g1['id']}/hand-in")
        assert again.status_code == 409
        rendu = (await http.get(f"/api/works/{g1['id']}/rendu")).json()
    assert "12 cm" in rendu["text"] and rendu["version"]["kind"] == "rendu"
    # Hugo's edit after the hand-in is refused: the server's doc does not have it.
    await hugo.type("Ajout après coup. ")
    await asyncio.sleep(0.5)
    assert "Ajout après coup" not in await server_text(server, g1["room_id"], doc)
    teacher = await feed(server, "t-martin")
    assert any(n["kind"] == "handed_in" and n["work_id"] == g1["id"] for n in teacher["items"])
    # The lock cannot be lifted by hand: reopening is the way.
    async with api(server, "t-martin") as http:
        r = await http.put(f"/api/rooms/{g1['room_id']}/docs/{doc}/lock", json={"locked": False})
        assert r.status_code == 409
        r = await http.post(f"/api/works/{g1['id']}/reopen", json={"due_at": iso_in(600)})
        assert r.status_code == 200 and r.json()["work"]["status"] == "open"
    await eventually(lambda: True)
    await hugo.close()
    hugo = await YClient(ws(server, "s-02", g1["room_id"], doc)).connect()
    await hugo.type("Après réouverture. ")

    async def has_it() -> bool:
        return "Après réouverture" in await server_text(server, g1["room_id"], doc)

    await eventually(has_it)
    assert any(n["kind"] == "reopened" for n in (await feed(server, "s-02"))["items"])
    await lea.close()
    await hugo.close()


async def test_the_deadline_freezes_what_was_not_handed_in_and_refuses_later_edits(
    server: AtelierServer,
) -> None:
    published = await publish(server, "Questions flash", 3, allow_late=True)
    g2 = work_in(published, f"{CLASS}-g2")
    doc = published["assignment"]["doc"]
    chloe = await YClient(ws(server, "s-07", g2["room_id"], doc)).connect()
    await chloe.type("Réponse 1. ")
    await eventually(lambda: True)
    due = published["assignment"]["due_at"]
    await asyncio.sleep(max(0.0, due + 0.2 - time.time()))
    await chloe.type("Trop tard. ")

    async def frozen() -> bool:
        async with api(server, "t-martin") as http:
            r = await http.get(f"/api/assignments/{published['assignment']['id']}")
        works = {w["room_id"]: w for w in r.json()["works"]}
        return all(w["status"] in ("late", "missed") for w in works.values())

    await eventually(frozen, timeout=15)
    async with api(server, "t-martin") as http:
        r = await http.get(f"/api/assignments/{published['assignment']['id']}")
        works = {w["room_id"]: w for w in r.json()["works"]}
        assert works[g2["room_id"]]["status"] == "late"  # late work allowed: marked late
        assert works[g2["room_id"]]["label"] == "En retard"
        rendu = (await http.get(f"/api/works/{g2['id']}/rendu")).json()
    assert "Réponse 1" in rendu["text"] and "Trop tard" not in rendu["text"]
    assert "Trop tard" not in await server_text(server, g2["room_id"], doc)
    # A doc opened after the deadline is read-only too.
    late = await YClient(ws(server, "s-08", g2["room_id"], doc)).connect()
    await late.type("Encore. ")
    await asyncio.sleep(0.5)
    assert "Encore" not in await server_text(server, g2["room_id"], doc)
    await late.close()
    await chloe.close()


async def test_personal_work_is_each_students_own(server: AtelierServer) -> None:
    published = await publish(server, "Rédaction individuelle", 3600, target="students")
    works = {w["student_id"]: w for w in published["works"]}
    assert len(works) == 30 and all(w["room_id"] == CLASS for w in works.values())
    mine, other = works["s-01"], works["s-02"]
    lea = await YClient(ws(server, "s-01", CLASS, mine["doc"])).connect()
    await lea.type("Mon texte à moi. ")
    # A classmate may neither open it nor see it listed; Léa's parent may read it.
    intruder = YClient(ws(server, "s-02", CLASS, mine["doc"]))
    await intruder.connect(wait_synced=False)
    assert await intruder.wait_closed() == 4403
    async with api(server, "s-02") as http:
        listed = {d["name"] for d in (await http.get(f"/api/rooms/{CLASS}/docs")).json()["docs"]}
        assert other["doc"] in listed and mine["doc"] not in listed
        r = await http.get(f"/api/rooms/{CLASS}/docs/{mine['doc']}/contributions")
        assert r.status_code == 403
    parent = await YClient(ws(server, "p-01", CLASS, mine["doc"])).connect()
    await eventually(lambda: "Mon texte" in parent.content())
    await parent.type("Le parent écrit. ")  # read-only: refused
    await asyncio.sleep(0.4)
    assert "Le parent" not in await server_text(server, CLASS, mine["doc"])
    await parent.close()
    stranger = YClient(ws(server, "p-01", CLASS, other["doc"]))
    await stranger.connect(wait_synced=False)
    assert await stranger.wait_closed() == 4403
    await lea.close()


async def test_feedback_shows_once_returned_to_students_and_their_parents(
    server: AtelierServer,
) -> None:
    published = await publish(server, "Fiche de lecture", 3600)
    g1 = work_in(published, f"{CLASS}-g1")
    aid = published["assignment"]["id"]
    async with api(server, "s-03") as http:
        assert (await http.post(f"/api/works/{g1['id']}/hand-in")).status_code == 200
    async with api(server, "t-martin") as http:
        r = await http.put(
            f"/api/works/{g1['id']}/feedback",
            json={
                "comment": "Bonne analyse, soignez la conclusion.",
                "appreciation": "Bien",
                "mark": "15/20",
            },
        )
        assert r.status_code == 200

    async def todo(user: str, **params: str) -> dict:
        async with api(server, user) as http:
            r = await http.get("/api/me/todo", params=params)
        assert r.status_code == 200, r.text
        return next(i for i in r.json()["items"] if i["assignment"]["id"] == aid)

    assert (await todo("s-01"))["works"][0]["feedback"] is None  # a draft until returned
    async with api(server, "t-martin") as http:
        assert (await http.post(f"/api/works/{g1['id']}/return")).status_code == 200
        assert (await http.post(f"/api/works/{g1['id']}/return")).status_code == 409
    work = (await todo("s-01"))["works"][0]
    assert work["phase"] == "returned" and work["feedback"]["mark"] == "15/20"
    child = await todo("p-01", child="s-01")
    assert child["child"] == "s-01" and child["works"][0]["feedback"]["appreciation"] == "Bien"
    assert "members" not in child["works"][0]["unit"]  # no classmates' names for a parent
    assert child["works"][0]["progress"]["users"] == []
    async with api(server, "p-01") as http:
        assert (await http.get(f"/api/works/{g1['id']}/rendu")).status_code == 403
        assert (await http.get("/api/me/todo", params={"child": "s-02"})).status_code == 403
    returned = [n for n in (await feed(server, "p-01"))["items"] if n["kind"] == "returned"]
    assert returned and returned[0]["child_id"] == "s-01"
    assert "15/20" not in returned[0]["body"] and "conclusion" not in returned[0]["body"]


async def test_bad_requests_are_refused_clearly(server: AtelierServer) -> None:
    async with api(server, "t-martin") as http:
        for body in (
            {"title": "", "due_at": iso_in(60)},
            {"title": "x", "due_at": "demain"},
            {"title": "x", "due_at": iso_in(-60)},
            {"title": "x", "due_at": iso_in(60), "target": "everyone"},
            {"title": "x", "due_at": iso_in(60), "resources": [{"url": "javascript:alert(1)"}]},
            {"title": "x" * 201, "due_at": iso_in(60)},
        ):
            r = await http.post(f"/api/classes/{CLASS}/assignments", json=body)
            assert r.status_code == 400, (body, r.text)
            assert r.json()["error"] == "bad_request"
        r = await http.post(f"/api/classes/{CLASS}/assignments", content=b"\xff")
        assert r.status_code == 400
    async with api(server, "s-01") as http:
        r = await http.post(
            f"/api/classes/{CLASS}/assignments", json={"title": "x", "due_at": iso_in(60)}
        )
        assert r.status_code == 403
    async with api(server, "t-durand") as http:  # teaches 1ere-b, not 2nde-a
        r = await http.get(f"/api/classes/{CLASS}/assignments")
        assert r.status_code == 403


async def test_the_webhook_retries_and_survives_a_restart(tmp_path: Path) -> None:
    receiver = Receiver(SECRET, fail_first=3).start()
    node = make_server(
        tmp_path,
        ATELIER_ENT_WEBHOOK_URL=receiver.url,
        ATELIER_ENT_WEBHOOK_SECRET=SECRET,
        ATELIER_WEBHOOK_MAX_BACKOFF_S="2",
    )
    node.start()
    try:
        await publish(node, "Travail du soir", 3600, target="class")
        await eventually(lambda: len(receiver.attempts) >= 1, timeout=10)
        node.stop()  # some are delivered or not: the outbox is in the database
        node.start()
        await eventually(lambda: len(receiver.taken) == 31, timeout=30)
        assert len(receiver.attempts) > 31  # the 3 refusals were retried
        assert receiver.bad_signatures == 0
        assert len({b["id"] for b in receiver.bodies()}) == 31
    finally:
        node.stop()
        receiver.stop()


async def test_a_hand_in_cut_by_a_crash_goes_back_to_the_students(tmp_path: Path) -> None:
    """The node dies between the hand-in's lock and its rendu: once the lease is over the
    work is open again (its doc writable), never frozen as missed, and the student hands
    it in anew."""
    node = make_server(
        tmp_path,
        ATELIER_RENDU_SETTLE_S="3",
        ATELIER_DEADLINE_LEASE_S="5",
        ATELIER_DEADLINE_POLL_S="1",
    )
    node.start()
    try:
        work = work_in(await publish(node, "Fiche interrompue", 3600), f"{CLASS}-g1")
        async with api(node, "s-01") as http:
            pending = asyncio.create_task(http.post(f"/api/works/{work['id']}/hand-in"))
            await asyncio.sleep(1.5)  # claimed and locked; the rendu is 3 s away
            node.stop(signal.SIGKILL)
            with contextlib.suppress(httpx.HTTPError):
                await pending
        node.start()

        async def status() -> str:
            async with api(node, "t-martin") as http:
                got = (await http.get(f"/api/assignments/{work['assignment_id']}")).json()
            return next(w for w in got["works"] if w["id"] == work["id"])["status"]

        await eventually(lambda: status(), timeout=15)  # the server answers again
        await eventually(lambda: _is(status(), "open"), timeout=15)
        editor = await YClient(ws(node, "s-01", work["room_id"], work["doc"])).connect()
        await editor.type("Après la panne. ")
        await eventually(
            lambda: _contains(server_text(node, work["room_id"], work["doc"]), "Après la panne")
        )
        await editor.close()
        async with api(node, "s-02") as http:
            r = await http.post(f"/api/works/{work['id']}/hand-in", timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["work"]["status"] == "handed_in"
        assert r.json()["work"]["submitted_by"] == "s-02"
    finally:
        if node.proc is not None and node.proc.poll() is None:
            node.stop()


async def _is(value: Any, expected: str) -> bool:
    return await value == expected


async def _contains(value: Any, part: str) -> bool:
    return part in await value


async def test_the_rendus_export_as_html_and_odt(server: AtelierServer) -> None:
    import io
    import zipfile

    from odf.opendocument import load
    from odf.text import H, P

    published = await publish(server, "Exposé <script>alert(1)</script>", 3600)
    g1 = work_in(published, f"{CLASS}-g1")
    doc = published["assignment"]["doc"]
    lea = await YClient(ws(server, "s-01", g1["room_id"], doc)).connect()
    await lea.type("<b>pas du HTML</b> ")
    await asyncio.sleep(0.3)
    async with api(server, "s-01") as http:
        assert (await http.post(f"/api/works/{g1['id']}/hand-in")).status_code == 200
    await lea.close()
    aid = published["assignment"]["id"]
    async with api(server, "t-martin") as http:
        odt = await http.get(f"/api/assignments/{aid}/export", params={"format": "odt"})
        page = await http.get(f"/api/assignments/{aid}/export", params={"format": "html"})
        assert (await http.get(f"/api/assignments/{aid}/export?format=pdf")).status_code == 400
    async with api(server, "s-01") as http:
        assert (await http.get(f"/api/assignments/{aid}/export")).status_code == 403
    assert odt.status_code == 200 and odt.headers["content-type"] == "application/zip"
    files = zipfile.ZipFile(io.BytesIO(odt.content))
    assert files.namelist() == ["01-groupe-1.odt"]
    inner = zipfile.ZipFile(io.BytesIO(files.read("01-groupe-1.odt")))
    assert inner.infolist()[0].filename == "mimetype"
    assert inner.infolist()[0].compress_type == zipfile.ZIP_STORED
    text = load(io.BytesIO(files.read("01-groupe-1.odt")))
    paragraphs = [str(p) for p in text.getElementsByType(P)]
    headings = [str(h) for h in text.getElementsByType(H)]
    assert any("Rendu le" in p and "par Léa" in p for p in paragraphs)
    assert any("<b>pas du HTML</b>" in p for p in paragraphs)
    assert "Introduction :" in paragraphs and "• idée 1" in paragraphs
    assert headings[0] == "Exposé <script>alert(1)</script>"
    pages = zipfile.ZipFile(io.BytesIO(page.content))
    assert sorted(pages.namelist()) == ["01-groupe-1.html", "index.html"]
    html = pages.read("01-groupe-1.html").decode()
    assert "<script>" not in html and "&lt;b&gt;pas du HTML&lt;/b&gt;" in html


def live(server: AtelierServer, user: str, room: str) -> str:
    return f"{server.ws_url}/rooms/{room}/live?token={server.token(user)}"


def work_events(client: LiveClient) -> list[dict]:
    return [f["work"] for f in client.of_type("event") if f.get("kind") == "work"]


async def test_work_states_reach_the_teachers_and_the_group_never_a_draft(
    server: AtelierServer,
) -> None:
    """A group's work state goes to its group channel and to the teachers on the class
    channel, without the feedback (a draft until returned); a personal work's state goes
    to the teachers only: classmates and parents on the class channel never get it."""
    group_work = work_in(await publish(server, "Carte mentale", 3600), f"{CLASS}-g1")
    personal = await publish(server, "Autoportrait", 3600, target="students")
    mine = next(w for w in personal["works"] if w["student_id"] == "s-01")
    teacher = await LiveClient(live(server, "t-martin", CLASS)).connect()
    classmate = await LiveClient(live(server, "s-02", CLASS)).connect()
    parent = await LiveClient(live(server, "p-01", CLASS)).connect()
    group = await LiveClient(live(server, "s-03", f"{CLASS}-g1")).connect()
    async with api(server, "t-martin") as http:
        draft = {"comment": "Brouillon : ne pas montrer.", "mark": "12/20"}
        async with api(server, "s-04") as student:
            assert (await student.post(f"/api/works/{group_work['id']}/hand-in")).status_code == 200
        assert (await http.put(f"/api/works/{group_work['id']}/feedback", json=draft)).status_code
        async with api(server, "s-01") as lea:
            assert (await lea.post(f"/api/works/{mine['id']}/hand-in")).status_code == 200
        assert (await http.put(f"/api/works/{mine['id']}/feedback", json=draft)).status_code
    ids = {group_work["id"], mine["id"]}
    await eventually(lambda: ids <= {w["id"] for w in work_events(teacher)})
    await eventually(lambda: group_work["id"] in {w["id"] for w in work_events(group)})
    # A barrier: a room event sent after every work event reaches the class channel's
    # sockets in order (one node), so what has not come by then never comes.
    # The teacher writes in a class doc: its doc_saved event goes to every socket.
    writer = await YClient(ws(server, "t-martin", CLASS, "barriere")).connect()
    await writer.type("barrière")

    def barrier(client: LiveClient) -> bool:
        return any(f.get("doc") == "barriere" for f in client.of_type("event"))

    await eventually(lambda: barrier(classmate) and barrier(parent))
    assert work_events(classmate) == [] and work_events(parent) == []
    for seen in work_events(teacher) + work_events(group):
        assert seen["feedback"] is None
    for client in (teacher, classmate, parent, group):
        await client.close()
    await writer.close()
