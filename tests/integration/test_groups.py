"""A class's groups managed by its teacher ("Gérer les groupes") against a real server, and
the live revocation a move or an archive causes: the sockets of the students who lost
access close (4403) or go read-only at once, the others go on.

Python clients over real sockets: y-websocket docs (pycrdt) and room channels (msgpack).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.liveclient import LiveClient
from tests.support.server import AtelierServer, make_server
from tests.support.yclient import YClient, eventually

pytestmark = pytest.mark.integration

CLASS = "2nde-a"  # teacher t-martin; g1 = s-01…s-06, g2 = s-07…s-12


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AtelierServer]:
    # One server per test: the tests move students, and each starts from the demo roster.
    node = make_server(tmp_path_factory.mktemp("groups"))
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


def doc(server: AtelierServer, user: str, room: str, name: str = "rapport") -> str:
    return f"{server.ws_url}/yjs/{room}/{name}?token={server.token(user)}"


def live(server: AtelierServer, user: str, room: str) -> str:
    return f"{server.ws_url}/rooms/{room}/live?token={server.token(user)}"


async def server_text(server: AtelierServer, room: str, name: str = "rapport") -> str:
    reader = await YClient(doc(server, "t-martin", room, name)).connect()
    try:
        return reader.content()
    finally:
        await reader.close()


async def test_teachers_create_rename_and_list_groups(server: AtelierServer) -> None:
    async with api(server, "t-martin") as http:
        listed = (await http.get(f"/api/classes/{CLASS}/groups")).json()
        assert [g["id"] for g in listed["groups"]][:2] == [f"{CLASS}-g1", f"{CLASS}-g2"]
        assert listed["ungrouped"] == []
        g1 = listed["groups"][0]
        assert [s["id"] for s in g1["students"]] == [f"s-{n:02d}" for n in range(1, 7)]
        r = await http.post(f"/api/classes/{CLASS}/groups", json={"name": "Atelier théâtre"})
        assert r.status_code == 201, r.text
        created = r.json()["group"]
        assert created["id"] == f"{CLASS}-g{len(listed['groups']) + 1}"
        r = await http.patch(f"/api/groups/{created['id']}", json={"name": "Théâtre"})
        assert r.status_code == 200 and r.json()["group"]["name"] == "Théâtre"
        assert (
            await http.post(f"/api/classes/{CLASS}/groups", json={"name": " "})
        ).status_code == 400
        r = await http.post(f"/api/classes/{CLASS}/moves", json={"student": "s-99", "to": None})
        assert r.status_code == 400
        r = await http.post(
            f"/api/classes/{CLASS}/moves", json={"student": "s-01", "to": "1ere-b-g1"}
        )
        assert r.status_code == 400  # another class's group
    # The new group is a room: its teacher opens it; nobody else is in it yet.
    teacher = await YClient(doc(server, "t-martin", created["id"])).connect()
    await teacher.close()
    for user in ("s-01", "p-01"):
        async with api(server, user) as http:
            assert (await http.get(f"/api/classes/{CLASS}/groups")).status_code == 403
            r = await http.post(f"/api/classes/{CLASS}/groups", json={"name": "Pirates"})
            assert r.status_code == 403


async def test_a_move_closes_the_old_groups_sockets_at_once_and_opens_the_new(
    server: AtelierServer,
) -> None:
    """s-01 types in group 1 and has its chat open; the teacher moves s-01 to group 2:
    both sockets close with 4403 within 2 s, s-01 leaves the group's presence, group 2
    opens to s-01, and a classmate who stays goes on."""
    typing = await YClient(doc(server, "s-01", f"{CLASS}-g1")).connect()
    chat = await LiveClient(live(server, "s-01", f"{CLASS}-g1")).connect()
    classmate = await LiveClient(live(server, "s-02", f"{CLASS}-g1")).connect()
    mate_doc = await YClient(doc(server, "s-02", f"{CLASS}-g1")).connect()
    class_room = await LiveClient(live(server, "s-01", CLASS)).connect()
    await eventually(lambda: "s-01" in classmate.online())
    await typing.type("Avant le changement de groupe. ")
    started = time.monotonic()
    async with api(server, "t-martin") as http:
        r = await http.post(
            f"/api/classes/{CLASS}/moves", json={"student": "s-01", "to": f"{CLASS}-g2"}
        )
    assert r.status_code == 200, r.text
    assert r.json()["moved"] == {
        "student": "s-01",
        "left": [f"{CLASS}-g1"],
        "joined": f"{CLASS}-g2",
    }
    assert await typing.wait_closed(timeout=2) == 4403
    assert await chat.wait_closed(timeout=2) == 4403
    took = time.monotonic() - started
    assert took < 2, f"revoked after {took:.2f} s"
    await eventually(lambda: "s-01" not in classmate.online(), timeout=5)
    # The classmate and s-01's class channel are untouched.
    assert classmate.close_code is None and mate_doc.close_code is None
    assert class_room.close_code is None
    await mate_doc.type("Le groupe continue. ")
    await eventually(lambda: "Le groupe continue" in mate_doc.content())
    # Group 2 opens to s-01; group 1 refuses it from now on.
    again = YClient(doc(server, "s-01", f"{CLASS}-g1"))
    await again.connect(wait_synced=False)
    assert await again.wait_closed() == 4403
    new_group = await YClient(doc(server, "s-01", f"{CLASS}-g2")).connect()
    await new_group.type("Nouveau groupe. ")
    await eventually(lambda: "Nouveau groupe" in new_group.content())
    assert "Avant le changement" in await server_text(server, f"{CLASS}-g1")
    async with api(server, "s-01") as http:
        rooms = {r["id"] for r in (await http.get("/api/me")).json()["rooms"]}
        assert f"{CLASS}-g2" in rooms and f"{CLASS}-g1" not in rooms
    for client in (classmate, mate_doc, class_room, new_group):
        await client.close()
    # The move is in the audit trail: who, when, what, from which node.
    with sqlite3.connect(server.data_dir / "atelier.db") as db:
        rows = db.execute(
            "SELECT actor, action, target, detail FROM audit WHERE action = 'group.move'"
        ).fetchall()
    assert len(rows) == 1 and rows[0][:3] == ("t-martin", "group.move", "s-01")
    assert json.loads(rows[0][3]) == {
        "class": CLASS,
        "left": [f"{CLASS}-g1"],
        "joined": f"{CLASS}-g2",
    }


async def test_an_archived_group_is_read_only_for_its_students(server: AtelierServer) -> None:
    student = await YClient(doc(server, "s-07", f"{CLASS}-g2")).connect()
    chat = await LiveClient(live(server, "s-07", f"{CLASS}-g2")).connect()
    teacher = await YClient(doc(server, "t-martin", f"{CLASS}-g2")).connect()
    await student.type("Dernier mot. ")
    await eventually(lambda: "Dernier mot" in teacher.content())
    async with api(server, "t-martin") as http:
        r = await http.patch(f"/api/groups/{CLASS}-g2", json={"archived": True})
        assert r.status_code == 200 and r.json()["group"]["archived"] is True
    # The chat closes (1013: reconnect for the new rights); the doc socket stays open,
    # read-only from now on: what it types is refused, never stored.
    assert await chat.wait_closed(timeout=2) == 1013
    await asyncio.sleep(0.3)
    assert student.close_code is None
    await student.type("Après l'archivage. ")
    await asyncio.sleep(0.5)
    assert "Après l'archivage" not in await server_text(server, f"{CLASS}-g2")
    await teacher.type("Le professeur peut encore écrire. ")
    await eventually(lambda: "Le professeur peut" in student.content())
    again = await LiveClient(live(server, "s-07", f"{CLASS}-g2")).connect()
    hello: Any = again.hello
    assert hello is not None and hello.get("access", {}).get("chat") is False, hello
    async with api(server, "t-martin") as http:
        r = await http.post(
            f"/api/classes/{CLASS}/moves", json={"student": "s-01", "to": f"{CLASS}-g2"}
        )
        assert r.status_code == 400  # no one moves into an archived group
        r = await http.patch(f"/api/groups/{CLASS}-g2", json={"archived": False})
        assert r.status_code == 200
    # Open again: a fresh client writes (the first one's refused edit stays its own: a
    # Yjs client whose update was refused diverges until it syncs anew).
    await student.close()
    student = await YClient(doc(server, "s-07", f"{CLASS}-g2")).connect()
    await student.type("Rouvert. ")
    await eventually(lambda: "Rouvert" in teacher.content())
    for client in (student, teacher, again):
        await client.close()
