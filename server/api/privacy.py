"""Data protection over REST ("Mes données"): what Atelier holds about a person, their
export, erasure requests and erasure (server/privacy/).

Who may ask about a person: the person themself, a parent for their child (the roster's
parent links; the roster holds no birth date, so every linked student counts as a
minor), an admin for anyone; anyone else gets 403 (before any lookup, so the answer
says nothing of who exists). Erasure itself is for admins: the person or a parent files
a request (an audit row ``privacy.erase_request``), admins see the pending ones and
run the erasure, which answers with its report.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import IO, Any

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from server.api.rest import admin_of, error, user_of
from server.context import AppContext
from server.persistence import audit, personal
from server.persistence.db import writer
from server.persistence.models import audit_t, unix, user_t
from server.persistence.roster import UserInfo
from server.privacy import export
from server.privacy.classes import data_classes
from server.types import Role

_USER_ID = re.compile(r"[A-Za-z0-9._@-]{1,64}")
#: Exports built at once on a node: each reads every doc the person touched. A plain
#: count (the event loop is the only thread here), not a loop-bound semaphore.
MAX_EXPORTS = 2
_building = 0
_CHUNK = 64 * 1024
_REASON_MAX = 500


async def _subject(
    request: Request, user_id: str
) -> tuple[AppContext, UserInfo, bool] | JSONResponse:
    """(ctx, caller, whether group docs' content may go in an export) or the refusal."""
    ctx: AppContext = request.app.state.ctx
    caller = await user_of(request)
    if isinstance(caller, JSONResponse):
        return caller
    if not _USER_ID.fullmatch(user_id):
        return error(400, "invalid_user", "not a user id")
    if caller.id == user_id or caller.role is Role.ADMIN:
        return ctx, caller, True
    if caller.role is Role.PARENT and user_id in await ctx.roster.children_of(caller.id):
        return ctx, caller, False
    return error(403, "forbidden", "only the person, their parent or an admin")


async def _requested(ctx: AppContext, user_id: str) -> float | None:
    query = sa.select(sa.func.max(audit_t.c.at)).where(
        audit_t.c.action == "privacy.erase_request", audit_t.c.target == user_id
    )
    async with ctx.engine.connect() as conn:
        at = await conn.scalar(query)
    return None if at is None else unix(at)


async def _summary(ctx: AppContext, user_id: str) -> dict[str, Any] | None:
    async with ctx.engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(user_t.c.id, user_t.c.display_name, user_t.c.role).where(
                    user_t.c.id == user_id
                )
            )
        ).first()
    if row is None:
        return None
    return {
        "id": row.id,
        "name": row.display_name,
        "role": getattr(row.role, "value", str(row.role)),
        "counts": await personal.counts(ctx.engine, user_id),
        "erasure_requested_at": await _requested(ctx, user_id),
    }


def _retention(ctx: AppContext) -> list[dict[str, Any]]:
    return [
        {"key": c.key, "label": c.label, "days": c.days, "note": c.note}
        for c in data_classes(ctx.settings)
    ]


async def my_data(request: Request) -> Response:
    """
    ---
    summary: What Atelier holds about me (and, for a parent, about each child).
    responses:
      200:
        description: >-
          {me: {id, name, role, counts: {chat, doc_updates, versions, works,
          notifications, sessions, memberships, audit}, erasure_requested_at},
          children: [same], retention: [{key, label, days, note}]} (days 0: kept forever)
      401:
        description: Missing, invalid or expired token.
    """
    user = await user_of(request)
    if isinstance(user, JSONResponse):
        return user
    ctx: AppContext = request.app.state.ctx
    children = []
    if user.role is Role.PARENT:
        for child in sorted(await ctx.roster.children_of(user.id)):
            found = await _summary(ctx, child)
            if found is not None:
                children.append(found)
    return JSONResponse(
        {"me": await _summary(ctx, user.id), "children": children, "retention": _retention(ctx)}
    )


async def person_data(request: Request) -> Response:
    """
    ---
    summary: What Atelier holds about one person (themself, a parent, an admin).
    parameters:
      - {name: user_id, in: path, required: true, schema: {type: string}}
    responses:
      200:
        description: "{id, name, role, counts, erasure_requested_at, retention}"
      400:
        description: Not a user id.
      401:
        description: Missing, invalid or expired token.
      403:
        description: Not the person, their parent or an admin.
      404:
        description: No such user.
    """
    found = await _subject(request, request.path_params["user_id"])
    if isinstance(found, JSONResponse):
        return found
    ctx, _caller, _ = found
    summary = await _summary(ctx, request.path_params["user_id"])
    if summary is None:
        return error(404, "not_found", "no such user")
    return JSONResponse({**summary, "retention": _retention(ctx)})


