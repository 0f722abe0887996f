"""REST for the works of an assignment (docs/protocol.md, "Assignments over REST"): hand
in (students), read a rendu (its students, the teachers, a parent for their own child's
personal work), reopen, feedback and return (teachers), and "À faire" (students; parents
for their children). Who sees what is decided in server/api/assignments.py.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.api.assignments import (
    Seen,
    assignment_json,
    due_from,
    is_member_of,
    json_body,
    seen_work,
    text_field,
    units_of,
    work_view,
)
from server.api.rest import error, user_of
from server.assignments.service import Refused
from server.context import AppContext
from server.persistence.assignments import WorkRow
from server.persistence.audit import Note
from server.persistence.models import unix
from server.progress import content
from server.progress.service import doc_of
from server.types import Role, RoomKind

# --- students: hand in; everyone: the rendu ---


async def hand_in(request: Request) -> Response:
    """
    ---
    summary: Hand in a work ("rendre"), before its due date, as one of its students.
    description: >-
      The doc is locked for its students at once, and its state a moment later (once edits
      made elsewhere before the lock have arrived) is recorded as the rendu. The class's
      teachers are notified.
    parameters:
      - {name: work_id, in: path, required: true, schema: {type: string}}
    responses:
      200:
        description: '{"work": Work}'
      403:
        description: Not one of the work's students.
      409:
        description: Already handed in, or past its due date.
    """
    got = await seen_work(request)
    if isinstance(got, JSONResponse):
        return got
    seen, work = got
    if seen.user.role is not Role.STUDENT or not await is_member_of(seen.ctx, seen.user.id, work):
        return error(403, "forbidden", "only the work's students hand it in")
    try:
        done = await seen.ctx.assignments.hand_in(work, seen.assignment, seen.user.id)
    except Refused as exc:
        return error(409, "conflict", str(exc))
    return JSONResponse({"work": done.to_json()})


async def rendu(request: Request) -> Response:
    """
    ---
    summary: A work's rendu, read-only (sanitised HTML and plain text).
    description: >-
      Teachers of the class and the work's students; a parent only for their own child's
      personal work (a group's rendu holds other minors' writing).
    parameters:
      - {name: work_id, in: path, required: true, schema: {type: string}}
    responses:
      200:
        description: '{"work": Work, "version": Version, "html": str, "text": str}'
      403:
        description: Not allowed to read this rendu.
      404:
        description: No such work, or nothing handed in yet.
    """
    got = await seen_work(request)
    if isinstance(got, JSONResponse):
        return got
    seen, work = got
    if seen.user.role is Role.PARENT and work.student_id is None:
        return error(403, "forbidden", "a group's rendu holds other pupils' writing")
    if work.version_id is None:
        return error(404, "not_found", "nothing handed in yet")
    found = await seen.ctx.progress.versions.get(work.room_id, work.doc_name, work.version_id)
    if found is None:
        return error(404, "not_found", "nothing handed in yet")
    info, state = found
    doc = doc_of(state)
    view = work.to_json()
    if not seen.teacher and work.returned_at is None:
        view["feedback"] = None
    return JSONResponse(
        {
            "work": view,
            "version": info.to_json(),
            "html": content.html(doc),
            "text": content.plain_text(doc),
        }
    )


# --- teachers: reopen, feedback, return ---


async def _teacher_work(request: Request) -> tuple[Seen, WorkRow] | JSONResponse:
    got = await seen_work(request)
    if isinstance(got, JSONResponse):
        return got
    if not got[0].teacher:
        return error(403, "forbidden", "only the class's teachers do this")
    return got


async def reopen(request: Request) -> Response:
    """
    ---
    summary: Open a work again until a new due date (an extension for one group).
    description: 'Takes {"due_at": ISO 8601}. The doc is unlocked; its students are notified.'
    parameters:
      - {name: work_id, in: path, required: true, schema: {type: string}}
    responses:
      200:
        description: '{"work": Work}'
      400:
        description: Bad due_at.
      403:
        description: Not a teacher of the class.
      409:
        description: The work is being frozen right now.
    """
    got = await _teacher_work(request)
    if isinstance(got, JSONResponse):
        return got
    seen, work = got
    try:
        due = due_from(await json_body(request), seen.ctx)
        if due <= datetime.now(UTC):
            raise ValueError("due_at: a date to come")
    except ValueError as exc:
        return error(400, "bad_request", str(exc))
    try:
        note = Note(
            seen.user.id,
            seen.ctx.settings.node_id,
            "work.reopen",
            work.id,
            {"assignment": seen.assignment.id, "room": work.room_id, "due_at": unix(due)},
        )
        opened = await seen.ctx.assignments.reopen(work, seen.assignment, due, note)
    except Refused as exc:
        return error(409, "conflict", str(exc))
    return JSONResponse({"work": opened.to_json()})


async def feedback(request: Request) -> Response:
    """
    ---
    summary: Write the feedback of a work (a comment, an appreciation, a mark).
    description: >-
      Takes {comment (up to 5000 characters), appreciation (up to 200), mark (up to 32;
      the ENT's gradebook stays the record)}. Students and parents see it once returned.
    parameters:
      - {name: work_id, in: path, required: true, schema: {type: string}}
    responses:
      200:
        description: '{"work": Work}'
      400:
        description: A field is too long.
      403:
        description: Not a teacher of the class.
    """
    got = await _teacher_work(request)
    if isinstance(got, JSONResponse):
        return got
    seen, work = got
    try:
        body = await json_body(request)
        values = {
            "comment": text_field(body, "comment", 5000) or None,
            "appreciation": text_field(body, "appreciation", 200) or None,
            "mark": text_field(body, "mark", 32) or None,
        }
    except ValueError as exc:
        return error(400, "bad_request", str(exc))
    done = await seen.ctx.assignments.store.set_feedback(work.id, seen.user.id, **values)
    assert done is not None
    return JSONResponse({"work": done.to_json()})


async def give_back(request: Request) -> Response:
    """
    ---
    summary: Return a rendu with its feedback ("rendu corrigé").
    description: The work's students and their parents are notified.
    parameters:
      - {name: work_id, in: path, required: true, schema: {type: string}}
    responses:
      200:
        description: '{"work": Work}'
      403:
        description: Not a teacher of the class.
      409:
        description: Not handed in yet, or already returned.
    """
    got = await _teacher_work(request)
    if isinstance(got, JSONResponse):
        return got
    seen, work = got
    try:
        note = Note(
            seen.user.id,
            seen.ctx.settings.node_id,
            "work.return",
            work.id,
            {"assignment": seen.assignment.id, "room": work.room_id},
        )
        done = await seen.ctx.assignments.give_back(work, seen.assignment, note)
    except Refused as exc:
        return error(409, "conflict", str(exc))
    return JSONResponse({"work": done.to_json()})


# --- "À faire": a student's works, a parent's child's ---


async def todo(request: Request) -> Response:
    """
    ---
    summary: The caller's assignments ("À faire"); a parent's children's (?child=).
    description: >-
      Soonest due first, each with the caller's works (phase, due date, feedback once
      returned). A parent names one of their children with ?child=, else gets them all.
    parameters:
      - {name: child, in: query, required: false, schema: {type: string}}
    responses:
      200:
        description: >-
          {"items": [{assignment: Assignment, works: [Work], child: id|null}]}
      403:
        description: Not one of the parent's children.
    """
    user = await user_of(request)
    if isinstance(user, JSONResponse):
        return user
    ctx: AppContext = request.app.state.ctx
    if user.role is Role.PARENT:
        children = sorted(await ctx.roster.children_of(user.id))
        wanted = request.query_params.get("child")
        if wanted is not None:
            if wanted not in children:
                return error(403, "forbidden", "not one of your children")
            children = [wanted]
        people = children
    elif user.role is Role.STUDENT:
        people = [user.id]
    else:
        return JSONResponse({"items": []})
    items: list[dict[str, Any]] = []
    for person in people:
        rooms = await ctx.roster.rooms_of(person)
        classes = [r.id for r in rooms if RoomKind(r.kind) is RoomKind.CLASS]
        member_of = {r.id for r in rooms}  # the rooms_of the person: no query per work
        found = await ctx.assignments.store.of_classes(classes)
        works = await ctx.assignments.store.works_in([a.id for a in found])
        for a in found:
            mine = [
                w
                for w in works
                if w.assignment_id == a.id
                and (w.student_id == person if w.student_id else w.room_id in member_of)
            ]
            if not mine:
                continue
            units = await units_of(ctx, mine)
            views = []
            for w in mine:
                view = await work_view(ctx, w, a, units[w.id], teacher=False)
                if user.role is Role.PARENT:
                    view["unit"] = {"kind": view["unit"]["kind"], "name": view["unit"]["name"]}
                views.append(view)
            items.append(
                {
                    "assignment": assignment_json(a),
                    "works": views,
                    "child": person if user.role is Role.PARENT else None,
                }
            )
    items.sort(key=lambda i: (i["assignment"]["due_at"], i["assignment"]["id"]))
    return JSONResponse({"items": items, "now": time.time()})


routes = [
    Route("/api/works/{work_id}/hand-in", hand_in, methods=["POST"]),
    Route("/api/works/{work_id}/rendu", rendu, methods=["GET"]),
    Route("/api/works/{work_id}/reopen", reopen, methods=["POST"]),
    Route("/api/works/{work_id}/feedback", feedback, methods=["PUT"]),
    Route("/api/works/{work_id}/return", give_back, methods=["POST"]),
    Route("/api/me/todo", todo, methods=["GET"]),
]
