"""The audit trail through a real server: what teachers do is recorded (who, what,
which node), admins read it by filters and pages and export it as CSV; and a room's
pseudonymous names as another student sees them over a real socket."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from server.api.audit import cell
from tests.support.liveclient import LiveClient
from tests.support.server import AtelierServer, make_server
from tests.support.yclient import YClient, eventually

pytestmark = pytest.mark.integration

CLASS = "2nde-a"
NODE = "node-audit"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    node = make_server(tmp_path_factory.mktemp("audit"), ATELIER_NODE_ID=NODE)
    node.start()
    try:
        yield node
    finally:
        node.stop()


def api(server: AtelierServer, user: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.http_url,
        headers={"Authorization": f"Bearer {server.token(user)}"},
        timeout=20,
    )


def live(server: AtelierServer, user: str, room: str) -> str:
    return f"{server.ws_url}/rooms/{room}/live?token={server.token(user)}"


def iso_in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def trail(server: AtelierServer, **params: str) -> list[dict[str, Any]]:
    """Every entry the filters select, read page by page (3 a page)."""
    out: list[dict[str, Any]] = []
    before: int | None = None
    async with api(server, "a-admin") as http:
        for _ in range(200):
            query = {**params, "limit": "3", **({"before": str(before)} if before else {})}
            r = await http.get("/api/admin/audit", params=query)
            assert r.status_code == 200, r.text
            body = r.json()
            out.extend(body["entries"])
            before = body["next_before"]
            if before is None:
                return out
    raise AssertionError("paging did not end")


async def test_what_teachers_do_is_in_the_trail_and_admins_read_and_export_it(
    server: AtelierServer,
) -> None:
    started = datetime.now(UTC) - timedelta(seconds=1)
    async with api(server, "t-martin") as http:
        for locked in (True, False):
            r = await http.put(f"/api/rooms/{CLASS}-g1/docs/notes/lock", json={"locked": locked})
            assert r.status_code == 200
        r = await http.post(
            f"/api/classes/{CLASS}/assignments",
            json={"title": "Exposé", "due_at": iso_in(3600), "target": "groups"},
        )
        assert r.status_code == 201, r.text
        published = r.json()
        aid = published["assignment"]["id"]
        work = next(w for w in published["works"] if w["room_id"] == f"{CLASS}-g2")
        r = await http.patch(f"/api/assignments/{aid}", json={"due_at": iso_in(7200)})
        assert r.status_code == 200, r.text
    async with api(server, "s-07") as http:
        assert (await http.post(f"/api/works/{work['id']}/hand-in")).status_code == 200
    async with api(server, "t-martin") as http:
        assert (await http.post(f"/api/works/{work['id']}/return")).status_code == 200
        r = await http.post(f"/api/works/{work['id']}/reopen", json={"due_at": iso_in(9000)})
        assert r.status_code == 200, r.text

    student = await LiveClient(live(server, "s-01", CLASS)).connect()
    teacher = await LiveClient(live(server, "t-martin", CLASS)).connect()
    posted = await student.request({"t": "post", "text": "un message à modérer"})
    own = await student.request({"t": "post", "text": "je retire ceci"})
    assert (await student.request({"t": "delete", "id": own["id"]}))["t"] == "ok"
    assert (await teacher.request({"t": "delete", "id": posted["id"]}))["t"] == "ok"
    assert (await teacher.request({"t": "mute", "user": "s-01"}))["t"] == "ok"
    assert (await teacher.request({"t": "unmute", "user": "s-01"}))["t"] == "ok"
    await student.close()
    await teacher.close()

    entries = await trail(server, since=started.isoformat())
    mine = [e for e in entries if e["action"] != "audit.export"]
    assert [e["action"] for e in reversed(mine)] == [
        "doc.lock",
        "doc.unlock",
        "assignment.due_at",
        "work.return",
        "work.reopen",
        "chat.delete",  # the moderator's only: an author taking back their own is not
        "chat.mute",
        "chat.unmute",
    ]
    assert {e["actor"] for e in mine} == {"t-martin"}
    assert {e["node"] for e in mine} == {NODE}
    by_action = {e["action"]: e for e in mine}
    assert by_action["doc.lock"]["target"] == f"{CLASS}-g1/notes"
    assert by_action["chat.delete"]["detail"] == {
        "author": "s-01",
        "message_id": posted["id"],
        "seq": posted["seq"],
    }
    assert "modérer" not in json.dumps(entries)  # never the text
    assert by_action["chat.mute"]["target"] == "s-01"
    assert by_action["work.reopen"]["target"] == work["id"]
    assert by_action["assignment.due_at"]["detail"]["class"] == CLASS

    # Filters combine; a bad one is refused in the REST error shape.
    muted = await trail(server, action="chat.mute", actor="t-martin", target="s-01")
    assert [e["id"] for e in muted] == [by_action["chat.mute"]["id"]]
    assert await trail(server, since=iso_in(60)) == []
    paris = started.astimezone(timezone(timedelta(hours=2))).isoformat()  # another offset
    assert [e["id"] for e in await trail(server, since=paris)] == [e["id"] for e in entries]
    async with api(server, "a-admin") as http:
        for bad in ({"limit": "0"}, {"limit": "100000"}, {"since": "hier"}, {"actor": "x" * 300}):
            r = await http.get("/api/admin/audit", params=bad)
            assert r.status_code == 400 and r.json()["error"] == "bad_request", bad
    for who in ("t-martin", "s-01"):
        async with api(server, who) as http:
            assert (await http.get("/api/admin/audit")).status_code == 403
            assert (await http.get("/api/admin/audit.csv")).status_code == 403

    async with api(server, "a-admin") as http:
        r = await http.get("/api/admin/audit.csv", params={"since": started.isoformat()})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["id", "at", "actor", "node", "action", "target", "detail"]
    assert [row[4] for row in rows[1:] if row[4] != "audit.export"] == [e["action"] for e in mine]
    # The export itself is in the trail, with its filter.
    [export] = (await trail(server, action="audit.export", actor="a-admin"))[:1]
    assert export["detail"]["filter"]["since"].startswith(started.date().isoformat())


async def _has(names: Any, user: str) -> bool:
    return user in await names


def test_csv_cells_never_start_a_formula() -> None:
    for text in ('=HYPERLINK("x")', "+1", "-2", "@SUM(A1)", "\tx", "\rx"):
        assert cell(text) == "'" + text
    assert cell("2nde-a/notes") == "2nde-a/notes" and cell(None) == ""


async def test_a_pseudonymous_room_never_shows_a_students_name(server: AtelierServer) -> None:
    room = f"{CLASS}-g3"  # s-13 … s-18
    before = await LiveClient(live(server, "s-15", room)).connect()
    async with api(server, "s-13") as http:
        r = await http.put(f"/api/rooms/{room}/policy", json={"presence_names": "pseudonym"})
        assert r.status_code == 403  # students do not set it
    async with api(server, "t-martin") as http:
        r = await http.put(f"/api/rooms/{room}/policy", json={"presence_names": "pseudonym"})
        assert r.status_code == 200
        bad = await http.put(f"/api/rooms/{room}/policy", json={"presence_names": "real"})
        assert bad.status_code == 400 and bad.json()["error"] == "bad_request"
    # Who was already there is told, to reconnect for the new names.
    await eventually(lambda: any(f.get("kind") == "names" for f in before.of_type("event")))
    [told] = [f for f in before.of_type("event") if f.get("kind") == "names"]
    assert told["presence_names"] == "pseudonym"
    await before.close()
    async with api(server, "s-13") as http:
        display = (await http.get("/api/me")).json()["display_name"]
        info = (await http.get(f"/api/rooms/{room}")).json()
        members = (await http.get(f"/api/rooms/{room}/docs")).json()["members"]
        elsewhere = (await http.get(f"/api/rooms/{CLASS}")).json()
    assert info["presence_names"] == "pseudonym" and elsewhere["presence_names"] == "full"
    assert elsewhere["me"]["name"] == display  # the class room has no policy
    pseudonym = info["me"]["name"]
    assert pseudonym != display and display not in pseudonym

    first = await LiveClient(live(server, "s-13", room)).connect()
    second = await LiveClient(live(server, "s-14", room)).connect()
    teacher = await LiveClient(live(server, "t-martin", room)).connect()
    assert first.hello is not None and first.hello["me"]["name"] == pseudonym
    await eventually(lambda: {"s-13", "t-martin"} <= set(second.online()))
    assert second.presence["s-13"]["name"] == pseudonym
    assert second.presence["t-martin"]["name"] == "M. Martin"  # teachers keep their names
    said = await first.request({"t": "post", "text": "coucou"})
    await eventually(lambda: said["id"] in second.messages)
    assert second.messages[said["id"]]["author"]["name"] == pseudonym
    # Stable: the same pseudonym on the next connection, in the members list too.
    again = await LiveClient(live(server, "s-13", room)).connect()
    assert again.hello is not None and again.hello["me"]["name"] == pseudonym
    assert {m["id"]: m["name"] for m in members}["s-13"] == pseudonym
    # "Who wrote what" names contributors as the room does, to students.
    writer = YClient(f"{server.ws_url}/yjs/{room}/notes?token={server.token('s-13')}")
    await (await writer.connect()).type("Notre plan. ")

    async def contributors(user: str) -> dict[str, str]:
        async with api(server, user) as http:
            r = await http.get(f"/api/rooms/{room}/docs/notes/contributions")
        assert r.status_code == 200, r.text
        return {u["id"]: u["name"] for u in r.json()["users"]}

    await eventually(lambda: _has(contributors("s-14"), "s-13"))
    assert (await contributors("s-14"))["s-13"] == pseudonym
    assert (await contributors("t-martin"))["s-13"] == display  # the teacher knows them
    await writer.close()
    shown = json.dumps([second.frames, members], ensure_ascii=False, default=repr)
    assert display not in shown
    for c in (first, second, again, teacher):
        await c.close()
    async with api(server, "t-martin") as http:
        r = await http.put(f"/api/rooms/{room}/policy", json={"presence_names": "initial"})
        assert r.status_code == 200
    async with api(server, "s-13") as http:
        initial = (await http.get(f"/api/rooms/{room}")).json()["me"]["name"]
    assert initial == display  # a first name alone has no initial to add


async def test_the_trail_and_the_policy_are_in_openapi(server: AtelierServer) -> None:
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        paths = (await http.get("/api/openapi.json")).json()["paths"]
    for path, method in (
        ("/api/admin/audit", "get"),
        ("/api/admin/audit.csv", "get"),
        ("/api/rooms/{room_id}/policy", "put"),
    ):
        assert paths[path][method]["summary"], path
    params = {p["name"] for p in paths["/api/admin/audit"]["get"]["parameters"]}
    assert params == {"since", "until", "actor", "action", "target", "before", "limit"}
