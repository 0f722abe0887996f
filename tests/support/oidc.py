"""A real OpenID provider for the ENT sign-in tests, and a browser-less walk through it.

:class:`OidcProvider` runs tests/interop/oidc_provider.mjs (the npm ``oidc-provider``,
pinned by tests/interop/package-lock.json) on a free port: its development login form
accepts any login and password, and the login is the account id (``s-01`` is the
roster's student s-01). :meth:`OidcProvider.atelier_env` is what an Atelier node needs to
use it.

:class:`EntBrowser` plays a browser with httpx: it follows the redirects of a sign-in
from Atelier to the provider and back, fills the provider's login form, and keeps each
side's cookies apart (cookies do not care about ports, and Atelier's Secure cookies must
be inspected, not dropped), recording every cookie Atelier sets with its attributes.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest

from tests.support.server import free_port

INTEROP_DIR = Path(__file__).resolve().parents[1] / "interop"
SCRIPT = INTEROP_DIR / "oidc_provider.mjs"
CLIENT_ID = "atelier-test"
CLIENT_SECRET = "atelier-test-client-secret"


def require_provider() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("the ENT sign-in tests need Node >= 20 on PATH")
    if not (INTEROP_DIR / "node_modules" / "oidc-provider" / "package.json").is_file():
        pytest.fail(
            "tests/interop/node_modules/oidc-provider is missing: run "
            "`npm ci --prefix tests/interop` (`make test` does it)"
        )
    return node


@dataclass
class OidcProvider:
    redirect_uris: list[str]
    client_secret: str | None = CLIENT_SECRET
    sub_prefix: str = ""
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[str] | None = None
    output: list[str] = field(default_factory=list)
    _reader: threading.Thread = field(init=False, repr=False)

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def atelier_env(self, **more: str) -> dict[str, str]:
        env = {
            "ATELIER_OIDC_ISSUER": self.issuer,
            "ATELIER_OIDC_CLIENT_ID": CLIENT_ID,
            "ATELIER_OIDC_SCOPES": "openid profile",
        }
        if self.client_secret:
            env["ATELIER_OIDC_CLIENT_SECRET"] = self.client_secret
        env.update(more)
        return env

    def start(self, timeout: float = 20) -> OidcProvider:
        node = require_provider()
        env = {
            **os.environ,
            "OIDC_PORT": str(self.port),
            "OIDC_CLIENT_ID": CLIENT_ID,
            "OIDC_CLIENT_SECRET": self.client_secret or "",
            "OIDC_REDIRECT_URIS": ",".join(self.redirect_uris),
            "OIDC_SUB_PREFIX": self.sub_prefix,
        }
        self.proc = subprocess.Popen(
            [node, str(SCRIPT)],
            cwd=INTEROP_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        ready = threading.Event()

        def read() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                self.output.append(line.rstrip())
                if line.startswith("ready "):
                    ready.set()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        if not ready.wait(timeout):
            self.stop()
            raise RuntimeError("the OpenID provider did not start:\n" + self.log())
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc is not None and self.proc.stdout is not None:
            self._reader.join(5)
            self.proc.stdout.close()

    def log(self) -> str:
        return "\n".join(self.output)


@contextlib.contextmanager
def oidc_provider(redirect_uris: list[str], **kw: Any) -> Iterator[OidcProvider]:
    provider = OidcProvider(redirect_uris, **kw).start()
    try:
        yield provider
    finally:
        provider.stop()


# ------------------------------------------------------------------ a browser, without one


@dataclass
class SetCookie:
    name: str
    value: str
    attrs: dict[str, str]  # lower-case attribute names; flags map to ""

    @classmethod
    def parse(cls, header: str) -> SetCookie:
        first, *rest = [part.strip() for part in header.split(";")]
        name, _, value = first.partition("=")
        attrs = {}
        for part in rest:
            key, _, val = part.partition("=")
            attrs[key.strip().lower()] = val.strip()
        return cls(name, value.strip('"'), attrs)

    @property
    def deleted(self) -> bool:
        return self.attrs.get("max-age") == "0" or self.value == ""


_FORM = re.compile(r'<form[^>]*action="([^"]+)"[^>]*method="post"', re.I)


class EntBrowser:
    """One person's browser: a cookie jar for the provider, one for Atelier."""

    def __init__(self, atelier_url: str, *, headers: dict[str, str] | None = None) -> None:
        self.base = atelier_url.rstrip("/")
        self.ent = httpx.Client(follow_redirects=False, timeout=15)
        self.http = httpx.Client(follow_redirects=False, timeout=15)
        self.headers = dict(headers or {})  # sent to Atelier on every request
        self.cookies: dict[str, str] = {}  # Atelier's, carried by hand (Secure ones too)
        self.set_cookies: list[SetCookie] = []

    def close(self) -> None:
        self.ent.close()
        self.http.close()

    # -- Atelier
    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {**self.headers, **kw.pop("headers", {})}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        url = path if path.startswith("http") else self.base + path
        response = self.http.request(method, url, headers=headers, **kw)
        self.http.cookies.clear()  # ours are in self.cookies
        for header in response.headers.get_list("set-cookie"):
            cookie = SetCookie.parse(header)
            self.set_cookies.append(cookie)
            if cookie.deleted:
                self.cookies.pop(cookie.name, None)
            else:
                self.cookies[cookie.name] = cookie.value
        return response

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("POST", path, **kw)

    def last_cookie(self, name: str) -> SetCookie:
        return [c for c in self.set_cookies if c.name == name][-1]

    # -- the sign-in
    def authorize(self, login: str, next_path: str | None = None) -> str:
        """From GET /auth/login through the provider's login form: the callback URL the
        provider sends the browser back to (not followed yet)."""
        params = {"next": next_path} if next_path else None
        started = self.get("/auth/login", params=params)
        assert started.status_code == 302, (started.status_code, started.text[:500])
        return self.through_provider(started.headers["location"], login)

    def through_provider(self, url: str, login: str) -> str:
        for _ in range(20):
            if url.startswith(self.base):
                return url
            response = self.ent.get(url)
            if response.is_redirect:
                url = urljoin(url, response.headers["location"])
                continue
            assert response.status_code == 200, (response.status_code, response.text[:800])
            form = _FORM.search(response.text)
            assert form is not None, f"no form on the provider's page:\n{response.text[:800]}"
            action = urljoin(url, unescape(form.group(1)))
            posted = self.ent.post(
                action, data={"prompt": "login", "login": login, "password": "motdepasse"}
            )
            assert posted.is_redirect, (posted.status_code, posted.text[:800])
            url = urljoin(action, posted.headers["location"])
        raise AssertionError("too many redirects at the provider")

    def sign_in(self, login: str, next_path: str | None = None) -> httpx.Response:
        """The whole sign-in; returns Atelier's answer to the callback."""
        return self.get(self.authorize(login, next_path))

    def csrf(self) -> str:
        return str(self.get("/auth/session").json()["csrf"])

    def socket_token(self) -> str:
        response = self.post("/auth/socket-token", headers={"X-Atelier-CSRF": self.csrf()})
        assert response.status_code == 200, response.text
        return str(response.json()["token"])


def wait_until(predicate: Any, timeout: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.05)
