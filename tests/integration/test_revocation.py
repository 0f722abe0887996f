"""The revocation list against a real server: a revoked token (``jti``) or the ENT's
sign-in session (``sid`` of its tokens, checked against a real JWKS server) is refused
before its ``exp``, the sockets it opened close at once (4401), and the list survives a
restart. Only admins revoke."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import jwt
import pytest

from tests.support.jwks import AUDIENCE, ISSUER, JwksServer, SigningKey, ent_claims
from tests.support.liveclient import LiveClient
from tests.support.server import SECRET, make_server
from tests.support.yclient import YClient

pytestmark = pytest.mark.integration


KEY = SigningKey.rsa("ent-revocation-1")


def mint(user: str, ttl: int = 3600) -> tuple[str, str]:
    """An Atelier token (HS256) with its jti."""
    jti = f"jti-{user}-{time.monotonic_ns()}"
    claims = {"sub": user, "exp": int(time.time()) + ttl, "jti": jti}
    return jwt.encode(claims, SECRET, "HS256"), jti


def ent_token(user: str, sid: str) -> str:
    """An ENT token (RS256, its JWKS) naming the ENT's sign-in session."""
    return KEY.sign(ent_claims(user, sid=sid))


async def test_revoked_tokens_and_sessions_are_refused_and_their_sockets_close(
    tmp_path: Path,
) -> None:
    ent = JwksServer(KEY).start()
    server = make_server(
        tmp_path,
        ATELIER_JWKS_URL=ent.url,
        ATELIER_JWT_ISSUER=ISSUER,
        ATELIER_JWT_AUDIENCE=AUDIENCE,
    )
    server.start()
    try:
        base = server.ws_url
        stolen, jti = mint("s-01")
        other, _ = mint("s-01")
        in_session = ent_token("s-02", "ent-session-abc")
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
                "/api/admin/revocations", json={"sid": "ent-session-abc"}, headers=admin
            )
            assert r.status_code == 200 and r.json()["closed_here"] == 1
            assert await chat.wait_closed(timeout=2) == 4401
            later = ent_token("s-02", "ent-session-abc")  # a new token of the ended session
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
        ent.stop()


async def test_admins_read_the_settings_without_their_secrets(tmp_path: Path) -> None:
    server = make_server(tmp_path, ATELIER_ENT_WEBHOOK_SECRET="a-webhook-secret-0123")
    server.start()
    try:
        async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as http:
            r = await http.get(
                "/api/admin/settings",
                headers={"Authorization": f"Bearer {server.token('a-admin')}"},
            )
            assert r.status_code == 200, r.text
            shown = {s["name"]: s for s in r.json()["settings"]}
            assert shown["ATELIER_JWT_SECRET"]["value"] == "set"
            assert shown["ATELIER_ENT_WEBHOOK_SECRET"]["value"] == "set"
            assert shown["ATELIER_DATABASE_URL"]["value"] == "set"
            assert shown["ATELIER_ROSTER_CACHE_S"]["value"] == 30
            assert shown["ATELIER_ROSTER_CACHE_S"]["description"]
            assert SECRET not in r.text and "a-webhook-secret-0123" not in r.text
            for user in ("t-martin", "s-01", "p-01"):
                r = await http.get(
                    "/api/admin/settings",
                    headers={"Authorization": f"Bearer {server.token(user)}"},
                )
                assert r.status_code == 403
    finally:
        server.stop()
