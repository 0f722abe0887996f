"""Roster import against a real server process, on SQLite and on PostgreSQL: the
``atelier roster`` command beside the running node, and ``POST /api/admin/roster/import``.

Each test starts from the demo school: the ``demo`` fixture imports the demo roster back
over REST (forced), which also empties the node's roster caches.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from server.persistence import audit
from server.persistence.db import create_engine
from server.roster import formats
from server.roster.formats import Snapshot
from tests.roster.rosters import demo_snapshot, edit, moved, new_class
from tests.support.liveclient import LiveClient
from tests.support.server import AtelierServer, make_server
from tests.support.services import postgres_database
from tests.support.yclient import YClient

pytestmark = pytest.mark.integration

DEMO = demo_snapshot()
IMPORT = "/api/admin/roster/import"
#: Small enough to test the 413 with a modest body; the demo roster is ~7 KB.
MAX_BYTES = 100_000


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AtelierServer]:
    folder = tmp_path_factory.mktemp(f"roster-{request.param}")
    env = {"ATELIER_ROSTER_MAX_BYTES": str(MAX_BYTES)}
    pg_or_none = (
        postgres_database("atelier_roster_it")
        if request.param == "postgresql"
        else contextlib.nullcontext(None)
    )
    with pg_or_none as pg:
        if pg is None:
            node = make_server(folder, **env)
        else:
            node = AtelierServer(data_dir=folder, database_url=pg, extra_env=env)
            node.prepare()
        node.start()
        try:
            yield node
        finally:
            if node.proc is not None and node.proc.poll() is None:
                node.stop()


def api(server: AtelierServer, user: str | None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {server.token(user)}"} if user else {}
    return httpx.AsyncClient(base_url=server.http_url, headers=headers, timeout=30)


async def post_roster(
    server: AtelierServer, snap: Snapshot, query: str = "", fmt: formats.Format = "json"
) -> httpx.Response:
    kind = "application/json" if fmt == "json" else "text/csv"
    async with api(server, "a-admin") as http:
        return await http.post(
            IMPORT + query,
            content=formats.dump(snap, fmt).encode(),
            headers={"Content-Type": kind},
        )


@pytest.fixture
async def demo(server: AtelierServer) -> AsyncIterator[AtelierServer]:
    r = await post_roster(server, DEMO, "?force=1")
    assert r.status_code == 200, r.text
    yield server


def roster_cli(
    server: AtelierServer, tmp_path: Path, snap: Snapshot, *args: str, fmt: str = "csv"
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / f"roster.{fmt}"
    path.write_text(formats.dump(snap, "json" if fmt == "json" else "csv"), encoding="utf-8")
    return run_cli(server, "roster", "import", str(path), *args)


def run_cli(server: AtelierServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        env=server.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def table(out: str) -> dict[str, tuple[int, int, int]]:
    """The diff table the CLI prints: kind → (added, changed, removed)."""
    rows = {}
    for line in out.splitlines():
        cells = line.split()
        if len(cells) == 4 and cells[0] in formats.KINDS.values():
            rows[cells[0]] = (int(cells[1]), int(cells[2]), int(cells[3]))
    return rows


async def audit_count(server: AtelierServer) -> int:
    engine = create_engine(server.database_url)
    try:
        return len(await audit.entries(engine, "roster.import", limit=10_000))
    finally:
        await engine.dispose()


async def status(server: AtelierServer, user: str, path: str) -> int:
    async with api(server, user) as http:
        return (await http.get(path)).status_code


async def test_the_cli_adds_a_class_dry_run_first_then_for_real_then_nothing(
    demo: AtelierServer, tmp_path: Path
) -> None:
    server = demo
    target = new_class(DEMO)
    audits = await audit_count(server)
    dry = roster_cli(server, tmp_path, target, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert table(dry.stdout) == {
        "schools": (0, 0, 0),
        "classes": (1, 0, 0),
        "groups": (2, 0, 0),
        "users": (5, 0, 0),
        "memberships": (7, 0, 0),
        "parent_links": (1, 0, 0),
    }
    assert "dry run: nothing written" in dry.stdout
    assert await status(server, "s-61", "/api/me") == 401  # not in the roster yet
    assert await audit_count(server) == audits

    done = roster_cli(server, tmp_path, target)
    assert done.returncode == 0, done.stderr
    assert table(done.stdout)["users"] == (5, 0, 0) and "imported (audit #" in done.stdout
    assert await audit_count(server) == audits + 1
    async with api(server, "s-61") as http:
        me = (await http.get("/api/me")).json()
    assert [r["id"] for r in me["rooms"]] == ["3e-c", "3e-c-g1"]
    async with api(server, "p-02") as http:
        me = (await http.get("/api/me")).json()
    assert [r["id"] for r in me["rooms"]] == ["3e-c"]
    assert me["children"] == [{"id": "s-61", "name": "Inès"}]
    assert await status(server, "t-leroy", "/api/classes/3e-c/overview") == 200

    again = roster_cli(server, tmp_path, target, fmt="json")
    assert again.returncode == 0, again.stderr
    assert set(table(again.stdout).values()) == {(0, 0, 0)}
    assert "no change: the roster already matches the file" in again.stdout


async def test_a_move_between_groups_over_rest_is_in_the_lowered_list(
    demo: AtelierServer,
) -> None:
    server = demo
    assert await status(server, "s-01", "/api/rooms/2nde-a-g1") == 200  # cached now
    dry = await post_roster(server, moved(DEMO, "s-01", "2nde-a-g1", "2nde-a-g2"), "?dry_run=1")
    assert dry.status_code == 200 and dry.json()["status"] == "dry_run"
    assert await status(server, "s-01", "/api/rooms/2nde-a-g1") == 200
    r = await post_roster(server, moved(DEMO, "s-01", "2nde-a-g1", "2nde-a-g2"), fmt="csv")
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["status"] == "applied" and report["audit_id"] is not None
    assert report["counts"]["memberships"] == {"added": 1, "changed": 0, "removed": 1}
    assert report["lowered"] == [
        {"user_id": "s-01", "rooms": ["2nde-a-g1"], "reasons": ["left_room"]}
    ]
    # This node's caches were emptied: the move applies at once.
    assert await status(server, "s-01", "/api/rooms/2nde-a-g1") == 403
    assert await status(server, "s-01", "/api/rooms/2nde-a-g2") == 200
    again = await post_roster(server, moved(DEMO, "s-01", "2nde-a-g1", "2nde-a-g2"))
    assert again.json()["status"] == "unchanged" and again.json()["lowered"] == []


async def test_removing_more_than_a_tenth_is_refused_unless_forced(
    demo: AtelierServer, tmp_path: Path
) -> None:
    server = demo
    seven = edit(DEMO, drop_users=[f"s-{i:02d}" for i in range(1, 8)])  # 7 of 64
    refused = roster_cli(server, tmp_path, seven)
    assert refused.returncode == 3
    assert "refused: the file removes 7 of 64 users (10.9%)" in refused.stdout
    assert await status(server, "s-03", "/api/me") == 200
    r = await post_roster(server, seven)
    assert r.status_code == 409 and r.json()["status"] == "refused"
    assert r.json()["users"] == {
        "before": 64,
        "removed": 7,
        "removed_share": 0.1094,
        "max_removed_share": 0.1,
    }
    assert await status(server, "s-03", "/api/me") == 200
    forced = roster_cli(server, tmp_path, seven, "--force")
    assert forced.returncode == 0, forced.stderr
    assert table(forced.stdout)["users"] == (0, 0, 7)
    # s-04 was never looked up by this node, so no cache holds her: refused at once.
    assert await status(server, "s-04", "/api/me") == 401


async def test_a_removed_user_is_refused_but_history_still_names_them(
    demo: AtelierServer, doc: str
) -> None:
    server = demo
    live = LiveClient(f"{server.ws_url}/rooms/2nde-a/live?token={server.token('s-05')}")
    await live.connect()
    said = await live.request({"t": "post", "text": "Je fais la conclusion."})
    assert said["t"] == "ok"
    await live.close()
    url = f"{server.ws_url}/yjs/2nde-a-g1/{doc}?token={server.token('s-05')}"
    writer = await YClient(url).connect()
    await writer.type("Conclusion : ")
    await writer.close()

    async def stored() -> bool:
        async with api(server, "t-martin") as http:
            r = await http.get(f"/api/rooms/2nde-a-g1/docs/{doc}/contributions")
        return r.status_code == 200 and any(u["id"] == "s-05" for u in r.json()["users"])

    await eventually_async(stored)

    r = await post_roster(server, edit(DEMO, drop_users=["s-05"]))
    assert r.status_code == 200, r.text
    assert r.json()["lowered"] == [
        {"user_id": "s-05", "rooms": ["2nde-a", "2nde-a-g1"], "reasons": ["removed"]}
    ]
    assert await status(server, "s-05", "/api/me") == 401
    refused = await YClient(url).connect(wait_synced=False)
    assert await refused.wait_closed() == 4401
    async with api(server, "t-martin") as http:
        page = (await http.get("/api/rooms/2nde-a/messages")).json()["messages"]
        figures = (await http.get(f"/api/rooms/2nde-a-g1/docs/{doc}/contributions")).json()
        members = (await http.get("/api/rooms/2nde-a-g1/docs")).json()["members"]
    mine = next(m for m in page if m["text"] == "Je fais la conclusion.")
    assert mine["author"] == {"id": "s-05", "name": "Manon", "role": "student"}
    assert {"id": "s-05", "name": "Manon"}.items() <= next(
        u for u in figures["users"] if u["id"] == "s-05"
    ).items()
    assert "s-05" not in {m["id"] for m in members}  # no longer in the group

    # Listed again: back, with her rooms.
    back = await post_roster(server, DEMO)
    assert back.json()["restored"] == ["s-05"]
    assert await status(server, "s-05", "/api/rooms/2nde-a-g1") == 200


async def test_only_admins_import_and_bad_files_are_refused_with_their_lines(
    demo: AtelierServer,
) -> None:
    server = demo
    body = formats.to_csv(DEMO).encode()
    for user, code in (("t-martin", 403), ("s-01", 403), ("p-01", 403), (None, 401)):
        async with api(server, user) as http:
            r = await http.post(IMPORT, content=body, headers={"Content-Type": "text/csv"})
        assert r.status_code == code, (user, r.text)
    async with api(server, "a-admin") as http:
        r = await http.post(IMPORT, content=body, headers={"Content-Type": "text/plain"})
        assert r.status_code == 415
        r = await http.post(
            IMPORT + "?dry_run=maybe", content=body, headers={"Content-Type": "text/csv"}
        )
        assert r.status_code == 400
        bad = body.decode().replace("user,s-02,Hugo,student", "user,s-02,Hugo,eleve")
        r = await http.post(IMPORT, content=bad.encode(), headers={"Content-Type": "text/csv"})
        assert r.status_code == 400
        problems = r.json()["problems"]
        line = 1 + next(i for i, t in enumerate(bad.splitlines()) if ",eleve," in t)
        assert problems == [
            {
                "line": line,
                "path": None,
                "field": "role",
                "message": "unknown role 'eleve' (one of student, teacher, parent, admin)",
            }
        ]
        huge = body + b"school,x,y,,,,,,,\n" * (MAX_BYTES // 18)
        r = await http.post(IMPORT, content=huge, headers={"Content-Type": "text/csv"})
        assert r.status_code == 413
        spec = (await http.get("/api/openapi.json")).json()
    post = spec["paths"][IMPORT]["post"]
    assert set(post["responses"]) == {"200", "400", "401", "403", "409", "413", "415"}
    assert "text/csv" in post["requestBody"]["content"]
    assert await status(server, "s-02", "/api/me") == 200  # nothing was imported


async def test_the_export_imports_back_as_no_change(demo: AtelierServer, tmp_path: Path) -> None:
    server = demo
    for name in ("roster.csv", "roster.json"):
        path = tmp_path / name
        out = run_cli(server, "roster", "export", str(path))
        assert out.returncode == 0, out.stderr
        assert formats.parse(path.read_bytes()) == DEMO
        back = run_cli(server, "roster", "import", str(path))
        assert back.returncode == 0 and "no change" in back.stdout, back.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("kind,id,name\nschool,demo,\n")
    out = run_cli(server, "roster", "import", str(bad))
    assert out.returncode == 1
    assert "line 2, field 'name': required for a school" in out.stderr


async def eventually_async(predicate: Callable[[], Awaitable[bool]], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)
