"""The revocation list against a real server: a revoked token (``jti``) or sign-in session
(``sid``) is refused before its ``exp``, the sockets it opened close at once (4401), and
the list survives a restart. Only admins revoke."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import jwt
import pytest

from tests.support.liveclient import LiveClient
from tests.support.server import SECRET, make_server
from tests.support.yclient import YClient

pytestmark = pytest.mark.integration


def mint(user: str, *, sid: str | None = None, ttl: int = 3600) -> tuple[str, str]:
    jti = f"jti-{user}-{time.monotonic_ns()}"
    claims = {"sub": user, "exp": int(time.time()) + ttl, "jti": jti}
    if sid is not None:
        claims["sid"] = sid
    return jwt.encode(claims, SECRET, "HS256"), jti


async def test_revoked_tokens_and_sessions_are_refused_and_their_sockets_close(
    tmp_path: Path,
) -> None:
    server = make_server(tmp_path)
    server.start()
    try:
        base = server.ws_url
        stolen, jti = mint("s-01")
        other, _ = mint("s-01")
        in_session, _ = mint("s-02", sid="session-abc")
        doc = await YClient(f"{base}/yjs/2nde-a-g1/rapport?token={stolen}").connect()
        chat = await LiveClient(f"{base}/rooms/2nde-a-g1/live?token={in_session}").connect()
        same_user = await YClient(f"{base}/yjs/2nde-a-g1/rapport?token={other}").connect()
        admin = {"Authorization": f"Bearer {server.token('a-admin')}"}
        async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as http:
            teacher = {"Authorization": f"Bearer {server.token('t-martin')}"}
            r = await http.post("/api/admin/revocations", json={"jti": jti}, headers=teacher)
            assert r.status_code == 403
            r = await http.post("/api/admin/revocations", json={}, headers=admin)
            assert r.status_code == 400
            r = await http.post(
                "/api/admin/revocations", json={"jti": jti, "sid": "x"}, headers=admin
            )
            assert r.status_code == 400
            r = await http.post("/api/admin/revocations", json={"jti": jti}, headers=admin)
            assert r.status_code == 200 and r.json() == {"revoked": "jti", "closed_here": 1}
            assert await doc.wait_closed(timeout=2) == 4401
            # The stolen token is useless; the user's other token goes on.
            r = await http.get("/api/me", headers={"Authorization": f"Bearer {stolen}"})
            assert r.status_code == 401
            assert same_user.close_code is None
            r = await http.get("/api/me", headers={"Authorization": f"Bearer {other}"})
            assert r.status_code == 200
            r = await http.post(
                "/api/admin/revocations", json={"sid": "session-abc"}, headers=admin
            )
            assert r.status_code == 200 and r.json()["closed_here"] == 1
            assert await chat.wait_closed(timeout=2) == 4401
            later, _ = mint("s-02", sid="session-abc")  # a new token of the ended session
            r = await http.get("/api/me", headers={"Authorization": f"Bearer {later}"})
            assert r.status_code == 401
        await same_user.close()
        # Across a restart: the list is read back from the database.
        server.stop()
        server.start()
        again = YClient(f"{server.ws_url}/yjs/2nde-a-g1/rapport?token={stolen}")
        await again.connect(wait_synced=False)
        assert await again.wait_closed() == 4401
        async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as http:
            r = await http.get("/api/me", headers={"Authorization": f"Bearer {later}"})
            assert r.status_code == 401
            r = await http.get("/api/me", headers={"Authorization": f"Bearer {other}"})
            assert r.status_code == 200
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.stop()
