"""REST for the notification feed (docs/protocol.md, "Notifications"): the caller's own
notifications, newest first, with the unread count; marking them read. New ones also
arrive live on the caller's open room channels (``{"t": "event", "kind":
"notification"}``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.api.rest import error, user_of
from server.context import AppContext


async def feed(request: Request) -> Response:
    """
    ---
    summary: The caller's notifications, newest first, and how many are unread.
    parameters:
      - {name: before, in: query, required: false, schema: {type: number}}
      - name: limit
        in: query
        required: false
        schema: {type: integer, minimum: 1, maximum: 100, default: 30}
    responses:
      200:
        description: >-
          {"items": [{id, kind, child_id, assignment_id, work_id, title, body, at, read}],
          "unread": int}
      400:
        description: Bad before or limit.
      401:
        description: Missing, invalid or expired token.
    """
    user = await user_of(request)
    if isinstance(user, JSONResponse):
        return user
    ctx: AppContext = request.app.state.ctx
    try:
        raw = request.query_params.get("before")
        before = float(raw) if raw is not None else None
        limit = int(request.query_params.get("limit", "30"))
        if not 1 <= limit <= 100:
            raise ValueError
    except ValueError:
        return error(400, "bad_request", "before is a unix time, limit is 1..100")
    items = await ctx.notifications.feed(user.id, before=before, limit=limit)
    unread = await ctx.notifications.unread(user.id)
    return JSONResponse({"items": [n.to_json() for n in items], "unread": unread})


async def mark_read(request: Request) -> Response:
    """
    ---
    summary: Mark notifications read.
    description: 'Takes {"ids": [...]} (at most 500) or {"all": true}.'
    responses:
      200:
        description: '{"unread": int}'
      400:
        description: Neither ids nor all.
      401:
        description: Missing, invalid or expired token.
    """
    user = await user_of(request)
    if isinstance(user, JSONResponse):
        return user
    ctx: AppContext = request.app.state.ctx
    try:
        body = await request.json()
        if body.get("all") is True:
            ids = None
        else:
            ids = body["ids"]
            if not (
                isinstance(ids, list)
                and len(ids) <= 500
                and all(isinstance(i, str) and len(i) <= 32 for i in ids)
            ):
                raise ValueError
    except Exception:
        return error(400, "bad_request", 'expected {"ids": [...]} or {"all": true}')
    await ctx.notifications.mark_read(user.id, ids)
    return JSONResponse({"unread": await ctx.notifications.unread(user.id)})


routes = [
    Route("/api/me/notifications", feed, methods=["GET"]),
    Route("/api/me/notifications/read", mark_read, methods=["POST"]),
]
