"""Sign-in sessions (server/sessions/service.py) on a real SQLite file, two in-process
nodes sharing one bus; the socket token's claims; the sign-in's small rules."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import jwt
import pytest
from pydantic import ValidationError

from server.api.auth import _next_path
from server.auth import tokens
from server.bus.memory import InMemoryBus, MemoryHub
from server.bus.outbox import Outbox
from server.config import Settings
from server.logs import redact
from server.persistence.db import create_engine
from server.persistence.sessions import SessionStore
from server.sessions.oidc import EntProvider, SignInError
from server.sessions.service import Sessions, session_id_of
from server.types import NodeId
from tests.support.inproc import migrated_sqlite, until


class Node:
    def __init__(self, name: str, hub: MemoryHub, url: str, check_s: float) -> None:
        self.settings = Settings(session_check_s=check_s, session_ttl_s=3600)
        self.engine = create_engine(url)
        self.bus = InMemoryBus(NodeId(name), hub)
        self.outbox = Outbox(self.bus)
        self.sessions = Sessions(self.settings, SessionStore(self.engine), self.bus, self.outbox)
        self.ended: list[tuple[str, str]] = []

        async def hook(sid: str, user: str) -> None:
            self.ended.append((sid, user))

        self.sessions.on_end.append(hook)

    async def start(self) -> Node:
        await self.bus.start()
        self.outbox.start()
        await self.sessions.start()
        return self

    async def close(self) -> None:
        await self.sessions.close()
        await self.outbox.close()
        await self.bus.close()
        await self.engine.dispose()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return migrated_sqlite(tmp_path)


@pytest.fixture
async def nodes(db_url: str) -> AsyncIterator[tuple[Node, Node]]:
    hub = MemoryHub()
    # A long cache on purpose: only the bus can make node B forget an open session soon.
    a = await Node("a", hub, db_url, check_s=60).start()
    b = await Node("b", hub, db_url, check_s=60).start()
    yield a, b
    await a.close()
    await b.close()


async def test_a_session_is_found_by_its_cookie_and_only_its_hash_is_stored(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    secret, row = await a.sessions.open("s-01")
    assert row.id == session_id_of(secret) and secret not in row.id
    assert (await b.sessions.from_cookie(secret)) == row
    assert await b.sessions.from_cookie("not-a-cookie") is None
    assert await b.sessions.from_cookie("x" * 500) is None
    stored = await a.sessions.store.get(row.id)
    assert stored is not None and stored.user_id == "s-01" and stored.ended_at is None
    assert await b.sessions.is_open(row.id, "s-01")
    assert not await b.sessions.is_open(row.id, "s-02")  # a token of someone else


async def test_ending_a_session_reaches_every_node_and_fires_the_hooks_once(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    _, row = await a.sessions.open("s-02")
    assert await b.sessions.is_open(row.id, "s-02")  # now cached open on B for 60 s
    assert await a.sessions.end(row.id) is True
    assert a.ended == [(row.id, "s-02")]
    assert not await a.sessions.is_open(row.id, "s-02")  # at once here
    await until(lambda: b.ended == [(row.id, "s-02")], "the end reached node B")
    assert not await b.sessions.is_open(row.id, "s-02")  # despite B's 60 s cache
    assert await b.sessions.end(row.id) is False  # only one end
    await asyncio.sleep(0.05)
    assert a.ended == [(row.id, "s-02")] and b.ended == [(row.id, "s-02")]
    stored = await a.sessions.store.get(row.id)
    assert stored is not None and stored.ended_at is not None


async def test_without_the_bus_message_the_cache_delay_bounds_it(db_url: str) -> None:
    a = await Node("a", MemoryHub(), db_url, check_s=0.3).start()
    b = await Node("b", MemoryHub(), db_url, check_s=0.3).start()  # another hub: no bus
    try:
        _, row = await a.sessions.open("s-03")
        assert await b.sessions.is_open(row.id, "s-03")
        await a.sessions.end(row.id)
        assert await b.sessions.is_open(row.id, "s-03")  # B still has it cached
        await asyncio.sleep(0.35)
        assert not await b.sessions.is_open(row.id, "s-03")
        assert b.ended == []
    finally:
        await a.close()
        await b.close()


async def test_an_expired_session_is_closed_and_purged(db_url: str) -> None:
    node = await Node("a", MemoryHub(), db_url, check_s=0).start()
    try:
        store = node.sessions.store
        old = await store.create("f" * 64, "s-04", ttl_s=-10)
        assert not await node.sessions.is_open(old.id, "s-04")
        assert await store.end(old.id) is None  # an expired session cannot be ended
        assert await store.purge(older_than_s=5) == 1
        assert await store.get(old.id) is None
    finally:
        await node.close()


def test_a_socket_token_names_its_session_and_is_unique() -> None:
    secret = "k" * 40
    one = tokens.issue(secret, "s-01", 300, sid="a" * 64)
    two = tokens.issue(secret, "s-01", 300, sid="a" * 64)
    c1 = jwt.decode(one, secret, algorithms=["HS256"])
    c2 = jwt.decode(two, secret, algorithms=["HS256"])
    assert c1["sid"] == "a" * 64 and c1["exp"] - c1["iat"] == 300
    assert c1["jti"] != c2["jti"]
    claims = tokens.verify_hs256(secret, one)
    assert (claims.user_id, claims.sid, claims.jti) == ("s-01", "a" * 64, c1["jti"])
    plain = tokens.verify_hs256(secret, tokens.issue(secret, "s-01"))
    assert plain.sid is None and plain.jti is not None  # every token can be revoked
    bad_sid = jwt.encode({"sub": "s-01", "exp": 4102444800, "sid": 5}, secret, "HS256")
    with pytest.raises(tokens.InvalidToken, match="sid"):
        tokens.verify_hs256(secret, bad_sid)
    # keys derived for other purposes never verify as tokens
    state_key = tokens.derive_key(secret, "oidc-state")
    assert state_key != tokens.derive_key(secret, "csrf")
    forged = jwt.encode({"sub": "s-01", "exp": 4102444800}, state_key, "HS256")
    with pytest.raises(tokens.InvalidToken):
        tokens.verify_hs256(secret, forged)


@pytest.mark.parametrize(
    ("asked", "landing"),
    [
        (None, "/"),
        ("/#/room/2nde-a-g1", "/#/room/2nde-a-g1"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
        ("/ok\r\nSet-Cookie: x=1", "/"),
        ("/" + "a" * 600, "/"),
    ],
)
def test_where_a_sign_in_lands(asked: str | None, landing: str) -> None:
    assert _next_path(asked) == landing


def test_oidc_settings_go_together() -> None:
    with pytest.raises(ValidationError):
        Settings(oidc_issuer="http://127.0.0.1:1")
    assert Settings(oidc_issuer="http://127.0.0.1:1", oidc_client_id="x").oidc_enabled
    assert not Settings().oidc_enabled
    with pytest.raises(ValidationError):
        Settings(socket_token_ttl_s=0)


def test_the_sign_in_callback_is_redacted_in_log_lines() -> None:
    line = '"GET /auth/callback?code=Zk9-abc&state=s7Xy&iss=http%3A%2F%2Fent HTTP/1.1" 303'
    clean = redact(line)
    assert "Zk9-abc" not in clean and "s7Xy" not in clean
    assert "code=[redacted]&state=[redacted]&iss=" in clean
    assert redact("errcode=5 unicode=x") == "errcode=5 unicode=x"


async def test_a_provider_that_cannot_be_reached_is_a_clear_refusal() -> None:
    from tests.support.server import free_port

    settings = Settings(oidc_issuer=f"http://127.0.0.1:{free_port()}", oidc_client_id="x")
    with pytest.raises(SignInError) as caught:
        await EntProvider(settings)._metadata()
    assert caught.value.kind == "unavailable"