async def _stream(f: IO[bytes]) -> AsyncIterator[bytes]:
    try:
        while chunk := await asyncio.to_thread(f.read, _CHUNK):
            yield chunk
    finally:
        f.close()


async def _export(request: Request, user_id: str) -> Response:
    global _building
    found = await _subject(request, user_id)
    if isinstance(found, JSONResponse):
        return found
    ctx, caller, group_content = found
    if _building >= MAX_EXPORTS:
        response = error(429, "busy", "exports are being built on this node, try again")
        response.headers["Retry-After"] = "10"
        return response
    _building += 1
    try:
        gathered = await export.gather(
            ctx.engine,
            ctx.roster,
            ctx.progress,
            user_id,
            caller.id,
            group_content=group_content,
        )
        if gathered is None:
            return error(404, "not_found", "no such user")
        try:
            f, size = await asyncio.to_thread(
                export.build, gathered, ctx.settings.privacy_export_max_bytes
            )
        except export.ExportTooLarge:
            return error(413, "too_large", "the export is over PRIVACY_EXPORT_MAX_BYTES")
    finally:
        _building -= 1
    try:
        async with writer(ctx.engine).begin() as conn:
            await audit.record(
                conn,
                actor=caller.id,
                node=ctx.settings.node_id,
                action="privacy.export",
                target=user_id,
                detail={"bytes": size, "docs": len(gathered.docs)},
            )
    except BaseException:
        f.close()
        raise
    name = f"atelier-donnees-{user_id}.zip"
    return StreamingResponse(
        _stream(f),
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Content-Length": str(size),
            "Cache-Control": "no-store",
        },
    )


async def my_export(request: Request) -> Response:
    """
    ---
    summary: Download my data (a ZIP - JSON, HTML, CSV).
    responses:
      200:
        description: >-
          application/zip - donnees.json (everything), LISEZMOI.html, chat.csv,
          notifications.csv, contributions.csv, documents/ROOM--DOC.html. Recorded in
          the audit trail (privacy.export).
      401:
        description: Missing, invalid or expired token.
      413:
        description: Over PRIVACY_EXPORT_MAX_BYTES.
      429:
        description: Exports are being built on this node; Retry-After.
    """
    user = await user_of(request)
    if isinstance(user, JSONResponse):
        return user
    return await _export(request, user.id)


async def person_export(request: Request) -> Response:
    """
    ---
    summary: Download one person's data (themself, a parent for a child, an admin).
    description: >-
      As /api/me/data/export. A parent's export of a child leaves out the content of
      group docs (a parent reads no group room), keeping the child's figures.
    parameters:
      - {name: user_id, in: path, required: true, schema: {type: string}}
    responses:
      200:
        description: application/zip (see /api/me/data/export).
      400:
        description: Not a user id.
      401:
        description: Missing, invalid or expired token.
      403:
        description: Not the person, their parent or an admin.
      404:
        description: No such user.
      413:
        description: Over PRIVACY_EXPORT_MAX_BYTES.
      429:
        description: Exports are being built on this node; Retry-After.
    """
    return await _export(request, request.path_params["user_id"])


