"""REST for a class's project groups, by its teachers ("Gérer les groupes"): list, create,
rename, archive, and move students between groups (each one in the audit trail). Each
change that lowers someone's
access (a student leaving a group, a group archived) is revoked live on every node
(server/revocation/): the student's sockets on the group they left close with 4403
within a bus round trip.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.api.rest import Caller, error, in_room
from server.context import AppContext
from server.persistence.groups import GroupRow
from server.types import RoomKind

log = logging.getLogger(__name__)

MAX_NAME = 80


def _group_json(g: GroupRow, names: dict[str, str]) -> dict[str, Any]:
    return {
        "id": g.id,
        "class_id": g.class_id,
        "name": g.name,
        "archived": g.archived,
        "students": [{"id": s, "name": names.get(s, s)} for s in g.students],
    }


async def _listing(ctx: AppContext, class_id: str) -> dict[str, Any]:
    groups = await ctx.groups.of_class(class_id)
    students = await ctx.groups.students_of_class(class_id)
    names = await ctx.roster.display_names(students)
    grouped = {s for g in groups if not g.archived for s in g.students}
    return {
        "groups": [_group_json(g, names) for g in groups],
        "ungrouped": [{"id": s, "name": names.get(s, s)} for s in students if s not in grouped],
    }


def _name(body: Any) -> str:
    name = body.get("name") if isinstance(body, dict) else None
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > MAX_NAME:
        raise ValueError(f"name: text of 1 to {MAX_NAME} characters")
    return name.strip()


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except Exception:
        raise ValueError("a JSON object is expected") from None


async def _teacher_of_class(request: Request, class_id: str) -> Caller | JSONResponse:
    caller = await in_room(
        request, class_id, lambda a: a.moderate, "only the class's teachers manage its groups"
    )
    if isinstance(caller, JSONResponse):
        return caller
    if RoomKind(caller.room.kind) is not RoomKind.CLASS:
        return error(400, "bad_request", "groups belong to a class")
    return caller


async def class_groups(request: Request) -> Response:
    """
    ---
    summary: A class's groups with their students (GET), or create a group (POST).
    description: >-
      Teachers of the class. POST takes {name}; the new group's id is
      {class_id}-g{n}. The listing includes archived groups and the students in no group.
    parameters:
      - {name: class_id, in: path, required: true, schema: {type: string}}
    responses:
      200:
        description: >-
          {"groups": [{id, class_id, name, archived, students: [{id, name}]}],
          "ungrouped": [{id, name}]}
      201:
        description: '{"group": Group}'
      400:
        description: Bad name.
      403:
        description: Not a teacher of the class.
    """
    class_id = request.path_params["class_id"]
    caller = await _teacher_of_class(request, class_id)
    if isinstance(caller, JSONResponse):
        return caller
    ctx: AppContext = caller.ctx
    if request.method == "GET":
        return JSONResponse(await _listing(ctx, class_id))
    try:
        name = _name(await _json(request))
    except ValueError as exc:
        return error(400, "bad_request", str(exc))
    group = await ctx.groups.create(class_id, name, actor=caller.user.id, node=ctx.settings.node_id)
    log.info("group %s created in %s by %s", group.id, class_id, caller.user.id)
    return JSONResponse({"group": _group_json(group, {})}, status_code=201)


async def group(request: Request) -> Response:
    """
    ---
    summary: Rename a group, or archive it (or bring it back).
    description: >-
      Takes {name?, archived?}. An archived group stays with its docs and chat; its
      students read its docs and no longer write or chat (their open sockets are
      regraded or closed at once).
    parameters:
      - {name: group_id, in: path, required: true, schema: {type: string}}
    responses:
      200:
        description: '{"group": Group}'
      400:
        description: Bad name or flag.
      403:
        description: Not a teacher of the group's class.
    """
    group_id = request.path_params["group_id"]
    caller = await in_room(
        request, group_id, lambda a: a.moderate, "only the class's teachers manage its groups"
    )
    if isinstance(caller, JSONResponse):
        return caller
    ctx: AppContext = caller.ctx
    if RoomKind(caller.room.kind) is not RoomKind.GROUP:
        return error(400, "bad_request", "not a group")
    try:
        body = await _json(request)
        if not isinstance(body, dict):
            raise ValueError("a JSON object is expected")
        name = _name(body) if "name" in body else None
        archived = body.get("archived")
        if archived is not None and not isinstance(archived, bool):
            raise ValueError("archived: true or false")
    except ValueError as exc:
        return error(400, "bad_request", str(exc))
    await ctx.groups.update(
        group_id, name=name, archived=archived, actor=caller.user.id, node=ctx.settings.node_id
    )
    class_id = caller.room.class_id
    found = next(g for g in await ctx.groups.of_class(class_id) if g.id == group_id)
    if archived is not None:
        log.info("group %s archived=%s by %s", group_id, archived, caller.user.id)
        await ctx.revocations.users(found.students, "group archived" if archived else "group")
    names = await ctx.roster.display_names(list(found.students))
    return JSONResponse({"group": _group_json(found, names)})


async def moves(request: Request) -> Response:
    """
    ---
    summary: Move a student into a group of the class (out of the one they were in).
    description: >-
      Takes {student, to: group id | null}. One transaction; the student's sockets on
      the group they left are closed (4403) on every node, and the new group opens to
      them at once.
    parameters:
      - {name: class_id, in: path, required: true, schema: {type: string}}
    responses:
      200:
        description: >-
          {"moved": {student, left: [group ids], joined}, "groups": [...],
          "ungrouped": [...]}
      400:
        description: Not a student of the class, or not a group of the class.
      403:
        description: Not a teacher of the class.
    """
    class_id = request.path_params["class_id"]
    caller = await _teacher_of_class(request, class_id)
    if isinstance(caller, JSONResponse):
        return caller
    ctx: AppContext = caller.ctx
    try:
        body = await _json(request)
        student = body.get("student") if isinstance(body, dict) else None
        to = body.get("to") if isinstance(body, dict) else None
        if not isinstance(student, str) or student not in await ctx.groups.students_of_class(
            class_id
        ):
            raise ValueError("student: a student of the class")
        groups = {g.id: g for g in await ctx.groups.of_class(class_id)}
        if to is not None and (not isinstance(to, str) or to not in groups):
            raise ValueError("to: a group of the class, or null")
        if to is not None and groups[to].archived:
            raise ValueError("to: this group is archived")
    except ValueError as exc:
        return error(400, "bad_request", str(exc))
    moved = await ctx.groups.move(
        class_id, student, to, actor=caller.user.id, node=ctx.settings.node_id
    )
    log.info("%s moved from %s to %s by %s", student, moved.left, to, caller.user.id)
    await ctx.revocations.users([student], "moved to another group")
    return JSONResponse(
        {
            "moved": {"student": student, "left": list(moved.left), "joined": moved.joined},
            **(await _listing(ctx, class_id)),
        }
    )


routes = [
    Route("/api/classes/{class_id}/groups", class_groups, methods=["GET", "POST"]),
    Route("/api/classes/{class_id}/moves", moves, methods=["POST"]),
    Route("/api/groups/{group_id}", group, methods=["PATCH"]),
]
