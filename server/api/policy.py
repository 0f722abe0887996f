"""A room's policy over REST: how its students' names show (``presence_names``).

Set by those who moderate the room (its class's teachers: the permission table), read
by anyone in it. A change applies to the room's connections made after it: the room's
clients, on every node, get a ``names`` event and reconnect (docs/protocol.md). It is in
the audit trail.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.api.rest import error, in_room
from server.persistence import policy
from server.persistence.audit import Note


async def room_policy(request: Request) -> Response:
    """
    ---
    summary: Read (GET) or set (PUT) how a room shows its students' names.
    description: >-
      presence_names - full (the display name), initial (first name and initial) or
      pseudonym (a stable per-room pseudonym no student can reverse). Applies to
      presence, chat author names and the names the room gives its members (and, through
      GET /api/rooms/{room_id} me.name, to the docs' awareness). PUT takes
      {"presence_names": ...}; only the class's teachers may set it.
    parameters:
      - {name: room_id, in: path, required: true, schema: {type: string}}
    responses:
      200:
        description: '{"presence_names": "full"|"initial"|"pseudonym"}'
      400:
        description: Bad body.
      401:
        description: Missing, invalid or expired token.
      403:
        description: No access to this room, or (PUT) not one of its teachers.
    """
    room_id = request.path_params["room_id"]
    caller = await in_room(request, room_id)
    if isinstance(caller, JSONResponse):
        return caller
    ctx = caller.ctx
    if request.method == "GET":
        return JSONResponse({"presence_names": await policy.presence_names(ctx.engine, room_id)})
    if not caller.access.moderate:
        return error(403, "forbidden", "only the class's teachers set how names show")
    try:
        body = await request.json()
        names = body["presence_names"]
        if names not in policy.NAMES:
            raise ValueError
    except Exception:
        return error(400, "bad_request", 'expected {"presence_names": full|initial|pseudonym}')
    before = await policy.presence_names(ctx.engine, room_id)
    note = Note(
        caller.user.id,
        ctx.settings.node_id,
        "room.presence",
        room_id,
        {"from": before, "to": names},
    )
    await policy.set_presence_names(ctx.engine, room_id, names, caller.user.id, note)
    if names != before:
        ctx.live.room_event(room_id, {"kind": "names", "presence_names": names})
    return JSONResponse({"presence_names": names})


routes = [Route("/api/rooms/{room_id}/policy", room_policy, methods=["GET", "PUT"])]
