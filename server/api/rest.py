"""REST endpoints under ``/api/``; each documented in OpenAPI at ``/api/openapi.json``.

The OpenAPI document is built from the handlers' docstrings (the YAML after ``---``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.schemas import SchemaGenerator

from server.api.access import access_to, authenticate, naming, rule_access
from server.auth import tokens
from server.auth.tokens import InvalidToken
from server.context import AppContext
from server.persistence import activity, policy
from server.persistence.assignments import DocRule
from server.persistence.audit import Note
from server.persistence.models import unix
from server.persistence.roster import RoomInfo, UserInfo
from server.transport import logctx
from server.types import DOC_NAME_RE, DocAccess, Role, RoomAccess

schemas = SchemaGenerator(
    {
        "openapi": "3.0.3",
        "info": {"title": "Atelier API", "version": "1"},
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            }
        },
        "security": [{"bearer": []}],
    }
)


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)


async def user_of(request: Request) -> UserInfo | JSONResponse:
    ctx: AppContext = request.app.state.ctx
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else None
    try:
        user = await authenticate(ctx, token)
    except InvalidToken as exc:
        return error(401, "unauthenticated", str(exc))
    logctx.user_id.set(user.id)
    return user


@dataclass(frozen=True, slots=True)
class Caller:
    ctx: AppContext
    user: UserInfo
    room: RoomInfo
    access: RoomAccess


async def admin_of(request: Request, refusal: str = "admins only") -> UserInfo | JSONResponse:
    """The authenticated caller if they are an admin, or the error to return (401, 403)."""
    user = await user_of(request)
    if isinstance(user, JSONResponse):
        return user
    if user.role is not Role.ADMIN:
        return error(403, "forbidden", refusal)
    return user


async def in_room(
    request: Request,
    room_id: str,
    allowed: Callable[[RoomAccess], bool] = lambda a: a.may_enter,
    refusal: str = "no access to this room",
) -> Caller | JSONResponse:
    """The authenticated caller and their access to ``room_id``, or the error to return.

    A room that does not exist is refused like a room one may not enter (403), so that
    room ids cannot be probed.
    """
    user = await user_of(request)
    if isinstance(user, JSONResponse):
        return user
    ctx: AppContext = request.app.state.ctx
    logctx.room_id.set(room_id[:64])
    info, access = await access_to(ctx, user, room_id)
    if info is None or not allowed(access):
        return error(403, "forbidden", refusal)
    return Caller(ctx, user, info, access)


def _room_json(room: RoomInfo) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": room.id,
        "kind": str(room.kind),
        "name": room.name,
        "class_id": room.class_id,
    }
    if room.archived:
        out["archived"] = True
    return out


async def me(request: Request) -> Response:
    """
    ---
    summary: The calling user and the rooms they belong to.
    responses:
      200:
        description: >-
          {id, role, display_name, rooms: [{id, kind, name, class_id}]}, and for a parent
          children: [{id, name}]
      401:
        description: Missing, invalid or expired token.
    """
    user = await user_of(request)
    if isinstance(user, JSONResponse):
        return user
    ctx: AppContext = request.app.state.ctx
    rooms = await ctx.roster.rooms_of(user.id)
    body: dict[str, Any] = {
        "id": user.id,
        "role": str(user.role),
        "display_name": user.display_name,
        "rooms": [_room_json(r) for r in rooms],
    }
    if user.role is Role.PARENT:
        children = sorted(await ctx.roster.children_of(user.id))
        names = await ctx.roster.display_names(children)
        body["children"] = [{"id": c, "name": names.get(c, c)} for c in children]
    return JSONResponse(body)


async def room(request: Request) -> Response:
    """
    ---
    summary: A room and what the caller may do in it.
    parameters:
      - {name: room_id, in: path, required: true, schema: {type: string}}
    responses:
      200:
        description: >-
          {id, kind, name, class_id, access: {docs, chat, moderate, lock}, presence_names:
          full|initial|pseudonym, me: {name}}; me.name is the caller's name as this room
          shows it (its presence_names policy): what a client puts in the docs' awareness
      401:
        description: Missing, invalid or expired token.
      403:
        description: No access to this room (also for a room that does not exist).
    """
    caller = await in_room(request, request.path_params["room_id"])
    if isinstance(caller, JSONResponse):
        return caller
    info, access, user = caller.room, caller.access, caller.user
    names = await policy.presence_names(caller.ctx.engine, info.id)
    name_of = await naming(caller.ctx, info.id)
    return JSONResponse(
        {
            **_room_json(info),
            "access": {
                "docs": access.docs.name.lower(),
                "chat": access.chat,
                "moderate": access.moderate,
                "lock": access.lock,
            },
            "presence_names": names,
            "me": {"name": name_of(user.id, str(user.role), user.display_name)},
        }
    )


async def doc_lock(request: Request) -> Response:
    """
    ---
    summary: Read (GET) or set (PUT) whether a doc is locked (read-only for students).
    description: 'PUT takes {"locked": true|false}; only a teacher of the class may set it.'
    parameters:
      - {name: room_id, in: path, required: true, schema: {type: string}}
      - name: doc_name
        in: path
        required: true
        schema: {type: string, pattern: "^[a-z0-9_-]{1,64}$"}
    responses:
      200:
        description: '{"locked": bool}'
      400:
        description: Bad doc name or body.
      401:
        description: Missing, invalid or expired token.
      403:
        description: No access to this room, or not allowed to lock.
      409:
        description: The doc is an assignment's work handed in or frozen (reopen it instead).
    """
    room_id = request.path_params["room_id"]
    doc_name = request.path_params["doc_name"]
    if not DOC_NAME_RE.fullmatch(doc_name):
        return error(400, "bad_request", "invalid document name")
    caller = await in_room(request, room_id)
    if isinstance(caller, JSONResponse):
        return caller
    ctx, user, access = caller.ctx, caller.user, caller.access
    if request.method == "GET":
        return JSONResponse({"locked": await ctx.store.is_locked(room_id, doc_name)})
    if not access.lock:
        return error(403, "forbidden", "only the class's teacher may lock a document")
    try:
        body = await request.json()
        locked = body["locked"]
        if not isinstance(locked, bool):
            raise TypeError
    except Exception:
        return error(400, "bad_request", 'expected {"locked": true|false}')
    work = await ctx.assignments.store.work_of_doc(room_id, doc_name)
    if work is not None and work.status != "open":
        return error(409, "conflict", "this doc is a handed-in work: reopen the work instead")
    action = "doc.lock" if locked else "doc.unlock"
    note = Note(user.id, ctx.settings.node_id, action, f"{room_id}/{doc_name}")
    await ctx.registry.set_locked(room_id, doc_name, locked, user.id, note)
    return JSONResponse({"locked": locked})


async def messages(request: Request) -> Response:
    """
    ---
    summary: Older chat messages of a room, a page at a time.
    description: >-
      Messages with seq < before (default - the newest), oldest first. Follow next_before
      to page back; null means the start of the room. Needs chat access (parents have none).
    parameters:
      - {name: room_id, in: path, required: true, schema: {type: string}}
      - {name: before, in: query, required: false, schema: {type: integer, minimum: 1}}
      - name: limit
        in: query
        required: false
        schema: {type: integer, minimum: 1, maximum: 100, default: 50}
    responses:
      200:
        description: >-
          {"messages": [Message], "next_before": int|null}; Message as in docs/protocol.md
      400:
        description: Bad before or limit.
      401:
        description: Missing, invalid or expired token.
      403:
        description: No chat access to this room.
    """
    room_id = request.path_params["room_id"]
    caller = await in_room(request, room_id, lambda a: a.chat, "no chat access to this room")
    if isinstance(caller, JSONResponse):
        return caller
    ctx = caller.ctx
    try:
        before = request.query_params.get("before")
        before_seq = int(before) if before is not None else None
        limit = int(request.query_params.get("limit", "50"))
        if not 1 <= limit <= 100 or (before_seq is not None and before_seq < 1):
            raise ValueError
    except ValueError:
        return error(400, "bad_request", "before is a seq >= 1, limit is 1..100")
    page = await ctx.chat.before(room_id, before_seq, limit)
    next_before = page[0].seq if page and page[0].seq > 1 else None
    return JSONResponse({"messages": [m.to_wire() for m in page], "next_before": next_before})


async def room_docs(request: Request) -> Response:
    """
    ---
    summary: The docs of a room and who belongs to it.
    parameters:
      - {name: room_id, in: path, required: true, schema: {type: string}}
    responses:
      200:
        description: >-
          {"docs": [{name, locked, updated_at, assignment?: {id, title, work_id,
          student_id, due_at, status}}], "members": [{id, name, role}]}; members are
          listed only to those with chat access (not to parents); a classmate's personal
          work is not listed
      401:
        description: Missing, invalid or expired token.
      403:
        description: No access to this room.
    """
    room_id = request.path_params["room_id"]
    caller = await in_room(request, room_id)
    if isinstance(caller, JSONResponse):
        return caller
    ctx, access = caller.ctx, caller.access
    members = await activity.room_members(ctx.engine, room_id) if access.chat else []
    if members:
        name_of = await naming(ctx, room_id)
        for m in members:
            m["name"] = name_of(m["id"], m["role"], m["name"])
    docs = await activity.room_docs(ctx.engine, room_id)
    works = {w.doc_name: w for w in await ctx.assignments.store.works_of_rooms([room_id])}
    if works:
        store = ctx.assignments.store
        titles = {a.id: a for a in await store.get_many({w.assignment_id for w in works.values()})}
        access_of = await rule_access(ctx, caller.user, caller.room, access)
        shown = []
        for d in docs:
            found_work = works.get(d["name"])
            if found_work is not None:
                w = found_work
                mine = access_of(DocRule(w.student_id))
                a = titles.get(w.assignment_id)
                if mine.docs is DocAccess.NONE or a is None or (a.archived and not access.moderate):
                    continue
                d = {
                    **d,
                    "assignment": {
                        "id": a.id,
                        "title": a.title,
                        "work_id": w.id,
                        "student_id": w.student_id,
                        "due_at": unix(w.due_at),
                        "status": w.status,
                    },
                }
            shown.append(d)
        docs = shown
    return JSONResponse({"docs": docs, "members": members})


async def class_overview(request: Request) -> Response:
    """
    ---
    summary: A class's groups with their members and last activity (teachers of the class).
    parameters:
      - {name: class_id, in: path, required: true, schema: {type: string}}
    responses:
      200:
        description: >-
          {"class": {id, name}, "groups": [{id, name, members: [{id, name, role}],
          last_activity: {doc: unix|null, chat: unix|null}, docs: [{doc, words, chars,
          preview, last_edit, users, activity}]}]}; who is online comes live from each
          group's room channel, progress from the class channel
      401:
        description: Missing, invalid or expired token.
      403:
        description: Not a teacher of this class.
    """
    class_id = request.path_params["class_id"]
    caller = await in_room(
        request, class_id, lambda a: a.moderate, "only the class's teachers see its overview"
    )
    if isinstance(caller, JSONResponse):
        return caller
    ctx, info = caller.ctx, caller.room
    if str(info.kind) != "class":
        return error(403, "forbidden", "only the class's teachers see its overview")
    groups = await ctx.roster.groups_of_class(class_id)
    last = await activity.last_activity(ctx.engine, [g.id for g in groups])
    out = []
    for g in groups:
        docs = [
            await ctx.progress.doc_summary(g.id, d["name"])
            for d in await activity.room_docs(ctx.engine, g.id)
        ]
        out.append(
            {
                "id": g.id,
                "name": g.name,
                "members": await activity.room_members(ctx.engine, g.id),
                "last_activity": last.get(g.id, {"doc": None, "chat": None}),
                "docs": docs,
            }
        )
    return JSONResponse({"class": {"id": info.id, "name": info.name}, "groups": out})


async def demo_users(request: Request) -> Response:
    """
    ---
    summary: The demo school's users, for the demo sign-in (demo mode only).
    responses:
      200:
        description: '{"users": [{id, name, role}]}'
      404:
        description: Demo mode is off.
    """
    ctx: AppContext = request.app.state.ctx
    if not ctx.settings.demo:
        return error(404, "not_found", "demo mode is off")
    users = await activity.demo_users(ctx.engine)
    return JSONResponse({"users": users})


async def demo_token(request: Request) -> Response:
    """
    ---
    summary: Sign in as a demo user (demo mode only) - returns a token.
    description: 'Body {"user": "s-01"}. Never available outside demo mode.'
    responses:
      200:
        description: '{"token": str, "expires_in": int}'
      400:
        description: Unknown user or bad body.
      404:
        description: Demo mode is off.
    """
    ctx: AppContext = request.app.state.ctx
    if not ctx.settings.demo:
        return error(404, "not_found", "demo mode is off")
    try:
        body = await request.json()
        user_id = body["user"]
        if not isinstance(user_id, str):
            raise TypeError
    except Exception:
        return error(400, "bad_request", 'expected {"user": "<id>"}')
    if await ctx.roster.get_user(user_id) is None:
        return error(400, "bad_request", "unknown user")
    ttl = 8 * 3600
    return JSONResponse({"token": tokens.issue(ctx.jwt_secret, user_id, ttl), "expires_in": ttl})


async def openapi(request: Request) -> Response:
    return JSONResponse(schemas.get_schema(routes=request.app.routes))


routes = [
    Route("/api/me", me, methods=["GET"]),
    Route("/api/rooms/{room_id}", room, methods=["GET"]),
    Route("/api/rooms/{room_id}/docs/{doc_name}/lock", doc_lock, methods=["GET", "PUT"]),
    Route("/api/rooms/{room_id}/messages", messages, methods=["GET"]),
    Route("/api/rooms/{room_id}/docs", room_docs, methods=["GET"]),
    Route("/api/classes/{class_id}/overview", class_overview, methods=["GET"]),
    Route("/api/demo/users", demo_users, methods=["GET"]),
    Route("/api/demo/token", demo_token, methods=["POST"]),
    Route("/api/openapi.json", openapi, include_in_schema=False),
]
