"""REST for the ENT's administrators: revoke a token, a sign-in session, or everything a
user holds open, at once and on every node (server/revocation/). Admins act on access,
never on room content.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.api.rest import admin_of, error
from server.context import AppContext
from server.persistence.audit import record
from server.persistence.db import writer

log = logging.getLogger(__name__)

#: Without ``until``, a revoked token or session is refused this long (the longest a token
#: Atelier accepts may live is the ENT's business; a day covers any sane one).
DEFAULT_FOR_S = 86_400
MAX_FOR_S = 366 * 86_400
MAX_ID = 128


def _id(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_ID:
        raise ValueError(f"{key}: an id of 1 to {MAX_ID} characters")
    return value


async def revoke(request: Request) -> Response:
    """
    ---
    summary: Revoke a token (jti), a sign-in session (sid), or a user's open sockets.
    description: >-
      Admins only. Takes one of {jti, until?}, {sid, until?} or {user}. A token or a
      session is refused on every node until ``until`` (unix seconds; default a day), and
      across restarts; the sockets it opened close with 4401. {user} checks the
      user's open sockets again against the roster on every node (after a change made
      outside Atelier): those left without access close with 4403.
    responses:
      200:
        description: '{"revoked": "jti" | "sid" | "user", "closed_here": n}'
      400:
        description: None or several of jti, sid, user; a bad until.
      403:
        description: Not an admin.
    """
    caller = await admin_of(request)
    if isinstance(caller, JSONResponse):
        return caller
    ctx: AppContext = request.app.state.ctx
    try:
        try:
            body = await request.json()
        except Exception:
            raise ValueError("a JSON object is expected") from None
        if not isinstance(body, dict):
            raise ValueError("a JSON object is expected")
        given = {k: _id(body, k) for k in ("jti", "sid", "user")}
        named = [k for k, v in given.items() if v is not None]
        if len(named) != 1:
            raise ValueError("one of jti, sid or user")
        now = time.time()
        until = body.get("until", now + DEFAULT_FOR_S)
        if not isinstance(until, int | float) or not now < until <= now + MAX_FOR_S:
            raise ValueError("until: unix seconds to come, within a year")
    except ValueError as exc:
        return error(400, "bad_request", str(exc))
    kind = named[0]
    value = given[kind]
    assert value is not None
    revocations = ctx.revocations
    if kind == "jti":
        closed = await revocations.revoke_token(value, float(until))
    elif kind == "sid":
        closed = await revocations.end_session(value, float(until), "session revoked")
    else:
        closed = await revocations.users([value], "revoked by an administrator")
    async with writer(ctx.engine).begin() as conn:
        await record(
            conn,
            actor=caller.id,
            node=ctx.settings.node_id,
            action=f"revoke.{kind}",
            target=value,
            detail={"until": until if kind != "user" else None, "closed_here": closed},
        )
    log.info("admin %s revoked a %s", caller.id, kind)
    return JSONResponse({"revoked": kind, "closed_here": closed})


routes = [Route("/api/admin/revocations", revoke, methods=["POST"])]
