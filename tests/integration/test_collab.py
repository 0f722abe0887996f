"""Stock @hocuspocus/provider clients (3 and 4) against a real Atelier server, on /collab.

The clients are the ones Tiptap's Collaboration extension uses, run under Node by the
scripts of tests/interop (pinned by its package-lock.json): hocus_story.mjs (several docs
over one socket, co-editing with a y-websocket client, acknowledgements, read-only,
refusal), hocus_refresh.mjs (token refresh) and hocus_restart.mjs (a server restart with
offline edits). The bounds of the endpoint, a retried Auth and a revoked token are
checked with a raw socket.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import websockets

from server.sync import hocuspocus as hp
from tests.support.node import INTEROP_DIR, require_node_clients, run_node
from tests.support.server import AtelierServer, make_server

pytestmark = [pytest.mark.integration, pytest.mark.interop]

PROVIDERS = ["@hocuspocus/provider", "hocuspocus-provider-v4"]


def story_config(collab: AtelierServer, yjs: AtelierServer, provider: str) -> dict[str, Any]:
    return {
        "collabUrl": f"{collab.ws_url}/collab",
        "yjsUrl": f"{yjs.ws_url}/yjs",
        "httpUrl": yjs.http_url,
        "provider": provider,
        "doc": f"hp-{uuid.uuid4().hex[:8]}",
        "tokens": {
            "student": collab.token("s-01"),
            "classmate": yjs.token("s-02"),
            "teacher": yjs.token("t-martin"),
        },
        "timeoutMs": 15_000,
    }


def check_story(report: dict[str, Any]) -> None:
    phases = report["phases"]
    assert phases["multiplex"]["socketsOpened"] == 1  # three docs, one socket
    assert phases["multiplex"]["scopes"] == ["read-write", "read-write", "readonly"]
    assert phases["coedit"]["textLength"] == 80
    assert phases["coedit"]["awareness"] == ["Hugo", "Léa"]
    credited = phases["coedit"]["credited"]  # characters each one inserted, as the server saw
    assert credited == {"s-01": 40, "s-02": 40}
    assert phases["acks"]["unsynced"] == [0, 0]
    assert phases["readonly"]["teacherText"] == "consigne du professeur"
    assert phases["readonly"]["studentUnsynced"] >= 1  # the refused write stays the client's
    assert phases["refused"]["reason"] == "no access to this room"
    assert phases["refused"]["socketsOpened"] == 1
    assert phases["lock"]["scopes"] == ["read-write", "readonly", "read-write"]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_stock_hocuspocus_provider_story(atelier: Any, provider: str) -> None:
    code, stdout, stderr = await run_node(
        "hocus_story.mjs", story_config(atelier, atelier, provider), timeout=90
    )
    if code != 0:
        pytest.fail(f"{provider}: the story failed (exit {code}):\n{stderr}")
    check_story(json.loads(stdout))


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_token_refresh(tmp_path: Path, provider: str) -> None:
    server = make_server(tmp_path, ATELIER_COLLAB_TOKEN_REFRESH_S="60")
    server.start()
    try:
        ttl = 4
        config = {
            "collabUrl": f"{server.ws_url}/collab",
            "yjsUrl": f"{server.ws_url}/yjs",
            "provider": provider,
            "doc": f"hp-{uuid.uuid4().hex[:8]}",
            "renewTokens": [server.token("s-01", ttl=ttl), server.token("s-01")],
            "staleToken": server.token("s-02", ttl=ttl),
            "readerToken": server.token("s-03"),
            "expireMs": ttl * 1000,
            "timeoutMs": 15_000,
        }
        code, stdout, stderr = await run_node("hocus_refresh.mjs", config, timeout=60)
    finally:
        server.stop()
    if code != 0:
        pytest.fail(f"token refresh failed (exit {code}):\n{stderr}\n{server.log()[-3000:]}")
    report = json.loads(stdout)
    assert report["stale"]["reason"] == "expired token"
    assert report["renewed"]["asked"] >= 2
    assert report["renewed"]["scopes"][:2] == ["read-write", "read-write"]  # each Auth answered


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_restart_with_offline_edits(fresh_atelier: AtelierServer, provider: str) -> None:
    node = require_node_clients()
    server = fresh_atelier
    config = {
        "collabUrl": f"{server.ws_url}/collab",
        "yjsUrl": f"{server.ws_url}/yjs",
        "provider": provider,
        "doc": f"hp-{uuid.uuid4().hex[:8]}",
        "token": server.token("s-01"),
        "readerToken": server.token("s-02"),
        "timeoutMs": 30_000,
    }
    proc = await asyncio.create_subprocess_exec(
        node,
        str(INTEROP_DIR / "hocus_restart.mjs"),
        cwd=INTEROP_DIR,
        env={**os.environ, "INTEROP_CONFIG": json.dumps(config)},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None

    async def step() -> dict[str, Any]:
        line = await asyncio.wait_for(proc.stdout.readline(), 40)  # type: ignore[union-attr]
        if not line:
            err = await proc.stderr.read()  # type: ignore[union-attr]
            pytest.fail(f"the restart story stopped: {err.decode()}")
        return json.loads(line)

    try:
        assert (await step())["step"] == "typed"
        server.stop()  # SIGTERM: flushed, sockets closed with 1012
        proc.stdin.write(b"go\n")
        assert (await step())["step"] == "offline"
        server.proc = None
        server.start()  # same port, same database
        proc.stdin.write(b"go\n")
        report = await step()
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    assert report["ok"] is True
    assert report["socketsOpened"] >= 2  # it reconnected by itself
    assert report["texts"] == ["[en ligne a][hors ligne a]", "[en ligne b][hors ligne b]"]
    assert report["local"] == report["texts"]


# --- the endpoint's bounds, with a raw socket ---


def auth(doc: str, token: str) -> bytes:
    raw = token.encode()
    length = bytes((len(raw) & 0x7F | 0x80, len(raw) >> 7))  # tokens are 128..16383 bytes
    return hp.prefix(doc) + bytes((hp.AUTH, hp.AUTH_TOKEN)) + length + raw


async def received(ws: Any, n: int, timeout: float = 5) -> list[bytes]:
    out = []
    for _ in range(n):
        out.append(await asyncio.wait_for(ws.recv(), timeout))
    return out


async def test_frames_before_auth_are_bounded(atelier: AtelierServer) -> None:
    step1 = hp.prefix("2nde-a-g1/preauth") + b"\x00\x00\x01\x00"
    async with websockets.connect(f"{atelier.ws_url}/collab") as ws:
        for _ in range(200):  # the default bound is 128 frames
            await ws.send(step1)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_the_doc_count_is_bounded_per_socket(atelier: AtelierServer) -> None:
    token = atelier.token("s-01")
    refused = hp.permission_denied(
        hp.prefix("2nde-a-g1/count-16"), "too many documents on this connection"
    )
    async with websockets.connect(f"{atelier.ws_url}/collab") as ws:
        for i in range(17):  # the default bound is 16 docs
            await ws.send(auth(f"2nde-a-g1/count-{i}", token))
        frames: list[bytes] = []

        def authenticated() -> int:
            return sum(f.endswith(b"\x02\x02\x0aread-write") for f in frames)

        # 16 × (Authenticated, step 1) and the refusal, in any order
        while (refused not in frames or authenticated() < 16) and len(frames) < 60:
            frames.append(await asyncio.wait_for(ws.recv(), 10))
        assert refused in frames
        assert authenticated() == 16
        first = hp.prefix("2nde-a-g1/count-0")
        await ws.send(first + b"\x00\x00\x01\x00")  # the other docs go on: step 1 → step 2
        for _ in range(40):  # past the step 1 frames still coming
            answer = await asyncio.wait_for(ws.recv(), 5)
            if answer.startswith(first + b"\x00\x01"):
                break
        else:
            pytest.fail("no sync step 2 for the first doc")


async def test_malformed_frame_closes_4400_and_a_bad_token_is_refused_per_doc(
    atelier: AtelierServer,
) -> None:
    doc = "2nde-a-g1/bad-token"
    async with websockets.connect(f"{atelier.ws_url}/collab") as ws:
        await ws.send(auth(doc, "not-a-jwt"))
        (denied,) = await received(ws, 1)
        assert denied.startswith(hp.prefix(doc) + bytes((hp.AUTH, hp.AUTH_PERMISSION_DENIED)))
        assert b"invalid token" in denied
        # Asked again with a good token (provider 4 retries): authorised, and its step 1,
        # sent before the answer, is answered.
        await ws.send(auth(doc, atelier.token("s-01")))
        await ws.send(hp.prefix(doc) + b"\x00\x00\x01\x00")
        answers = await received(ws, 3)
        assert answers[0] == hp.authenticated(hp.prefix(doc), "read-write")
        assert any(a.startswith(hp.prefix(doc) + b"\x00\x01") for a in answers[1:])
        await ws.send(hp.prefix(doc) + bytes((hp.SYNC_STATUS, 1)))  # server → client only
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400


async def test_a_socket_that_never_authenticates_is_closed_4401(tmp_path: Path) -> None:
    server = make_server(tmp_path, ATELIER_COLLAB_AUTH_TIMEOUT_S="1")
    server.start()
    try:
        async with websockets.connect(f"{server.ws_url}/collab") as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    finally:
        server.stop()


async def test_a_revoked_token_ends_its_doc_and_the_socket_goes_on(atelier: AtelierServer) -> None:
    revoked, kept = atelier.token("s-01"), atelier.token("s-01")
    jti = jwt.decode(revoked, options={"verify_signature": False})["jti"]
    one, two = "2nde-a-g1/revoked-one", "2nde-a-g1/revoked-two"
    async with websockets.connect(f"{atelier.ws_url}/collab") as ws:
        await ws.send(auth(one, revoked))
        await ws.send(auth(two, kept))
        frames: list[bytes] = []
        ready = [hp.authenticated(hp.prefix(d), "read-write") for d in (one, two)]
        while not all(r in frames for r in ready) and len(frames) < 10:
            frames.append(await asyncio.wait_for(ws.recv(), 5))
        async with httpx.AsyncClient(base_url=atelier.http_url, timeout=10) as http:
            r = await http.post(
                "/api/admin/revocations",
                json={"jti": jti},
                headers={"Authorization": f"Bearer {atelier.token('a-admin')}"},
            )
            assert r.status_code == 200 and r.json()["closed_here"] == 1
        denied = hp.prefix(one) + bytes((hp.AUTH, hp.AUTH_PERMISSION_DENIED))
        for _ in range(10):
            frame = await asyncio.wait_for(ws.recv(), 5)
            if frame.startswith(denied):
                break
        else:
            pytest.fail("no PermissionDenied for the revoked token's doc")
        await ws.send(hp.prefix(two) + b"\x00\x00\x01\x00")  # the other doc answers
        for _ in range(10):
            if (await asyncio.wait_for(ws.recv(), 5)).startswith(hp.prefix(two) + b"\x00\x01"):
                break
        else:
            pytest.fail("the other doc stopped answering")


async def test_refused_auths_are_bounded_per_socket(atelier: AtelierServer) -> None:
    async with websockets.connect(f"{atelier.ws_url}/collab") as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            for i in range(4 * 16 + 1):  # 4 × COLLAB_MAX_DOCS, then one more
                await ws.send(auth(f"2nde-a-g1/guess-{i}", "not-a-jwt" * 20))
            for _ in range(4 * 16 + 2):
                await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_one_user_per_socket(atelier: AtelierServer) -> None:
    """Two docs authorised at the same moment with two users' tokens: one wins the
    socket, the other doc is refused (attribution and revocation are per user)."""
    one, two = "2nde-a-g1/user-one", "2nde-a-g1/user-two"
    async with websockets.connect(f"{atelier.ws_url}/collab") as ws:
        await ws.send(auth(one, atelier.token("s-01")))
        await ws.send(auth(two, atelier.token("s-02")))
        frames = [await asyncio.wait_for(ws.recv(), 5) for _ in range(3)]
    refused = [
        hp.permission_denied(hp.prefix(d), "this connection belongs to another user")
        for d in (one, two)
    ]
    assert sum(r in frames for r in refused) == 1
    assert sum(f.endswith(b"\x02\x02\x0aread-write") for f in frames) == 1


async def test_the_node_limits_apply_to_each_doc(tmp_path: Path) -> None:
    """MAX_SOCKETS_PER_USER counts each doc open over /collab as one connection, and a
    doc past it, or past the room's doc count, is refused alone: the others go on."""
    server = make_server(tmp_path, ATELIER_MAX_SOCKETS_PER_USER="2", ATELIER_MAX_DOCS_PER_ROOM="3")
    server.start()
    try:
        token = server.token("s-01")
        docs = ["2nde-a-g1/limit-a", "2nde-a-g1/limit-b", "2nde-a-g1/limit-c"]
        async with websockets.connect(f"{server.ws_url}/collab") as ws:
            for doc in docs[:2]:
                await ws.send(auth(doc, token))
                answer = (await received(ws, 1))[0]
                assert answer == hp.authenticated(hp.prefix(doc), "read-write")
                await received(ws, 1)  # the server's sync step 1 of that doc
            await ws.send(auth(docs[2], token))
            (denied,) = await received(ws, 1)
            assert denied == hp.permission_denied(
                hp.prefix(docs[2]), "too many open connections for this user (2)"
            )
            # The socket and its two docs go on: step 1 answered with step 2.
            await ws.send(hp.prefix(docs[0]) + b"\x00\x00\x01\x00")
            for _ in range(10):
                if (await asyncio.wait_for(ws.recv(), 5)).startswith(
                    hp.prefix(docs[0]) + b"\x00\x01"
                ):
                    break
            else:
                pytest.fail("no sync step 2 for the first doc")
        # Another student, in the same room: with limit-d the room holds three docs
        # (limit-c was refused before it loaded), so limit-e is one too many.
        other = server.token("s-02")
        async with websockets.connect(f"{server.ws_url}/collab") as ws:
            await ws.send(auth("2nde-a-g1/limit-d", other))
            assert (await received(ws, 1))[0] == hp.authenticated(
                hp.prefix("2nde-a-g1/limit-d"), "read-write"
            )
            await received(ws, 1)
            await ws.send(auth("2nde-a-g1/limit-e", other))
            while True:
                frame = await asyncio.wait_for(ws.recv(), 5)
                if frame.startswith(hp.prefix("2nde-a-g1/limit-e")):
                    break
            assert frame == hp.permission_denied(
                hp.prefix("2nde-a-g1/limit-e"), "this room has reached its limit of 3 documents"
            )
    finally:
        server.stop()
