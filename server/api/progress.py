"""REST for group progress: who wrote what, and the versions of a doc (docs/protocol.md,
"Progress over REST"). Every handler documents itself in OpenAPI (YAML after ``---``).

Who sees what (the contract's permission table, and nothing about other minors):
teachers of the class and the room's members with chat access see everything of the
room's docs; a parent sees only the figures of their own children, and no versions;
writing (naming, restoring) needs write access to the doc as it is now (a locked doc:
teachers only).
"""

from __future__ import annotations

import difflib
import re
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.api.access import doc_access, naming
from server.api.rest import Caller, error, in_room
from server.persistence import activity
from server.progress import content
from server.progress.attribution import UNATTRIBUTED, Ledger
from server.progress.service import doc_of, figures_json, minute_rows
from server.types import DOC_NAME_RE, DocAccess, Role

_WORDS = re.compile(r"\S+|\s+")


async def _caller(request: Request) -> Caller | JSONResponse:
    doc_name = request.path_params["doc_name"]
    if not DOC_NAME_RE.fullmatch(doc_name):
        return error(400, "bad_request", "invalid document name")
    caller = await in_room(request, request.path_params["room_id"])
    if isinstance(caller, JSONResponse):
        return caller
    access = await doc_access(caller.ctx, caller.user, caller.room, caller.access, doc_name)
    if access.docs is DocAccess.NONE:
        return error(403, "forbidden", "no access to this document")
    return Caller(caller.ctx, caller.user, caller.room, access)


def _sees_history(caller: Caller) -> bool:
    return caller.access.chat or caller.access.moderate


async def _room_names(caller: Caller, names: dict[str, str]) -> dict[str, str]:
    """Contributors' names as the room shows them to this caller: its students see
    classmates under the room's ``presence_names`` policy; its teachers, and a parent
    looking at their own child, the display names."""
    if caller.access.moderate or caller.user.role is Role.PARENT:
        return names
    name_of = await naming(caller.ctx, caller.room.id)
    roles = {
        m["id"]: m["role"] for m in await activity.room_members(caller.ctx.engine, caller.room.id)
    }
    out = {}
    for user, name in names.items():
        role = roles.get(user)
        if role is None:  # not a member (a teacher of the class, a removed student)
            found = await caller.ctx.roster.get_user(user)
            role = str(found.role) if found is not None else "student"
        out[user] = name_of(user, role, name)
    return out


async def _may_write(caller: Caller, doc_name: str) -> bool:
    locked = await caller.ctx.store.is_locked(caller.room.id, doc_name)
    return caller.access.doc_access(locked) is DocAccess.WRITE


async def contributions(request: Request) -> Response:
    """
    ---
    summary: Who wrote what in a doc, computed by the server from the doc itself.
    parameters:
      - {name: room_id, in: path, required: true, schema: {type: string}}
      - {name: doc_name, in: path, required: true, schema: {type: string}}
    responses:
      200:
        description: >-
          {words, chars, users: [{id, name, inserted, deleted, edits, active_minutes,
          first_edit, last_edit}], unattributed: {inserted, deleted, edits},
          authors: {client id: user id}, activity: {user id: [int x 60]}}; a parent gets
          only their children's figures
      401:
        description: Missing, invalid or expired token.
      403:
        description: No access to this room.
    """
    caller = await _caller(request)
    if isinstance(caller, JSONResponse):
        return caller
    ctx, doc_name = caller.ctx, request.path_params["doc_name"]
    ledger, doc = await ctx.progress.ledger_of(caller.room.id, doc_name)
    figures = ledger.figures()
    if not _sees_history(caller):
        if caller.user.role is not Role.PARENT:
            return error(403, "forbidden", "no access to the progress of this room")
        children = await ctx.roster.children_of(caller.user.id)
        kept = {u: f for u, f in figures.items() if u in children}
        names = await ctx.progress.names(list(kept))
        return JSONResponse({"users": figures_json(kept, names)})
    names = await _room_names(caller, await ctx.progress.names(list(figures)))
    text = content.plain_text(doc)
    nobody = figures.get(UNATTRIBUTED)
    return JSONResponse(
        {
            "words": content.words(text),
            "chars": len(text),
            "users": figures_json(figures, names),
            "unattributed": {
                "inserted": nobody.inserted if nobody else 0,
                "deleted": nobody.deleted if nobody else 0,
                "edits": nobody.edits if nobody else 0,
            },
            "authors": {str(c): u for c, u in ledger.owners().items()},
            "activity": {
                user: row
                for user, row in minute_rows(ledger, time.time()).items()
                if user != UNATTRIBUTED
            },
        }
    )


async def versions(request: Request) -> Response:
    """
    ---
    summary: The versions of a doc (GET, newest first), or name the doc as it is now (POST).
    description: 'POST takes {"name": "Version avant correction"} (1-120 characters).'
    parameters:
      - {name: room_id, in: path, required: true, schema: {type: string}}
      - {name: doc_name, in: path, required: true, schema: {type: string}}
    responses:
      200:
        description: '{"versions": [{id, kind, name, by, at, contributors}]}'
      201:
        description: '{"version": {id, kind, name, by, at, contributors}}'
      400:
        description: Bad doc name or body.
      401:
        description: Missing, invalid or expired token.
      403:
        description: No access to the history of this room, or not allowed to write the doc.
    """
    caller = await _caller(request)
    if isinstance(caller, JSONResponse):
        return caller
    if not _sees_history(caller):
        return error(403, "forbidden", "no access to the history of this room")
    ctx, room_id, doc_name = caller.ctx, caller.room.id, request.path_params["doc_name"]
    if request.method == "GET":
        found = await ctx.progress.versions.list(room_id, doc_name)
        return JSONResponse({"versions": [v.to_json() for v in found]})
    if not await _may_write(caller, doc_name):
        return error(403, "forbidden", "only those who may write the document name versions")
    try:
        body = await request.json()
        name = body["name"].strip()
        if not (isinstance(name, str) and 1 <= len(name) <= 120):
            raise ValueError
    except Exception:
        return error(400, "bad_request", 'expected {"name": "..."} of 1 to 120 characters')
    info = await ctx.progress.name_version(room_id, doc_name, name, caller.user.id)
    return JSONResponse({"version": info.to_json()}, status_code=201)


