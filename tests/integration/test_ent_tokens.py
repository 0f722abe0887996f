"""The ENT's tokens (RS256, ES256) against a real server process and a real JWKS server
(tests/support/jwks.py): docs over y-websocket, REST, every refusal (4401 / 401), key
rotation with a client connected, the ENT down, the user-claim mapping, and Atelier's
own HS256 tokens beside them.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from tests.support.jwks import (
    AUDIENCE,
    ISSUER,
    JwksServer,
    SigningKey,
    ent_claims,
    hs256_signed_with,
)
from tests.support.server import SECRET, AtelierServer, make_server
from tests.support.yclient import YClient, eventually

pytestmark = pytest.mark.integration

ROOM = "2nde-a-g1"  # s-01…s-06
WINDOW_S = 0.3  # ATELIER_JWKS_REFRESH_MIN_S here: an unknown kid refetches once per window
RSA = SigningKey.rsa("ent-rsa-1")
EC = SigningKey.ec("ent-ec-1")
ISSUED: list[str] = []  # every token these tests sent: none may reach a log line


def token(key: SigningKey, user: str, **claims: object) -> str:
    t = key.sign(ent_claims(user, **claims))
    ISSUED.append(t)
    return t


@pytest.fixture(scope="module")
def ent() -> Iterator[JwksServer]:
    server = JwksServer(RSA, EC).start()
    yield server
    server.stop()


def ent_env(ent: JwksServer, **extra: str) -> dict[str, str]:
    return {
        "ATELIER_JWKS_URL": ent.url,
        "ATELIER_JWT_ISSUER": ISSUER,
        "ATELIER_JWT_AUDIENCE": AUDIENCE,
        "ATELIER_JWKS_REFRESH_MIN_S": str(WINDOW_S),
        "ATELIER_JWKS_CACHE_S": "300",
        **extra,
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, ent: JwksServer) -> Iterator[AtelierServer]:
    node = make_server(tmp_path_factory.mktemp("ent-tokens"), **ent_env(ent))
    node.start()
    yield node
    if node.proc is not None and node.proc.poll() is None:
        node.stop()


async def opened(server: AtelierServer, t: str, doc: str, room: str = ROOM) -> YClient:
    c = await YClient(f"{server.ws_url}/yjs/{room}/{doc}?token={t}").connect()
    assert c.synced.is_set(), f"closed {c.close_code} {c.close_reason!r}"
    return c


async def ws_refusal(server: AtelierServer, t: str, doc: str) -> tuple[int | None, str]:
    c = YClient(f"{server.ws_url}/yjs/{ROOM}/{doc}?token={t}")
    await c.connect(wait_synced=False)
    code = await c.wait_closed()
    assert not c.synced.is_set()
    return code, c.close_reason


async def me(server: AtelierServer, t: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as http:
        return await http.get("/api/me", headers={"Authorization": f"Bearer {t}"})


async def window() -> None:
    """Let the refetch window pass, so the next unknown kid may fetch the JWKS."""
    await asyncio.sleep(WINDOW_S + 0.1)


@pytest.mark.parametrize("key", [RSA, EC], ids=["RS256", "ES256"])
async def test_ent_token_opens_a_doc_and_the_api(
    server: AtelierServer, key: SigningKey, doc: str
) -> None:
    a = await opened(server, token(key, "s-01"), doc)
    b = await opened(server, token(key, "s-02"), doc)
    await a.type("Bonjour")
    await eventually(lambda: b.content() == "Bonjour")
    r = await me(server, token(key, "t-martin"))
    assert r.status_code == 200
    assert r.json()["id"] == "t-martin" and r.json()["role"] == "teacher"  # from the roster
    await a.close()
    await b.close()


async def test_roles_come_from_the_roster_not_the_token(server: AtelierServer, doc: str) -> None:
    t = token(RSA, "s-07", role="teacher", roles=["admin"])  # s-07 is in group 2
    code, reason = await ws_refusal(server, t, doc)
    assert code == 4403, reason
    assert (await me(server, t)).json()["role"] == "student"


async def test_hs256_tokens_still_work_beside_jwks(server: AtelierServer, doc: str) -> None:
    c = await opened(server, server.token("s-01"), doc)
    r = await me(server, server.token("s-03"))
    assert (r.status_code, r.json()["id"]) == (200, "s-03")
    await c.close()


OTHER = SigningKey.rsa("ent-rsa-1")  # a key of nobody's, claiming a known kid


def _refused_tokens() -> list[tuple[str, str, str]]:
    """(case, token, reason), made when called: the ENT's tokens live 300 s, and the
    suite may reach this test many minutes after collecting it."""
    now = int(time.time())
    claims = ent_claims("s-01")
    return [
        ("expired", token(RSA, "s-01", exp=now - 120), "expired"),
        ("no-exp", token(RSA, "s-01", exp=None), "MissingRequiredClaim"),
        ("wrong-iss", token(EC, "s-01", iss="https://ent.evil.example/auth"), "InvalidIssuer"),
        ("wrong-aud", token(RSA, "s-01", aud="another-service"), "InvalidAudience"),
        ("alg-none", jwt.encode(claims, None, "none", headers={"kid": RSA.kid}), "algorithm"),
        (
            "hs256-with-public-pem",
            hs256_signed_with(RSA.public_pem(), claims, kid=RSA.kid),
            "InvalidSignature",
        ),
        ("alg-not-the-keys", EC.sign(claims, kid=RSA.kid), "does not match"),
        ("other-key-known-kid", OTHER.sign(claims), "InvalidSignature"),
        ("no-user-claim", token(RSA, "s-01", sub=None), "user claim"),
        ("not-a-roster-user", token(EC, "nobody-at-all"), "unknown user"),
    ]


CASES = [c[0] for c in _refused_tokens()]


@pytest.mark.parametrize("case", CASES)
async def test_refused_with_4401_and_401(
    server: AtelierServer, ent: JwksServer, case: str, doc: str
) -> None:
    t, reason = next((t, why) for name, t, why in _refused_tokens() if name == case)
    ISSUED.append(t)
    before = ent.fetches
    code, why = await ws_refusal(server, t, doc)
    assert (code, reason in why) == (4401, True), why
    r = await me(server, t)
    assert r.status_code == 401 and reason in r.json()["message"], r.text
    assert ent.fetches == before  # every kid here is known: the ENT is not asked


async def test_unknown_kid_refused_after_one_refetch(
    server: AtelierServer, ent: JwksServer, doc: str
) -> None:
    t = RSA.sign(ent_claims("s-01"), kid="ent-rsa-never")
    ISSUED.append(t)
    await window()
    before = ent.fetches
    code, why = await ws_refusal(server, t, doc)
    assert (code, "unknown kid" in why) == (4401, True), why
    assert ent.fetches == before + 1  # refetched once: still unknown
    # A flood of forged kids: at most one fetch per window, however many tokens.
    start = time.monotonic()
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as http:
        for round_ in range(5):
            forged = [
                RSA.sign(ent_claims("s-01"), kid=f"ent-forged-{round_}-{i}") for i in range(40)
            ]
            answers = await asyncio.gather(
                *(http.get("/api/me", headers={"Authorization": f"Bearer {f}"}) for f in forged)
            )
            assert {a.status_code for a in answers} == {401}
    windows = (time.monotonic() - start) / WINDOW_S
    assert ent.fetches - (before + 1) <= int(windows) + 1, (ent.fetches - before, windows)


async def test_key_rotation_while_a_client_is_connected(
    server: AtelierServer, ent: JwksServer, doc: str
) -> None:
    old = ent.add(SigningKey.rsa("ent-rot-old"))
    await window()
    a = await opened(server, token(old, "s-01"), doc)  # a new kid: one fetch brings it
    await a.type("avant ")

    new = ent.add(SigningKey.ec("ent-rot-new"))  # the ENT rotates: the new key signs
    await window()
    before = ent.fetches
    b = await opened(server, token(new, "s-02"), doc)
    assert ent.fetches == before + 1  # accepted without a restart: one extra fetch
    await eventually(lambda: b.content() == "avant ")
    assert (await me(server, token(new, "s-03"))).status_code == 200
    assert ent.fetches == before + 1

    ent.remove(old.kid)  # …and later retires the old one
    await window()
    forged = RSA.sign(ent_claims("s-01"), kid="ent-rot-unknown")
    assert (await me(server, forged)).status_code == 401  # an unknown kid: refetched
    assert ent.fetches == before + 2
    code, why = await ws_refusal(server, token(old, "s-01"), doc)
    assert (code, "unknown kid" in why) == (4401, True), why
    assert (await me(server, token(old, "s-01"))).status_code == 401

    # the socket opened with the old key is untouched: a token is checked once, on open
    await a.type("après")
    await eventually(lambda: b.content() == "avant après")
    await a.round_trip()
    assert not a.closed.is_set()
    await a.close()
    await b.close()


async def test_ent_down_cached_keys_still_verify(
    server: AtelierServer, ent: JwksServer, doc: str
) -> None:
    ent.down()
    try:
        await window()
        for key, user in [(RSA, "s-04"), (EC, "s-05")]:
            c = await opened(server, token(key, user), doc)
            assert (await me(server, token(key, user))).status_code == 200
            await c.close()
        t = RSA.sign(ent_claims("s-01"), kid="ent-rsa-while-down")
        ISSUED.append(t)
        assert (await me(server, t)).status_code == 401  # the refetch fails: refused
        assert (await me(server, token(EC, "s-06"))).status_code == 200  # keys kept
        assert (await server_health(server)) == 200
    finally:
        ent.up()


async def server_health(server: AtelierServer) -> int:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as http:
        return (await http.get("/healthz")).status_code


async def test_user_claim_mapping(tmp_path: Path, ent: JwksServer, doc: str) -> None:
    node = make_server(tmp_path, **ent_env(ent, ATELIER_JWT_USER_CLAIM="uid"))
    node.start()
    try:
        t = token(RSA, "ent-7f3a9c", uid="s-01")  # sub: the ENT's opaque id
        r = await me(node, t)
        assert (r.status_code, r.json()["id"]) == (200, "s-01")
        c = await opened(node, token(EC, "ent-7f3a9c", uid="s-02"), doc)
        await c.close()
        r = await me(node, token(RSA, "s-01"))  # sub is not the user claim here
        assert r.status_code == 401 and "user claim" in r.json()["message"]
        assert (await me(node, node.token("s-03"))).status_code == 200  # ours: sub
    finally:
        node.stop()


def test_jwks_without_issuer_or_audience_fails_at_startup(tmp_path: Path) -> None:
    node = AtelierServer(
        data_dir=tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/atelier.db",
        extra_env={
            "ATELIER_JWKS_URL": "https://ent.example.org/jwks",
            "ATELIER_JWT_ISSUER": ISSUER,
        },
    )
    out = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--port", str(node.port)],
        env=node.env(),
        capture_output=True,
        timeout=60,
    )
    text = (out.stdout + out.stderr).decode()
    assert out.returncode == 2, text
    assert "ATELIER_JWKS_URL is set, so ATELIER_JWT_AUDIENCE must be set too" in text
    assert SECRET not in text and "Traceback" not in text


def test_no_token_in_any_log_line(server: AtelierServer) -> None:
    logs = server.all_logs()
    assert "JWKS fetched" in logs  # the logs are there…
    parts = [p for t in ISSUED for p in t.split(".")[1:] if p]  # claims, signatures
    assert len(parts) > len(ISSUED)
    assert [p for p in parts if p in logs] == []  # …and no token, nor a piece of one
