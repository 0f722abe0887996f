"""REST for assignments (docs/protocol.md, "Assignments over REST"): publish, follow, edit
and export (teachers), and what the works' routes (server/api/works.py) share: who sees
an assignment or a work, and how a work looks to each. Every handler documents itself in
OpenAPI (YAML after ``---``).

Who sees what: a class's teachers see and do everything of its assignments; a student
sees the assignments of their classes and their own works (a classmate's personal work
never); a parent sees their own children's works — status, dates, the returned feedback —
and the content of a rendu only when it is their child's alone (a group's rendu holds
other minors' writing).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.api.access import access_to
from server.api.rest import error, in_room, user_of
from server.assignments.export import Rendu, export_zip
from server.assignments.french import parse_due, slug
from server.assignments.service import Refused, Spec
from server.context import AppContext
from server.persistence.assignments import (
    AT_DEADLINE,
    FREEZING,
    HANDED_IN,
    TARGETS,
    AssignmentRow,
    WorkRow,
)
from server.persistence.audit import Note
from server.persistence.models import unix
from server.persistence.roster import UserInfo
from server.progress.content import safe_href
from server.types import Role, RoomKind

MAX_INSTRUCTIONS = 10_000
MAX_STARTER = 20_000
MAX_RESOURCES = 20
STATUS_LABELS = {
    "not_started": "Pas commencé",
    "in_progress": "En cours",
    "freezing": "Remise en cours",
    "handed_in": "Rendu",
    "late": "En retard",
    "missed": "Non rendu",
    "returned": "Corrigé",
}


def assignment_json(a: AssignmentRow) -> dict[str, Any]:
    return {
        "id": a.id,
        "class_id": a.class_id,
        "title": a.title,
        "instructions": a.instructions,
        "resources": a.resources,
        "target": a.target,
        "doc": a.doc_name,
        "due_at": unix(a.due_at),
        "allow_late": a.allow_late,
        "archived": a.archived,
        "created_by": a.created_by,
        "created_at": unix(a.created_at),
    }


def phase(work: WorkRow, figures: list[dict[str, Any]], creator: str) -> str:
    """Where a work stands, for people: not started … returned."""
    if work.returned_at is not None and work.status in (HANDED_IN, *AT_DEADLINE):
        return "returned"
    if work.status == FREEZING:
        return "freezing"
    if work.status != "open":
        return work.status
    started = any(u["id"] != creator and u["inserted"] > 0 for u in figures)
    return "in_progress" if started else "not_started"


@dataclass(frozen=True, slots=True)
class Seen:
    """An assignment and what the caller is to it."""

    ctx: AppContext
    user: UserInfo
    assignment: AssignmentRow
    teacher: bool


async def _teaches(ctx: AppContext, user: UserInfo, class_id: str) -> bool:
    info, access = await access_to(ctx, user, class_id)
    return info is not None and RoomKind(info.kind) is RoomKind.CLASS and access.moderate


async def seen_assignment(request: Request, assignment_id: str) -> Seen | JSONResponse:
    user = await user_of(request)
    if isinstance(user, JSONResponse):
        return user
    ctx: AppContext = request.app.state.ctx
    found = await ctx.assignments.store.get(assignment_id)
    if found is None:
        return error(404, "not_found", "no such assignment")
    if await _teaches(ctx, user, found.class_id):
        return Seen(ctx, user, found, teacher=True)
    info, access = await access_to(ctx, user, found.class_id)
    if info is None or not access.may_enter or found.archived:
        return error(404, "not_found", "no such assignment")
    return Seen(ctx, user, found, teacher=False)


async def seen_work(request: Request) -> tuple[Seen, WorkRow] | JSONResponse:
    user = await user_of(request)
    if isinstance(user, JSONResponse):
        return user
    ctx: AppContext = request.app.state.ctx
    work = await ctx.assignments.store.work(request.path_params["work_id"])
    if work is None:
        return error(404, "not_found", "no such work")
    seen = await seen_assignment(request, work.assignment_id)
    if isinstance(seen, JSONResponse):
        return seen
    if not seen.teacher and not await concerns(ctx, seen.user, work, seen.assignment):
        return error(404, "not_found", "no such work")
    return seen, work


async def is_member_of(ctx: AppContext, student: str, work: WorkRow) -> bool:
    """Is ``student`` one of the people a work belongs to?"""
    if work.student_id is not None:
        return work.student_id == student
    return await ctx.roster.is_member(student, work.room_id)


async def concerns(ctx: AppContext, user: UserInfo, work: WorkRow, a: AssignmentRow) -> bool:
    if user.role is Role.STUDENT:
        return await is_member_of(ctx, user.id, work)
    if user.role is Role.PARENT:
        for child in await ctx.roster.children_of(user.id):
            if await is_member_of(ctx, child, work):
                return True
    return False


def due_from(body: dict[str, Any], ctx: AppContext) -> datetime:
    raw = body.get("due_at")
    if not isinstance(raw, str):
        raise ValueError("due_at: an ISO 8601 date and time")
    return parse_due(raw, ctx.settings.timezone)


def text_field(body: dict[str, Any], key: str, limit: int, *, required: bool = False) -> str:
    value = body.get(key, "")
    if value is None:
        value = ""
    if not isinstance(value, str) or len(value) > limit or (required and not value.strip()):
        raise ValueError(f"{key}: text of {'1' if required else '0'} to {limit} characters")
    return value.strip()


def _resources(body: dict[str, Any]) -> list[dict[str, str]]:
    raw = body.get("resources") or []
    if not isinstance(raw, list) or len(raw) > MAX_RESOURCES:
        raise ValueError(f"resources: a list of at most {MAX_RESOURCES} links")
    out = []
    for item in raw:
        if not isinstance(item, dict):
            raise ValueError("resources: each is {title, url}")
        url = safe_href(item.get("url"))
        if url is None or url.startswith("mailto:"):
            raise ValueError("resources: each url is http or https")
        title = text_field(item, "title", 200) or url
        out.append({"title": title, "url": url})
    return out


async def json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except Exception:
        raise ValueError("a JSON object is expected") from None
    if not isinstance(body, dict):
        raise ValueError("a JSON object is expected")
    return body


# --- teachers: publish, list, edit ---


async def class_assignments(request: Request) -> Response:
    """
    ---
    summary: A class's assignments (GET, teachers), or publish one (POST, teachers).
    description: >-
      POST takes {title, instructions (markdown), resources: [{title, url}], due_at (ISO
      8601; without an offset, the school's local time), target: class|groups|students,
      starter (markdown, optional), allow_late (bool)}. Publishing creates each work's doc
      with the starter content and notifies the students and their parents.
      GET ?archived=1 includes archived ones.
    parameters:
      - {name: class_id, in: path, required: true, schema: {type: string}}
    responses:
      200:
        description: '{"assignments": [Assignment + {counts: {status: n}}]}'
      201:
        description: '{"assignment": Assignment, "works": [Work]}'
      400:
        description: A field is missing or invalid.
      403:
        description: Not a teacher of this class.
    """
    class_id = request.path_params["class_id"]
    caller = await in_room(
        request, class_id, lambda a: a.moderate, "only the class's teachers manage its work"
    )
    if isinstance(caller, JSONResponse):
        return caller
    ctx = caller.ctx
    if RoomKind(caller.room.kind) is not RoomKind.CLASS:
        return error(403, "forbidden", "assignments belong to a class")
    service = ctx.assignments
    if request.method == "GET":
        found = await service.store.of_classes(
            [class_id], archived=request.query_params.get("archived") == "1"
        )
        works = await service.store.works_in([a.id for a in found])
        out = []
        for a in found:
            counts: dict[str, int] = {}
            for w in works:
                if w.assignment_id == a.id:
                    key = phase(w, [], a.created_by) if w.status != "open" else "open"
                    counts[key] = counts.get(key, 0) + 1
            out.append({**assignment_json(a), "counts": counts})
        return JSONResponse({"assignments": out})
    try:
        body = await json_body(request)
        target = body.get("target", "groups")
        if target not in TARGETS:
            raise ValueError("target: class, groups or students")
        allow_late = body.get("allow_late", False)
        if not isinstance(allow_late, bool):
            raise ValueError("allow_late: true or false")
        spec = Spec(
            title=text_field(body, "title", 200, required=True),
            instructions=text_field(body, "instructions", MAX_INSTRUCTIONS),
            resources=_resources(body),
            due_at=due_from(body, ctx),
            target=target,
            starter=text_field(body, "starter", MAX_STARTER) or None,
            allow_late=allow_late,
        )
        if spec.due_at <= datetime.now(UTC):
            raise ValueError("due_at: a date to come")
    except ValueError as exc:
        return error(400, "bad_request", str(exc))
    try:
        assignment = await service.publish(caller.user.id, caller.room, spec)
    except Refused as exc:
        return error(409, "conflict", str(exc))
    works = await service.store.works_of(assignment.id)
    return JSONResponse(
        {"assignment": assignment_json(assignment), "works": [w.to_json() for w in works]},
        status_code=201,
    )


async def units_of(ctx: AppContext, works: list[WorkRow]) -> dict[str, dict[str, Any]]:
    """work id → {kind, id, name, members: [{id, name}]}."""
    out: dict[str, dict[str, Any]] = {}
    rooms: dict[str, Any] = {}
    people = await ctx.roster.display_names([w.student_id for w in works if w.student_id])
    for w in works:
        if w.student_id is not None:
            person = {"id": w.student_id, "name": people.get(w.student_id, w.student_id)}
            out[w.id] = {"kind": "student", **person, "members": [person]}
            continue
        if w.room_id not in rooms:
            info = await ctx.roster.get_room(w.room_id)
            students = await ctx.roster.members_with_role(w.room_id, Role.STUDENT)
            names = await ctx.roster.display_names(students)
            rooms[w.room_id] = {
                "kind": str(info.kind) if info else "group",
                "id": w.room_id,
                "name": info.name if info else w.room_id,
                "members": [{"id": s, "name": names.get(s, s)} for s in students],
            }
        out[w.id] = rooms[w.room_id]
    return out


async def work_view(
    ctx: AppContext, w: WorkRow, a: AssignmentRow, unit: dict[str, Any], *, teacher: bool
) -> dict[str, Any]:
    summary = await ctx.progress.doc_summary(w.room_id, w.doc_name)
    status = phase(w, summary["users"], a.created_by)
    view = w.to_json()
    if not teacher and w.returned_at is None:
        view["feedback"] = None  # a draft until returned
    view.update(
        {
            "phase": status,
            "label": STATUS_LABELS.get(status, status),
            "unit": unit,
            "progress": {
                "words": summary["words"],
                "chars": summary["chars"],
                "last_edit": summary["last_edit"],
                "users": [u for u in summary["users"] if u["id"] != a.created_by]
                if teacher
                else [],
            },
        }
    )
    return view


async def assignment(request: Request) -> Response:
    """
    ---
    summary: One assignment (GET) and its works as the caller may see them, or edit it
      (PATCH, teachers).
    description: >-
      Teachers get every work with its phase (not_started, in_progress, handed_in, late,
      missed, returned), unit, progress figures and feedback; a student their own works; a
      parent their children's (no figures, feedback once returned). PATCH takes any of
      {title, instructions, resources, allow_late, archived, due_at}; a new due_at moves
      every work without an extension of its own, and opens again those frozen by the
      old deadline.
    parameters:
      - {name: assignment_id, in: path, required: true, schema: {type: string}}
    responses:
      200:
        description: '{"assignment": Assignment, "works": [Work]}'
      400:
        description: A field is invalid.
      403:
        description: Not a teacher of the class (PATCH).
      404:
        description: No such assignment (or not one of the caller's).
    """
    seen = await seen_assignment(request, request.path_params["assignment_id"])
    if isinstance(seen, JSONResponse):
        return seen
    ctx, a = seen.ctx, seen.assignment
    if request.method == "PATCH":
        if not seen.teacher:
            return error(403, "forbidden", "only the class's teachers edit its work")
        try:
            body = await json_body(request)
            values: dict[str, Any] = {}
            if "title" in body:
                values["title"] = text_field(body, "title", 200, required=True)
            if "instructions" in body:
                values["instructions"] = text_field(body, "instructions", MAX_INSTRUCTIONS)
            if "resources" in body:
                values["resources"] = json.dumps(_resources(body), ensure_ascii=False)
            for flag in ("allow_late", "archived"):
                if flag in body:
                    if not isinstance(body[flag], bool):
                        raise ValueError(f"{flag}: true or false")
                    values[flag] = body[flag]
            due = due_from(body, ctx) if "due_at" in body else None
            if due is not None and due <= datetime.now(UTC):
                raise ValueError("due_at: a date to come")
        except ValueError as exc:
            return error(400, "bad_request", str(exc))
        if values:
            await ctx.assignments.store.update(a.id, **values)
        if due is not None:
            note = Note(
                seen.user.id,
                ctx.settings.node_id,
                "assignment.due_at",
                a.id,
                {"class": a.class_id, "from": unix(a.due_at), "to": unix(due)},
            )
            await ctx.assignments.postpone(a, due, note)
        found = await ctx.assignments.store.get(a.id)
        assert found is not None
        a = found
    works = await ctx.assignments.store.works_of(a.id)
    if not seen.teacher:
        works = [w for w in works if await concerns(ctx, seen.user, w, a)]
    units = await units_of(ctx, works)
    views = [await work_view(ctx, w, a, units[w.id], teacher=seen.teacher) for w in works]
    return JSONResponse({"assignment": assignment_json(a), "works": views})


# --- teachers: export ---


async def export(request: Request) -> Response:
    """
    ---
    summary: Every rendu of an assignment in one ZIP archive (HTML or ODT files).
    parameters:
      - {name: assignment_id, in: path, required: true, schema: {type: string}}
      - name: format
        in: query
        required: false
        schema: {type: string, enum: [html, odt], default: odt}
    responses:
      200:
        description: application/zip, one file per rendu
      400:
        description: Unknown format.
      403:
        description: Not a teacher of the class.
    """
    seen = await seen_assignment(request, request.path_params["assignment_id"])
    if isinstance(seen, JSONResponse):
        return seen
    if not seen.teacher:
        return error(403, "forbidden", "only the class's teachers export its rendus")
    fmt = request.query_params.get("format", "odt")
    if fmt not in ("html", "odt"):
        return error(400, "bad_request", "format: html or odt")
    ctx, a = seen.ctx, seen.assignment
    started = time.perf_counter()
    works = [w for w in await ctx.assignments.store.works_of(a.id) if w.version_id is not None]
    units = await units_of(ctx, works)
    by = await ctx.roster.display_names([w.submitted_by for w in works if w.submitted_by])
    rendus = []
    for w in works:
        found = await ctx.progress.versions.get(w.room_id, w.doc_name, w.version_id or 0)
        if found is None:
            continue
        status = phase(w, [], a.created_by)
        unit = units[w.id]
        rendus.append(
            Rendu(
                unit=unit["name"],
                members=[m["name"] for m in unit["members"]],
                status=STATUS_LABELS.get(status, status),
                submitted_at=unix(w.submitted_at) if w.submitted_at else None,
                submitted_by=by.get(w.submitted_by or "", None),
                state=found[1],
                comment=w.comment,
                appreciation=w.appreciation,
                mark=w.mark,
            )
        )
    # Building the archive decodes each rendu and writes ODT: CPU work kept off the event
    # loop, so that a teacher's export never stalls the live docs of this node.
    data = await asyncio.to_thread(export_zip, a.title, rendus, fmt, ctx.settings.timezone)  # type: ignore[arg-type]
    took = time.perf_counter() - started
    name = f"rendus-{slug(a.title)}.zip"
    return Response(
        data,
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Server-Timing": f"export;dur={took * 1000:.1f}",
        },
    )


routes = [
    Route("/api/classes/{class_id}/assignments", class_assignments, methods=["GET", "POST"]),
    Route("/api/assignments/{assignment_id}", assignment, methods=["GET", "PATCH"]),
    Route("/api/assignments/{assignment_id}/export", export, methods=["GET"]),
]
