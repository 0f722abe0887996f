"""Group progress against a real server: who wrote what, versions, restore, the console.

Python y-websocket clients (pycrdt) type known amounts as different students; the
figures come back exact over REST; a forged client id gains nothing; a named version
opens, compares and restores while others are connected; the teacher's class channel
receives the progress events.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from pycrdt import Doc, Text

from tests.support.liveclient import LiveClient
from tests.support.server import AtelierServer, make_server
from tests.support.yclient import YClient, eventually

pytestmark = pytest.mark.integration

ROOM = "2nde-a-g1"  # s-01 … s-06, teacher t-martin, class 2nde-a


def ws(server: AtelierServer, user: str, doc: str, room: str = ROOM) -> str:
    return f"{server.ws_url}/yjs/{room}/{doc}?token={server.token(user)}"


def api(server: AtelierServer, user: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.http_url, headers={"Authorization": f"Bearer {server.token(user)}"}
    )


async def figures(server: AtelierServer, doc: str, user: str = "t-martin") -> dict[str, dict]:
    async with api(server, user) as http:
        r = await http.get(f"/api/rooms/{ROOM}/docs/{doc}/contributions")
    assert r.status_code == 200, r.text
    return {u["id"]: u for u in r.json()["users"]}


async def test_contributions_count_what_each_student_typed_and_deleted(
    atelier: AtelierServer, doc: str
) -> None:
    lea = await YClient(ws(atelier, "s-01", doc)).connect()
    hugo = await YClient(ws(atelier, "s-02", doc)).connect()
    await lea.type("Bonjour à tous. ")  # 16 characters
    await eventually(lambda: hugo.content() == "Bonjour à tous. ")
    await hugo.type("La photosynthèse 🌱.")  # 19 code points (one astral)
    await eventually(lambda: lea.content() == hugo.content())
    # Hugo deletes "tous" (Léa's), Léa deletes "photo" (Hugo's).
    start = hugo.content().index("tous")
    del hugo.text[start : start + 4]
    await hugo.flush()
    await eventually(lambda: "tous" not in lea.content())
    start = lea.content().index("photo")
    del lea.text[start : start + 5]
    await lea.flush()
    await eventually(lambda: "photo" not in hugo.content())

    async def exact() -> bool:
        got = await figures(atelier, doc)
        return (
            got.get("s-01", {}).get("inserted") == 12
            and got.get("s-02", {}).get("inserted") == 14
            and got["s-01"]["deleted"] == 5
            and got["s-02"]["deleted"] == 4
        )

    await eventually_async(exact)
    got = await figures(atelier, doc)
    assert got["s-01"]["name"] == "Léa" and got["s-01"]["edits"] >= 2
    assert got["s-02"]["active_minutes"] >= 1 and got["s-02"]["last_edit"] is not None
    await lea.close()
    await hugo.close()


async def test_a_forged_client_id_gains_nothing(atelier: AtelierServer, doc: str) -> None:
    lea = await YClient(ws(atelier, "s-01", doc)).connect()
    await lea.type("Mon paragraphe.")
    forger = YClient(ws(atelier, "s-02", doc))
    forger.doc = Doc(client_id=lea.doc.client_id)  # Hugo claims Léa's Yjs client id
    forger.text = forger.doc.get("content", type=Text)
    await forger.connect()
    await eventually(lambda: forger.content() == "Mon paragraphe.")
    await forger.type(" Copié.")
    await eventually(lambda: forger.denied != [])
    assert b"another user" in forger.denied[0]
    # The forged text reached nobody, and counts for nobody.
    probe = await YClient(ws(atelier, "s-03", doc)).connect()
    assert probe.content() == "Mon paragraphe."
    got = await figures(atelier, doc)
    assert got["s-01"]["inserted"] == len("Mon paragraphe.")
    assert "s-02" not in got
    for c in (lea, forger, probe):
        await c.close()


async def test_named_version_view_diff_and_restore_while_others_are_connected(
    atelier: AtelierServer, doc: str
) -> None:
    lea = await YClient(ws(atelier, "s-01", doc)).connect()
    hugo = await YClient(ws(atelier, "s-02", doc)).connect()
    await lea.type("Première version.")
    await eventually(lambda: hugo.content() == "Première version.")
    async with api(atelier, "s-01") as http:
        r = await http.post(
            f"/api/rooms/{ROOM}/docs/{doc}/versions", json={"name": "Version avant correction"}
        )
        assert r.status_code == 201, r.text
        named = r.json()["version"]
        assert named["kind"] == "named" and named["by"] == "s-01"
    await hugo.type(" Ajout de Hugo.")
    await eventually(lambda: lea.content() == "Première version. Ajout de Hugo.")
    async with api(atelier, "s-02") as http:
        listed = (await http.get(f"/api/rooms/{ROOM}/docs/{doc}/versions")).json()["versions"]
        assert named["id"] in [v["id"] for v in listed]
        seen = (await http.get(f"/api/rooms/{ROOM}/docs/{doc}/versions/{named['id']}")).json()
        assert seen["text"] == "Première version."
        assert "Première version." in seen["html"]
        diff = (await http.get(f"/api/rooms/{ROOM}/docs/{doc}/versions/{named['id']}/diff")).json()
        inserted = "".join(h["text"] for h in diff["hunks"] if h["op"] == "insert")
        assert "Ajout" in inserted and "Hugo." in inserted
        assert {"user": "s-02", "added": len(" Ajout de Hugo."), "removed": 0} in diff["by_author"]
        r = await http.post(f"/api/rooms/{ROOM}/docs/{doc}/versions/{named['id']}/restore")
        assert r.status_code == 200, r.text
        before = r.json()["version"]
        assert before["kind"] == "restore"
    # Everyone connected sees the restore at once.
    await eventually(lambda: lea.content() == hugo.content() == "Première version.")
    # And restoring the "restore" version undoes it.
    async with api(atelier, "s-01") as http:
        r = await http.post(f"/api/rooms/{ROOM}/docs/{doc}/versions/{before['id']}/restore")
        assert r.status_code == 200
    await eventually(lambda: lea.content() == "Première version. Ajout de Hugo.")
    await eventually(lambda: hugo.content() == "Première version. Ajout de Hugo.")
    await lea.close()
    await hugo.close()


async def test_who_sees_progress(atelier: AtelierServer, doc: str) -> None:
    lea = await YClient(ws(atelier, "s-01", doc, room="2nde-a")).connect(wait_synced=True)
    async with api(atelier, "t-martin") as http:
        r = await http.get(f"/api/rooms/2nde-a/docs/{doc}/contributions")
        assert r.status_code == 200
    async with api(atelier, "s-31") as http:  # another class
        assert (await http.get(f"/api/rooms/{ROOM}/docs/{doc}/contributions")).status_code == 403
    async with api(atelier, "p-01") as http:  # parent of s-01: no versions, own child only
        assert (await http.get(f"/api/rooms/2nde-a/docs/{doc}/versions")).status_code == 403
        r = await http.get(f"/api/rooms/2nde-a/docs/{doc}/contributions")
        assert r.status_code == 200 and set(r.json()) == {"users"}
        assert all(u["id"] == "s-01" for u in r.json()["users"])
    async with api(atelier, "s-01") as http:  # class docs are read-only for students
        r = await http.post(f"/api/rooms/2nde-a/docs/{doc}/versions", json={"name": "x"})
        assert r.status_code == 403
    await lea.close()


async def test_the_class_channel_carries_progress_to_teachers_only(
    atelier: AtelierServer, doc: str
) -> None:
    teacher = await LiveClient(
        f"{atelier.ws_url}/rooms/2nde-a/live?token={atelier.token('t-martin')}"
    ).connect()
    student = await LiveClient(
        f"{atelier.ws_url}/rooms/2nde-a/live?token={atelier.token('s-03')}"
    ).connect()
    lea = await YClient(ws(atelier, "s-01", doc)).connect()
    await lea.type("Le groupe avance.")

    def progress(client: LiveClient) -> list[dict]:
        return [
            e
            for e in client.frames
            if e.get("t") == "event" and e.get("kind") == "progress" and e.get("doc") == doc
        ]

    await eventually(lambda: any("Le groupe avance." in e["preview"] for e in progress(teacher)))
    event = progress(teacher)[-1]
    assert event["room"] == ROOM and event["words"] == 3
    assert [u["id"] for u in event["users"]] == ["s-01"]
    assert len(event["activity"]) == 60 and sum(event["activity"]) >= 1
    async with api(atelier, "t-martin") as http:
        overview = (await http.get("/api/classes/2nde-a/overview")).json()
    group = next(g for g in overview["groups"] if g["id"] == ROOM)
    shown = next(d for d in group["docs"] if d["doc"] == doc)
    assert shown["preview"] == "Le groupe avance." and shown["users"][0]["id"] == "s-01"
    assert shown["users"][0]["inserted"] == len("Le groupe avance.")
    # The student on the same channel got the teacher's event's moment too, but not it.
    assert (await student.request({"t": "ping"}))["t"] == "pong"
    assert progress(student) == []
    for c in (teacher, student, lea):
        await c.close()


async def eventually_async(predicate: Callable[[], Awaitable[bool]], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if await predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def test_figures_survive_compaction_and_a_restart(tmp_path: Path, doc: str) -> None:
    server = make_server(tmp_path, ATELIER_COMPACT_AFTER_UPDATES="5")
    server.start()
    try:
        lea = await YClient(ws(server, "s-01", doc)).connect()
        hugo = await YClient(ws(server, "s-02", doc)).connect()
        for word in ("un ", "deux ", "trois ", "quatre "):
            await lea.type(word)  # 4 edits, 21 characters
        await eventually(lambda: hugo.content() == lea.content())
        for word in ("cinq ", "six "):
            await hugo.type(word)  # 2 edits, 9 characters
        await eventually(lambda: lea.content().endswith("six "))
        before = await figures(server, doc)
        assert before["s-01"]["inserted"] == 21 and before["s-02"]["inserted"] == 9
        await lea.close()
        await hugo.close()
        server.stop()  # flushes and folds the log into the snapshot
        server.start()
        after = await figures(server, doc)
        for user in ("s-01", "s-02"):
            for key in ("inserted", "deleted", "edits", "active_minutes"):
                assert after[user][key] == before[user][key], (user, key)
            # Live, an edit is timed when it arrives; stored, when its batch commits.
            for key in ("first_edit", "last_edit"):
                assert abs(after[user][key] - before[user][key]) < 1.0, (user, key)
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.stop()


async def test_a_restore_while_others_type_converges(atelier: AtelierServer, doc: str) -> None:
    lea = await YClient(ws(atelier, "s-01", doc)).connect()
    hugo = await YClient(ws(atelier, "s-02", doc)).connect()
    await lea.type("Plan : ")
    async with api(atelier, "s-01") as http:
        r = await http.post(f"/api/rooms/{ROOM}/docs/{doc}/versions", json={"name": "plan"})
        version = r.json()["version"]["id"]

    async def keep_typing() -> None:
        for i in range(40):  # bounded: 40 keystrokes, 10 ms apart
            await hugo.type(f"{i % 10}")
            await asyncio.sleep(0.01)

    typing = asyncio.create_task(keep_typing())
    await asyncio.sleep(0.1)  # let the typing start: the restore lands in its middle
    async with api(atelier, "s-03") as http:
        r = await http.post(f"/api/rooms/{ROOM}/docs/{doc}/versions/{version}/restore")
        assert r.status_code == 200
    await typing
    await eventually(lambda: lea.content() == hugo.content())
    probe = await YClient(ws(atelier, "s-04", doc)).connect()  # the server's own state
    await eventually(lambda: probe.content() == hugo.content())
    assert probe.content().startswith("Plan : ")
    # Keystrokes typed after the restore reached the server are kept; none is lost twice.
    got = await figures(atelier, doc)
    assert got["s-03"]["inserted"] > 0  # the restored text counts for the restorer
    for c in (lea, hugo, probe):
        await c.close()
