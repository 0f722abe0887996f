"""Data protection against a real server, on SQLite and on PostgreSQL: a student's
export holds what they wrote, only the right people get it, an erasure leaves nothing
of them in the database (chat text, authorship, attribution, versions' metadata,
notifications, roster) while the group's doc keeps its text, and retention deletes
what is past its time, once across nodes."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import zipfile
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import msgpack
import pytest
import sqlalchemy as sa

from tests.support.liveclient import LiveClient
from tests.support.server import AtelierServer
from tests.support.services import postgres_database
from tests.support.yclient import YClient, eventually

pytestmark = pytest.mark.integration

GROUP = "2nde-a-g1"  # s-01 … s-06; s-03 is Chloé, s-04 Lucas
CLASS = "2nde-a"


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/atelier.db"
    else:
        with postgres_database("atelier_priv") as url:
            yield url


def start(folder: Path, url: str, **env: str) -> AtelierServer:
    server = AtelierServer(
        data_dir=folder, database_url=url, extra_env={"ATELIER_ERASURE_SETTLE_S": "0.5", **env}
    )
    server.prepare()
    server.start()
    return server


def sync_url(url: str) -> str:
    return url.replace("+aiosqlite", "")


def api(server: AtelierServer, user: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.http_url,
        headers={"Authorization": f"Bearer {server.token(user)}"},
        timeout=30,
    )


async def test_export_then_erase_a_student(tmp_path: Path, database: str) -> None:
    server = start(tmp_path, database)
    db = sa.create_engine(sync_url(database))
    try:
        await _story(server, db)
    finally:
        server.stop()
        db.dispose()


async def _story(server: AtelierServer, db: sa.Engine) -> None:
    due = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    async with api(server, "t-martin") as http:
        r = await http.post(
            f"/api/classes/{CLASS}/assignments",
            json={"title": "Exposé", "due_at": due, "target": "groups"},
        )
        assert r.status_code == 201, r.text
        work = next(w for w in r.json()["works"] if w["room_id"] == GROUP)
    doc = work["doc"]
    base = server.ws_url
    chloe = await YClient(f"{base}/yjs/{GROUP}/notes?token={server.token('s-03')}").connect()
    lucas = await YClient(f"{base}/yjs/{GROUP}/notes?token={server.token('s-04')}").connect()
    await chloe.type("Chloé écrit ici. ")
    await eventually(lambda: "Chloé écrit" in lucas.content())
    await lucas.type("Lucas aussi.")
    await eventually(lambda: "Lucas aussi." in chloe.content())
    chat = await LiveClient(f"{base}/rooms/{GROUP}/live?token={server.token('s-03')}").connect()
    classmate = await LiveClient(
        f"{base}/rooms/{GROUP}/live?token={server.token('s-04')}"
    ).connect()
    said = await chat.request({"t": "post", "text": "Mon secret de Chloé"})
    assert said.get("t") == "ok", said
    await eventually(lambda: "Mon secret de Chloé" in classmate.texts())
    rendu = await YClient(f"{base}/yjs/{GROUP}/{doc}?token={server.token('s-03')}").connect()
    await rendu.type("Mon exposé. ")
    await rendu.round_trip()
    await asyncio.sleep(0.5)  # stored (write-behind) before the hand-in freezes it
    async with api(server, "s-03") as http:
        r = await http.post(f"/api/works/{work['id']}/hand-in")
        assert r.status_code == 200, r.text
    await rendu.close()

    # What she sees of her data, and her export.
    async with api(server, "s-03") as http:
        mine = (await http.get("/api/me/data")).json()
        counts = mine["me"]["counts"]
        assert counts["chat"] == 1 and counts["notifications"] >= 1, counts
        assert {c["key"] for c in mine["retention"]} >= {"chat", "documents", "logs"}

        async def stored() -> bool:
            r = await http.get("/api/me/data")
            return r.json()["me"]["counts"]["doc_updates"] >= 1

        await eventually_async(stored)
        r = await http.get("/api/me/data/export")
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/zip"
    z = zipfile.ZipFile(io.BytesIO(r.content))
    record = json.loads(z.read("donnees.json"))
    assert record["user"]["display_name"] == "Chloé"
    assert [m["text"] for m in record["chat"]] == ["Mon secret de Chloé"]
    assert GROUP in record["memberships"]
    assert any(w["handed_in_by_me"] for w in record["works"])
    notes = next(c for c in record["contributions"] if c["doc_name"] == "notes")
    assert notes["characters_present"] == len("Chloé écrit ici. ")
    assert "Chloé écrit ici." in z.read(f"documents/{GROUP}--notes.html").decode()
    assert "Mon secret de Chloé" in z.read("chat.csv").decode("utf-8-sig")

    # Nobody else: a classmate, another child's parent; the parent of s-01 gets s-01's,
    # without the group docs' text (a parent reads no group room).
    async with api(server, "s-04") as http:
        assert (await http.get("/api/people/s-03/data/export")).status_code == 403
        assert (await http.post("/api/admin/privacy/erase/s-01")).status_code == 403
    async with api(server, "p-01") as http:
        assert (await http.get("/api/people/s-03/data/export")).status_code == 403
        assert (await http.get("/api/people/s-03/data")).status_code == 403
        assert (await http.get("/api/people/s-01/data/export")).status_code == 200
        children = (await http.get("/api/me/data")).json()["children"]
        assert [c["id"] for c in children] == ["s-01"]
    async with api(server, "a-admin") as http:
        spec = (await http.get("/api/openapi.json")).json()["paths"]
        assert {"/api/me/data/export", "/api/admin/privacy/erase/{user_id}"} <= set(spec)
        assert (await http.get("/api/people/s-03/data/export")).status_code == 200
        assert (await http.get("/api/people/nobody-here/data/export")).status_code == 404
        assert (await http.get("/api/people/bad%20id/data")).status_code == 400

    # She asks for erasure; admins see it.
    async with api(server, "s-03") as http:
        r = await http.post("/api/people/s-03/data/erasure-request", json={"reason": "fin"})
        assert r.status_code == 202, r.text
        again = await http.post("/api/people/s-03/data/erasure-request", json={})
        assert again.status_code == 200
        bad = await http.post("/api/people/s-03/data/erasure-request", content=b"[1]")
        assert bad.status_code == 400
    async with api(server, "a-admin") as http:
        pending = (await http.get("/api/admin/privacy/requests")).json()["requests"]
        assert [(p["user_id"], p["requested_by"]) for p in pending] == [("s-03", "s-03")]
        found = (await http.get("/api/admin/privacy/people", params={"q": "chlo"})).json()
        assert {"id": "s-03", "name": "Chloé", "role": "student"} in found["people"]
        assert (await http.post("/api/admin/privacy/erase/s-03", json={})).status_code == 400
        assert (
            await http.post("/api/admin/privacy/erase/a-admin", json={"confirm": "a-admin"})
        ).status_code == 409
        r = await http.post("/api/admin/privacy/erase/s-03", json={"confirm": "s-03"})
        assert r.status_code == 200, r.text
        report = r.json()
        assert (
            await http.post("/api/admin/privacy/erase/s-03", json={"confirm": "s-03"})
        ).status_code == 404
        assert (await http.get("/api/admin/privacy/requests")).json()["requests"] == []
    assert report["counts"]["chat_messages"] == 1 and report["counts"]["roster"] == 1
    assert report["counts"]["doc_updates"] >= 1 and report["counts"]["notifications"] >= 1
    assert report["sockets_closed"] >= 2 and report["seconds"] < 30

    # The classmate's open channel shows the message emptied, at once.
    await eventually(lambda: "Mon secret de Chloé" not in classmate.texts())
    shown = next(m for m in classmate.messages.values() if m["seq"] == said["seq"])
    assert shown["deleted"] and shown["author"]["name"] == "Personne effacée"
    await classmate.close()

    # Her sockets closed, her token is worth nothing.
    assert await chloe.wait_closed() in (4401, 4403)
    assert await chat.wait_closed() in (4401, 4403)
    async with api(server, "s-03") as http:
        assert (await http.get("/api/me")).status_code == 401

    # The group's doc keeps her text, attributed to nobody named.
    await lucas.type(" Fin.")
    async with api(server, "t-martin") as http:
        r = await http.get(f"/api/rooms/{GROUP}/docs/notes/contributions")
        users = r.json()["users"]
        r = await http.get(f"/api/rooms/{GROUP}/docs/{doc}/versions")
        versions = r.text
    assert "s-03" not in json.dumps(users) and "Chloé" not in json.dumps(users)
    assert any(u["id"].startswith("anon-") for u in users)
    assert "s-03" not in versions
    assert "Chloé écrit ici." in lucas.content()
    await lucas.close()
    _nothing_left(db, "s-03", "Chloé", "Mon secret")


def _nothing_left(db: sa.Engine, user: str, name: str, secret: str) -> None:
    with db.connect() as conn:

        def count(sql: str, **params: object) -> int:
            return int(conn.execute(sa.text(sql), params).scalar() or 0)

        assert count("SELECT count(*) FROM app_user WHERE id = :u", u=user) == 0
        assert count("SELECT count(*) FROM membership WHERE user_id = :u", u=user) == 0
        assert count("SELECT count(*) FROM chat_message WHERE text LIKE :s", s=f"%{secret}%") == 0
        assert count("SELECT count(*) FROM chat_message WHERE author_id = :u", u=user) == 0
        assert count("SELECT count(*) FROM chat_message WHERE author_name = :n", n=name) == 0
        assert count("SELECT count(*) FROM doc_update WHERE author_id = :u", u=user) == 0
        assert count("SELECT count(*) FROM notification WHERE user_id = :u", u=user) == 0
        assert count("SELECT count(*) FROM auth_session WHERE user_id = :u", u=user) == 0
        for col in ("created_by", "contributors"):
            n = count(f"SELECT count(*) FROM doc_version WHERE {col} LIKE :u", u=f"%{user}%")
            assert n == 0, col
        for col in ("submitted_by", "student_id", "feedback_by"):
            assert count(f"SELECT count(*) FROM work WHERE {col} = :u", u=user) == 0
        for (blob,) in conn.execute(sa.text("SELECT attribution FROM doc")):
            if blob is not None:
                summary = msgpack.unpackb(bytes(blob), raw=False, strict_map_key=False)
                assert user not in json.dumps(summary)
        erased = conn.execute(
            sa.text("SELECT detail, target FROM audit WHERE action = 'privacy.erase'")
        ).all()
        assert len(erased) == 1 and erased[0].target == user
        assert name not in erased[0].detail and "anon-" not in erased[0].detail
        exports = count("SELECT count(*) FROM audit WHERE action = 'privacy.export'")
        assert exports >= 3  # hers, the parent's of s-01, the admin's
        assert count("SELECT count(*) FROM audit WHERE actor = :u OR target = :u", u=user) == 1


async def eventually_async(check: Callable[[], Awaitable[bool]], timeout: float = 10) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not await check():
        assert loop.time() < end, "timed out"
        await asyncio.sleep(0.1)


async def test_retention_deletes_what_is_past_its_time(tmp_path: Path, database: str) -> None:
    env = {
        "ATELIER_RETENTION_CHAT_DAYS": "30",
        "ATELIER_RETENTION_NOTIFICATIONS_DAYS": "30",
        "ATELIER_RETENTION_AUDIT_DAYS": "0",
        "ATELIER_RETENTION_INTERVAL_S": "0",
        "ATELIER_PRIVACY_EXPORT_MAX_BYTES": "600",
    }
    server = start(tmp_path, database, **env)
    try:
        live = await LiveClient(
            f"{server.ws_url}/rooms/{GROUP}/live?token={server.token('s-01')}"
        ).connect()
        for text in ("ancien", "récent"):
            assert (await live.request({"t": "post", "text": text})).get("t") == "ok"
        await live.close()
        # Two docs; each editing session ends with an automatic version when it unloads.
        for name in ("vieux", "recent"):
            y = await YClient(
                f"{server.ws_url}/yjs/{GROUP}/{name}?token={server.token('s-01')}"
            ).connect()
            await y.type(f"Texte {name}. ")
            await y.round_trip()
            await y.close()
        async with api(server, "s-01") as http:

            async def checkpointed() -> bool:
                r = await http.get(f"/api/rooms/{GROUP}/docs/recent/versions")
                return any(v["kind"] == "session" for v in r.json()["versions"])

            await eventually_async(checkpointed)  # the doc unloaded (0.2 s): its session
            r = await http.get("/api/me/data/export")
            assert r.status_code == 413 and r.json()["error"] == "too_large"
            r = await http.post(f"/api/rooms/{GROUP}/docs/recent/versions", json={"name": "Gardée"})
            assert r.status_code in (200, 201), r.text
    finally:
        server.stop()
    db = sa.create_engine(sync_url(database))
    try:
        _retention_cli(server, db, database)
    finally:
        db.dispose()


def _retention_cli(server: AtelierServer, db: sa.Engine, database: str) -> None:
    now = datetime.now(UTC)
    with db.begin() as conn:
        run = conn.execute
        run(
            sa.text("UPDATE chat_message SET created_at = :t WHERE text = 'ancien'"),
            {"t": now - timedelta(days=45)},
        )
        # "vieux" untouched for more than two school years; "recent"'s automatic
        # versions half a year old (its named version too: that one stays).
        run(
            sa.text("UPDATE doc SET updated_at = :t WHERE name = 'vieux'"),
            {"t": now - timedelta(days=800)},
        )
        run(
            sa.text("UPDATE doc_update SET created_at = :t WHERE doc_name = 'vieux'"),
            {"t": now - timedelta(days=800)},
        )
        run(
            sa.text("UPDATE doc_version SET created_at = :t WHERE doc_name = 'recent'"),
            {"t": now - timedelta(days=200)},
        )
        automatic = run(
            sa.text(
                "SELECT count(*) FROM doc_version WHERE doc_name = 'recent' AND kind <> 'named'"
            )
        ).scalar()
    assert automatic >= 1
    dry = server.cli("retention", "run", "--dry-run")
    assert "would remove 1 chat" in dry and "audit: kept forever" in dry
    assert "would remove 1 documents" in dry and f"would remove {automatic} versions" in dry
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM chat_message")).scalar() == 2
    out = server.cli("retention", "run")
    assert "removed 1 chat" in out and "removed 1 documents" in out
    with db.connect() as conn:
        texts = [r[0] for r in conn.execute(sa.text("SELECT text FROM chat_message"))]
        runs = conn.execute(
            sa.text("SELECT actor, detail FROM audit WHERE action = 'retention.run'")
        ).all()
        docs = {r[0] for r in conn.execute(sa.text("SELECT name FROM doc"))}
        kept = [
            r[0]
            for r in conn.execute(sa.text("SELECT kind FROM doc_version WHERE doc_name = 'recent'"))
        ]
    assert "vieux" not in docs and "recent" in docs
    assert kept == ["named"]
    assert texts == ["récent"]
    assert len(runs) == 1 and runs[0].actor == "cli"
    assert json.loads(runs[0].detail)["removed"]["chat"] == 1
    if database.startswith("postgresql"):
        # Another node holds the run: this one does nothing and says so.
        with db.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": 0x524554414E})
            proc = _cli_status(server, "retention", "run")
            conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": 0x524554414E})
        assert proc.returncode == 1 and b"another node" in proc.stderr


def _cli_status(server: AtelierServer, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        env=server.env(),
        capture_output=True,
        timeout=120,
    )
