"""JSON logs over a whole story, read back whole: every line is one JSON object with
the fields an operator files it by, and no content nor token is anywhere in it."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import httpx
import pytest
import websockets

from tests.support.jwks import SigningKey, ent_claims
from tests.support.liveclient import LiveClient
from tests.support.server import make_server
from tests.support.yclient import YClient, eventually

pytestmark = pytest.mark.integration

FIELDS = {"ts", "level", "logger", "message", "node"}


async def test_a_json_log_files_every_line_and_holds_no_content_nor_token(
    tmp_path: Path,
) -> None:
    server = make_server(tmp_path, ATELIER_LOG_FORMAT="json", ATELIER_NODE_ID="node-logs")
    server.start()
    doc_marker = "DOCMARK" + secrets.token_hex(6)
    chat_marker = "CHATMARK" + secrets.token_hex(6)
    student, teacher = server.token("s-01"), server.token("t-martin")
    ent_token = SigningKey.rsa("ent-key").sign(ent_claims("s-01"))
    try:
        async with httpx.AsyncClient(base_url=server.http_url) as http:
            me = await http.get("/api/me", headers={"Authorization": f"Bearer {student}"})
            assert me.status_code == 200
            # A request id is made for every response; a client's own is not believed
            # (no TRUSTED_PROXIES here).
            assert len(me.headers["x-request-id"]) == 16
            forged = await http.get(
                "/api/me",
                headers={"Authorization": f"Bearer {student}", "X-Request-Id": "chosen-id"},
            )
            assert forged.headers["x-request-id"] != "chosen-id"
            lock = await http.put(
                "/api/rooms/2nde-a-g1/docs/journal/lock",
                json={"locked": False},
                headers={"Authorization": f"Bearer {teacher}"},
            )
            assert lock.status_code == 200
            bad = await http.get(
                "/api/rooms/2nde-a-g1/messages?limit=100000",
                headers={"Authorization": f"Bearer {student}"},
            )
            assert bad.status_code == 400  # an error answered
            assert (await http.get(f"/api/me?token={student}")).status_code == 401

        base = f"{server.ws_url}/yjs/2nde-a-g1/journal"
        a = await YClient(f"{base}?token={student}").connect()
        b = await YClient(f"{base}?token={server.token('s-02')}").connect()
        await a.type(f"Notre texte {doc_marker} ")
        await eventually(lambda: doc_marker in b.content())
        await a.close()
        await b.close()

        live = await LiveClient(f"{server.ws_url}/rooms/2nde-a/live?token={student}").connect()
        answer = await live.request({"t": "post", "text": f"Bonjour {chat_marker}"})
        assert answer["t"] == "ok"
        await live.close()

        # Refused sockets: an ENT-style token this node cannot check (4401), a student
        # of another class (4403), a malformed frame (4400).
        ent = YClient(f"{base}?token={ent_token}")
        await ent.connect(wait_synced=False)
        assert await ent.wait_closed() == 4401
        other = YClient(f"{base}?token={server.token('s-31')}")
        await other.connect(wait_synced=False)
        assert await other.wait_closed() == 4403
        async with websockets.connect(f"{base}?token={student}") as ws:
            await ws.recv()
            await ws.send(b"\xff\xff\xff")
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400
    finally:
        server.stop()

    text = server.log()
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) > 10
    records = []
    for line in lines:
        record = json.loads(line)  # every line, not only most
        assert FIELDS <= record.keys(), line
        assert record["node"] == "node-logs"
        records.append(record)
    for secret in (doc_marker, chat_marker, student, teacher, ent_token):
        assert secret not in text
    # The signature alone (a token cut where a line wraps would still leak it).
    for secret in (student, teacher, ent_token):
        assert secret.rsplit(".", 1)[1] not in text

    access = [r for r in records if r["logger"] == "uvicorn.access"]
    assert access and all(len(r.get("request_id", "")) >= 8 for r in access)
    me_lines = [r for r in access if "GET /api/me HTTP" in r["message"]]
    assert {r.get("user_id") for r in me_lines} == {"s-01"}
    assert {r["request_id"] for r in me_lines} == {
        me.headers["x-request-id"],
        forged.headers["x-request-id"],
    }
    # Socket lines carry their connection, and the user and room once admitted.
    malformed = [r for r in records if "malformed frame" in r["message"]]
    assert malformed, "the malformed frame is logged"
    assert all(
        r.get("user_id") == "s-01" and r.get("room_id") == "2nde-a-g1" and r.get("conn_id")
        for r in malformed
    )
    assert any(r["level"] == "info" and r["logger"] == "server.app" for r in records)


async def test_behind_a_trusted_proxy_its_request_id_files_the_lines(tmp_path: Path) -> None:
    server = make_server(tmp_path, ATELIER_LOG_FORMAT="json", ATELIER_TRUSTED_PROXIES="127.0.0.1")
    server.start()
    try:
        async with httpx.AsyncClient(base_url=server.http_url) as http:
            kept = await http.get("/healthz", headers={"X-Request-Id": "nginx-5f2a9c"})
            assert kept.headers["x-request-id"] == "nginx-5f2a9c"
            # Malformed (a space, a quote, too long): replaced by one of ours.
            for bad in ('a b"c', "x" * 65):
                r = await http.get("/healthz", headers={"X-Request-Id": bad})
                assert r.headers["x-request-id"] != bad and len(r.headers["x-request-id"]) == 16
    finally:
        server.stop()
    records = [json.loads(line) for line in server.log().splitlines() if line.strip()]
    access = [r for r in records if r["logger"] == "uvicorn.access"]
    assert any(r.get("request_id") == "nginx-5f2a9c" for r in access)
    assert not any('a b"c' == r.get("request_id") for r in records)
