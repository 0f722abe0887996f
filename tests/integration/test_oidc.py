"""Signing in through the ENT: a real OpenID provider (the npm ``oidc-provider``, its
development login form) and a real Atelier server process configured with
``ATELIER_OIDC_*``, walked through with httpx as a browser would (tests/support/oidc.py).

The story: sign in → the session cookie's flags → /auth/session → a socket token →
a y-websocket doc opens with it → sign out (refused without the CSRF header or from
another site, accepted with it) → the token is refused from then on (4401, and 401 on
REST). And the refusals: a state that does not match, a replayed code, a user the roster
does not know, a sign-in cancelled at the provider — each a clear French page, and no
session. Secure cookies: only over TLS, and X-Forwarded-Proto counts only from a proxy
of ATELIER_TRUSTED_PROXIES.

Needs Node >= 20 and `npm ci --prefix tests/interop`: without them these tests fail.
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from tests.support.oidc import EntBrowser, OidcProvider, oidc_provider
from tests.support.server import SECRET, AtelierServer, free_port, make_server
from tests.support.yclient import YClient

pytestmark = pytest.mark.integration

ROOM = "2nde-a-g1"


def _callback(port: int) -> str:
    return f"http://127.0.0.1:{port}/auth/callback"


@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    return {"main": free_port(), "tls": free_port()}


@pytest.fixture(scope="module")
def provider(ports: dict[str, int]) -> Iterator[OidcProvider]:
    with oidc_provider([_callback(ports["main"]), _callback(ports["tls"])]) as p:
        yield p


@contextlib.contextmanager
def _server(folder: Path, port: int, env: dict[str, str]) -> Iterator[AtelierServer]:
    server = make_server(folder, **env)
    server.port = port
    server.start()
    try:
        yield server
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.stop()


@pytest.fixture(scope="module")
def atelier(
    tmp_path_factory: pytest.TempPathFactory, ports: dict[str, int], provider: OidcProvider
) -> Iterator[AtelierServer]:
    """ENT sign-in on, demo mode off; the session check cached 1 s (the default)."""
    with _server(tmp_path_factory.mktemp("oidc"), ports["main"], provider.atelier_env()) as s:
        yield s


@pytest.fixture
def browser(atelier: AtelierServer) -> Iterator[EntBrowser]:
    b = EntBrowser(atelier.http_url)
    yield b
    b.close()


def _page_kind(html: str) -> str | None:
    m = re.search(r'data-error="([a-z_]+)"', html)
    return m.group(1) if m else None


# ------------------------------------------------------------------ the story


def test_sign_in_opens_a_session_with_safe_cookies(browser: EntBrowser) -> None:
    assert browser.get("/auth/session").json() == {"oidc": True, "demo": False, "user": None}

    done = browser.sign_in("s-01", next_path="/#/room/2nde-a-g1")

    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/#/room/2nde-a-g1"
    state = [c for c in browser.set_cookies if c.name == "atelier_signin"]
    started, cleared = state[0], state[-1]
    assert {"httponly", "samesite", "path", "max-age"} <= set(started.attrs)
    assert started.attrs["samesite"].lower() == "lax"
    assert started.attrs["path"] == "/auth"
    assert int(started.attrs["max-age"]) == 600
    assert "secure" not in started.attrs  # plain http
    assert cleared.deleted
    cookie = browser.last_cookie("atelier_session")
    assert "httponly" in cookie.attrs
    assert cookie.attrs["samesite"].lower() == "lax"
    assert cookie.attrs["path"] == "/"
    assert "secure" not in cookie.attrs
    assert int(cookie.attrs["max-age"]) == 8 * 3600
    assert len(cookie.value) >= 40  # 256 random bits

    me = browser.get("/auth/session").json()
    assert me["user"] == {"id": "s-01", "role": "student", "display_name": "Léa"}
    assert me["oidc"] is True and me["socket_token_ttl_s"] == 300
    assert re.fullmatch(r"[0-9a-f]{64}", me["csrf"])
    assert me["expires_at"] == pytest.approx(time.time() + 8 * 3600, abs=60)


def test_socket_token_opens_a_doc_and_the_api(browser: EntBrowser, atelier: AtelierServer) -> None:
    browser.sign_in("s-02")
    csrf = browser.csrf()
    assert browser.post("/auth/socket-token").status_code == 403  # no CSRF header
    wrong = browser.post("/auth/socket-token", headers={"X-Atelier-CSRF": "0" * 64})
    assert wrong.status_code == 403
    cross = browser.post(
        "/auth/socket-token",
        headers={"X-Atelier-CSRF": csrf, "Origin": "https://evil.example"},
    )
    assert cross.status_code == 403
    minted = browser.post(
        "/auth/socket-token", headers={"X-Atelier-CSRF": csrf, "Origin": atelier.http_url}
    )
    assert minted.status_code == 200
    body = minted.json()
    assert body["expires_in"] == 300
    claims = jwt.decode(body["token"], SECRET, algorithms=["HS256"])
    assert claims["sub"] == "s-02"
    assert claims["exp"] - claims["iat"] == 300
    assert re.fullmatch(r"[0-9a-f]{64}", claims["sid"])
    assert claims["jti"]
    assert claims["sid"] not in browser.cookies["atelier_session"]  # the id is not the secret
    again = jwt.decode(browser.socket_token(), SECRET, algorithms=["HS256"])
    assert again["jti"] != claims["jti"] and again["sid"] == claims["sid"]

    # REST with the token as Bearer
    me = browser.http.get(
        f"{atelier.http_url}/api/me", headers={"Authorization": f"Bearer {body['token']}"}
    )
    assert me.status_code == 200 and me.json()["id"] == "s-02"


async def test_a_signed_in_student_edits_a_doc_then_signs_out(atelier: AtelierServer) -> None:
    browser = EntBrowser(atelier.http_url)
    try:
        assert browser.sign_in("s-03").status_code == 303
        token = browser.socket_token()
        doc = f"ent-{uuid.uuid4().hex[:8]}"
        url = f"{atelier.ws_url}/yjs/{ROOM}/{doc}?token={token}"
        writer = await YClient(url).connect()
        reader = await YClient(f"{atelier.ws_url}/yjs/{ROOM}/{doc}?token={token}").connect()
        await writer.type("Écrit après une connexion par l'ENT.")
        await reader.round_trip()
        deadline = time.monotonic() + 5
        while reader.content() != writer.content() and time.monotonic() < deadline:
            await reader.round_trip()
        assert reader.content() == "Écrit après une connexion par l'ENT."
        await reader.close()

        # sign out: the CSRF header and this site's Origin are required
        csrf = browser.csrf()
        assert browser.post("/auth/logout").status_code == 403
        cross = browser.post(
            "/auth/logout", headers={"X-Atelier-CSRF": csrf, "Origin": "http://evil.example"}
        )
        assert cross.status_code == 403
        assert browser.get("/auth/session").json()["user"]["id"] == "s-03"  # still signed in
        out = browser.post(
            "/auth/logout", headers={"X-Atelier-CSRF": csrf, "Origin": atelier.http_url}
        )
        assert out.status_code == 200 and out.json() == {"signed_out": True}
        ended_at = time.monotonic()
        # the session's open socket closes at once (server/revocation/)
        assert await writer.wait_closed(timeout=2) == 4401
        assert browser.last_cookie("atelier_session").deleted
        assert "atelier_session" not in browser.cookies

        # the session is over: its tokens are refused (at once on this node)
        refused = YClient(url)
        await refused.connect(wait_synced=False)
        assert await refused.wait_closed() == 4401
        assert refused.close_reason == "session ended"
        assert time.monotonic() - ended_at < 2
        rest = browser.http.get(
            f"{atelier.http_url}/api/me", headers={"Authorization": f"Bearer {token}"}
        )
        assert rest.status_code == 401 and rest.json()["message"] == "session ended"
        # the old cookie, presented again, opens nothing
        browser.cookies["atelier_session"] = browser.set_cookies[-2].value
        assert browser.get("/auth/session").json()["user"] is None
        assert browser.post("/auth/socket-token", headers={"X-Atelier-CSRF": csrf}).status_code == (
            401
        )
        await writer.close()
    finally:
        browser.close()


def test_a_cli_token_without_session_still_works(
    atelier: AtelierServer, browser: EntBrowser
) -> None:
    me = browser.http.get(
        f"{atelier.http_url}/api/me",
        headers={"Authorization": f"Bearer {atelier.token('t-martin')}"},
    )
    assert me.status_code == 200


# ------------------------------------------------------------------ refusals


def test_a_state_that_does_not_match_is_refused(browser: EntBrowser) -> None:
    back = browser.authorize("s-04")
    tampered = re.sub(r"state=[^&]+", "state=forged-state", back)
    answer = browser.get(tampered)
    assert answer.status_code == 400
    assert _page_kind(answer.text) == "state"
    assert "La connexion n&#x27;a pas abouti" in answer.text or "pas abouti" in answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert "atelier_session" not in browser.cookies
    # and a callback in a browser that never started a sign-in
    stranger = EntBrowser(browser.base)
    try:
        assert _page_kind(stranger.get(back).text) == "state"
        assert "atelier_session" not in stranger.cookies
    finally:
        stranger.close()


def test_a_replayed_code_is_refused(browser: EntBrowser, atelier: AtelierServer) -> None:
    back = browser.authorize("s-05")
    signin_state = dict(browser.cookies)
    assert browser.get(back).status_code == 303
    session_cookie = browser.cookies["atelier_session"]
    # the same callback again: its state was used up
    again = browser.get(back)
    assert again.status_code == 400 and _page_kind(again.text) == "state"
    # even with the state cookie put back, the provider refuses the code a second time
    browser.cookies = {"atelier_signin": signin_state["atelier_signin"]}
    replay = browser.get(back)
    assert replay.status_code == 400, replay.text
    assert _page_kind(replay.text) == "exchange"
    assert "déjà utilisé" in replay.text
    assert "atelier_session" not in browser.cookies
    # neither the code, nor the state, nor the session's secret reached the log
    code = re.search(r"code=([^&]+)", back)
    state = re.search(r"state=([^&]+)", back)
    assert code is not None and state is not None
    log = atelier.log()
    assert "/auth/callback?code=[redacted]&state=[redacted]" in log
    for secret in (code.group(1), state.group(1), session_cookie):
        assert secret not in log


def test_a_user_unknown_to_the_roster_gets_a_clear_page_and_no_session(
    browser: EntBrowser,
) -> None:
    answer = browser.sign_in("inconnu-99")
    assert answer.status_code == 403
    assert _page_kind(answer.text) == "unknown_user"
    assert "Compte inconnu d&#x27;Atelier" in answer.text or "Compte inconnu" in answer.text
    assert "inconnu-99" in answer.text
    assert "<html lang=fr>" in answer.text
    assert not [c for c in browser.set_cookies if c.name == "atelier_session"]
    assert browser.get("/auth/session").json()["user"] is None


def test_a_sign_in_cancelled_at_the_provider(browser: EntBrowser) -> None:
    started = browser.get("/auth/login")
    url = started.headers["location"]
    while True:  # to the provider's login form
        r = browser.ent.get(url)
        if not r.is_redirect:
            break
        url = str(r.url.join(r.headers["location"]))
    abort = re.search(r'href="([^"]*/abort)"', r.text)
    assert abort is not None, r.text[:600]
    r = browser.ent.get(str(r.url.join(abort.group(1))))
    while r.is_redirect and not r.headers["location"].startswith(browser.base):
        r = browser.ent.get(str(r.url.join(r.headers["location"])))
    answer = browser.get(r.headers["location"])
    assert answer.status_code == 403
    assert _page_kind(answer.text) == "denied"
    assert "atelier_session" not in browser.cookies


def test_an_open_redirect_is_not_followed(browser: EntBrowser) -> None:
    done = browser.sign_in("s-06", next_path="//evil.example/")
    assert done.status_code == 303 and done.headers["location"] == "/"


# ------------------------------------------------------------------ TLS and proxies


def test_forwarded_proto_is_ignored_without_a_trusted_proxy(browser: EntBrowser) -> None:
    started = browser.get("/auth/login", headers={"X-Forwarded-Proto": "https"})
    assert started.status_code == 302
    assert "secure" not in browser.last_cookie("atelier_signin").attrs
    # the callback it derived is the plain one
    assert "redirect_uri=http%3A%2F%2F127.0.0.1" in started.headers["location"]


def test_cookies_are_secure_behind_a_trusted_tls_proxy(
    tmp_path: Path, ports: dict[str, int], provider: OidcProvider
) -> None:
    env = provider.atelier_env(
        ATELIER_TRUSTED_PROXIES="127.0.0.1",
        # the provider knows Atelier by this URL (a real proxy would make it https)
        ATELIER_OIDC_REDIRECT_URL=_callback(ports["tls"]),
    )
    with _server(tmp_path, ports["tls"], env) as server:
        behind = EntBrowser(server.http_url, headers={"X-Forwarded-Proto": "https"})
        try:
            done = behind.sign_in("s-07")
            assert done.status_code == 303, done.text
            assert "secure" in behind.last_cookie("atelier_session").attrs
            signin = next(c for c in behind.set_cookies if c.name == "atelier_signin")
            assert "secure" in signin.attrs
            me = behind.get("/auth/session").json()
            assert me["user"]["id"] == "s-07"
            # https page, https Origin: the same site for the CSRF check
            out = behind.post(
                "/auth/logout",
                headers={
                    "X-Atelier-CSRF": me["csrf"],
                    "Origin": f"https://127.0.0.1:{ports['tls']}",
                },
            )
            assert out.status_code == 200
        finally:
            behind.close()


# ------------------------------------------------------------------ which claim is the user


def test_the_user_id_claim_is_a_setting(tmp_path: Path) -> None:
    """An ENT whose ``sub`` is its own id (``ent-s-08``) and whose ``preferred_username``
    is the school's: ATELIER_OIDC_USER_CLAIM picks the claim that names roster users."""
    port = free_port()
    with oidc_provider([_callback(port)], sub_prefix="ent-", client_secret=None) as ent:
        env = ent.atelier_env(ATELIER_OIDC_USER_CLAIM="preferred_username")
        with _server(tmp_path, port, env) as server:
            b = EntBrowser(server.http_url)
            try:
                assert b.sign_in("s-08").status_code == 303  # a public client: PKCE alone
                assert b.get("/auth/session").json()["user"]["id"] == "s-08"
            finally:
                b.close()


def test_the_auth_endpoints_are_in_openapi(browser: EntBrowser) -> None:
    paths = browser.get("/api/openapi.json").json()["paths"]
    for path in ("/auth/login", "/auth/callback", "/auth/session", "/auth/socket-token"):
        assert path in paths
    assert "post" in paths["/auth/logout"]