async def _version(request: Request) -> tuple[Caller, Any, bytes] | JSONResponse:
    caller = await _caller(request)
    if isinstance(caller, JSONResponse):
        return caller
    if not _sees_history(caller):
        return error(403, "forbidden", "no access to the history of this room")
    try:
        version_id = int(request.path_params["version_id"])
    except ValueError:
        return error(400, "bad_request", "a version id is a number")
    found = await caller.ctx.progress.versions.get(
        caller.room.id, request.path_params["doc_name"], version_id
    )
    if found is None:
        return error(404, "not_found", "no such version of this document")
    return caller, found[0], found[1]


async def version(request: Request) -> Response:
    """
    ---
    summary: One version's content, read-only (sanitised HTML and plain text).
    parameters:
      - {name: room_id, in: path, required: true, schema: {type: string}}
      - {name: doc_name, in: path, required: true, schema: {type: string}}
      - {name: version_id, in: path, required: true, schema: {type: integer}}
    responses:
      200:
        description: '{"version": {...}, "html": str, "text": str}'
      403:
        description: No access to the history of this room.
      404:
        description: No such version.
    """
    got = await _version(request)
    if isinstance(got, JSONResponse):
        return got
    info, state = got[1], got[2]
    doc = doc_of(state)
    return JSONResponse(
        {"version": info.to_json(), "html": content.html(doc), "text": content.plain_text(doc)}
    )


async def version_diff(request: Request) -> Response:
    """
    ---
    summary: What changed from a version to the doc now, as text hunks and per author.
    description: >-
      by_author gives each user's net change of characters present in the doc (added:
      more of their text than in the version; removed: less).
    parameters:
      - {name: room_id, in: path, required: true, schema: {type: string}}
      - {name: doc_name, in: path, required: true, schema: {type: string}}
      - {name: version_id, in: path, required: true, schema: {type: integer}}
    responses:
      200:
        description: >-
          {"hunks": [{op: equal|insert|delete, text}],
          "by_author": [{user, added, removed}]}
      403:
        description: No access to the history of this room.
      404:
        description: No such version.
    """
    got = await _version(request)
    if isinstance(got, JSONResponse):
        return got
    caller, _info, state = got
    ledger, doc = await caller.ctx.progress.ledger_of(
        caller.room.id, request.path_params["doc_name"]
    )
    then = Ledger.from_state(state, ledger.owners()).figures()
    now = ledger.figures()
    old_words = _WORDS.findall(content.plain_text(doc_of(state)))
    new_words = _WORDS.findall(content.plain_text(doc))
    hunks: list[dict[str, str]] = []
    matcher = difflib.SequenceMatcher(a=old_words, b=new_words, autojunk=False)
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        if op in ("equal", "delete", "replace") and a1 > a0:
            hunks.append(
                {"op": "equal" if op == "equal" else "delete", "text": "".join(old_words[a0:a1])}
            )
        if op in ("insert", "replace") and b1 > b0:
            hunks.append({"op": "insert", "text": "".join(new_words[b0:b1])})
    by_author = []
    for user in sorted(set(then) | set(now)):
        if user == UNATTRIBUTED:
            continue
        delta = (now[user].inserted if user in now else 0) - (
            then[user].inserted if user in then else 0
        )
        if delta:
            by_author.append({"user": user, "added": max(delta, 0), "removed": max(-delta, 0)})
    return JSONResponse({"hunks": hunks, "by_author": by_author})


async def restore(request: Request) -> Response:
    """
    ---
    summary: Make the doc the version's content again, as a new change by the caller.
    description: >-
      Every connected client receives the change at once. The doc as it was just before
      is kept as a version of kind "restore": restoring that one undoes this.
    parameters:
      - {name: room_id, in: path, required: true, schema: {type: string}}
      - {name: doc_name, in: path, required: true, schema: {type: string}}
      - {name: version_id, in: path, required: true, schema: {type: integer}}
    responses:
      200:
        description: '{"restored": id, "version": {the "restore" version taken before}}'
      403:
        description: Not allowed to write the document.
      404:
        description: No such version.
    """
    got = await _version(request)
    if isinstance(got, JSONResponse):
        return got
    caller, info, _state = got
    doc_name = request.path_params["doc_name"]
    if not await _may_write(caller, doc_name):
        return error(403, "forbidden", "only those who may write the document restore it")
    before = await caller.ctx.progress.restore(caller.room.id, doc_name, info.id, caller.user.id)
    return JSONResponse({"restored": info.id, "version": before.to_json()})


_DOC = "/api/rooms/{room_id}/docs/{doc_name}"
routes = [
    Route(f"{_DOC}/contributions", contributions, methods=["GET"]),
    Route(f"{_DOC}/versions", versions, methods=["GET", "POST"]),
    Route(f"{_DOC}/versions/{{version_id}}", version, methods=["GET"]),
    Route(f"{_DOC}/versions/{{version_id}}/diff", version_diff, methods=["GET"]),
    Route(f"{_DOC}/versions/{{version_id}}/restore", restore, methods=["POST"]),
]