async def _json_body(request: Request, limit: int = 4096) -> dict[str, Any] | None:
    """A small JSON object body ({} when empty); None when it is anything else."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body:
        return {}
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


async def erasure_request(request: Request) -> Response:
    """
    ---
    summary: Ask the admins to erase a person (themself, or a parent for a child).
    requestBody:
      required: false
      content:
        application/json:
          schema: {type: object, properties: {reason: {type: string, maxLength: 500}}}
    parameters:
      - {name: user_id, in: path, required: true, schema: {type: string}}
    responses:
      202:
        description: "{requested_at}: recorded (privacy.erase_request); admins see it."
      200:
        description: "{requested_at}: already requested, nothing new recorded."
      400:
        description: Not a user id, or a body that is not {reason}.
      401:
        description: Missing, invalid or expired token.
      403:
        description: Not the person or their parent.
    """
    user_id = request.path_params["user_id"]
    found = await _subject(request, user_id)
    if isinstance(found, JSONResponse):
        return found
    ctx, caller, _ = found
    body = await _json_body(request)
    reason = (body or {}).get("reason", "")
    if body is None or not isinstance(reason, str) or len(reason) > _REASON_MAX:
        return error(400, "invalid_body", f"expected {{reason}} of {_REASON_MAX} chars at most")
    if await ctx.roster.get_user(user_id) is None:
        return error(404, "not_found", "no such user")
    already = await _requested(ctx, user_id)
    if already is not None:
        return JSONResponse({"requested_at": already}, status_code=200)
    async with writer(ctx.engine).begin() as conn:
        await audit.record(
            conn,
            actor=caller.id,
            node=ctx.settings.node_id,
            action="privacy.erase_request",
            target=user_id,
            detail={"reason": reason.strip()},
        )
    return JSONResponse({"requested_at": await _requested(ctx, user_id)}, status_code=202)


async def erasure_requests(request: Request) -> Response:
    """
    ---
    summary: Pending erasure requests (admins only).
    responses:
      200:
        description: "{requests: [{user_id, name, role, requested_by, requested_at, reason}]}"
      401:
        description: Missing, invalid or expired token.
      403:
        description: The caller is not an admin.
    """
    admin = await admin_of(request)
    if isinstance(admin, JSONResponse):
        return admin
    ctx: AppContext = request.app.state.ctx
    query = (
        sa.select(audit_t, user_t.c.display_name, user_t.c.role)
        .join(user_t, user_t.c.id == audit_t.c.target)
        .where(audit_t.c.action == "privacy.erase_request")
        .order_by(audit_t.c.id)
        .limit(500)
    )
    async with ctx.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return JSONResponse(
        {
            "requests": [
                {
                    "user_id": r.target,
                    "name": r.display_name,
                    "role": getattr(r.role, "value", str(r.role)),
                    "requested_by": r.actor,
                    "requested_at": unix(r.at),
                    "reason": json.loads(r.detail).get("reason", ""),
                }
                for r in rows
            ]
        }
    )


async def find_people(request: Request) -> Response:
    """
    ---
    summary: Find a person by id or name (admins only).
    parameters:
      - {name: q, in: query, required: true, schema: {type: string, minLength: 1, maxLength: 64}}
    responses:
      200:
        description: "{people: [{id, name, role}]} (20 at most)"
      400:
        description: q missing or over 64 characters.
      401:
        description: Missing, invalid or expired token.
      403:
        description: The caller is not an admin.
    """
    admin = await admin_of(request)
    if isinstance(admin, JSONResponse):
        return admin
    q = request.query_params.get("q", "").strip()
    if not 1 <= len(q) <= 64:
        return error(400, "invalid_query", "q: 1 to 64 characters")
    ctx: AppContext = request.app.state.ctx
    return JSONResponse({"people": await personal.find_people(ctx.engine, q)})


async def erase(request: Request) -> Response:
    """
    ---
    summary: Erase a person (admins only) - on every node, with a report.
    description: >-
      Chat messages emptied ("message supprimé"), authorship in the doc log, versions,
      attribution and hand-ins pseudonymised, notifications and sessions deleted, the
      roster entry removed, the person's sockets closed on every node. Docs keep what
      they typed (the group's work), attributed to nobody they can be traced to. The
      body must repeat the id: {confirm: USER_ID}.
    parameters:
      - {name: user_id, in: path, required: true, schema: {type: string}}
    requestBody:
      required: true
      content:
        application/json: {schema: {type: object, properties: {confirm: {type: string}}}}
    responses:
      200:
        description: >-
          {user_id, counts: {data class: rows}, sockets_closed, sessions_ended,
          docs_renamed_here, seconds}; recorded (privacy.erase, no name).
      400:
        description: Not a user id, or confirm missing or different.
      401:
        description: Missing, invalid or expired token.
      403:
        description: The caller is not an admin.
      404:
        description: No such user.
      409:
        description: An admin cannot erase their own account.
    """
    admin = await admin_of(request)
    if isinstance(admin, JSONResponse):
        return admin
    ctx: AppContext = request.app.state.ctx
    user_id = request.path_params["user_id"]
    if not _USER_ID.fullmatch(user_id):
        return error(400, "invalid_user", "not a user id")
    body = await _json_body(request)
    if body is None or body.get("confirm") != user_id:
        return error(400, "confirm_required", "the body must be {confirm: USER_ID}")
    if user_id == admin.id:
        return error(409, "self", "an admin cannot erase their own account")
    assert ctx.erasure is not None
    report = await ctx.erasure.erase(user_id, admin.id)
    if report is None:
        return error(404, "not_found", "no such user")
    return JSONResponse(report.to_json())


routes = [
    Route("/api/me/data", my_data, methods=["GET"]),
    Route("/api/me/data/export", my_export, methods=["GET"]),
    Route("/api/people/{user_id}/data", person_data, methods=["GET"]),
    Route("/api/people/{user_id}/data/export", person_export, methods=["GET"]),
    Route("/api/people/{user_id}/data/erasure-request", erasure_request, methods=["POST"]),
    Route("/api/admin/privacy/requests", erasure_requests, methods=["GET"]),
    Route("/api/admin/privacy/people", find_people, methods=["GET"]),
    Route("/api/admin/privacy/erase/{user_id}", erase, methods=["POST"]),
]
