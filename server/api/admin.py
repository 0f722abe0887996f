"""Roster management over REST, for the region's admins (DESIGN.md: "admin — roster
management only, no room content").

``POST /api/admin/roster/import``: the same import as ``atelier roster import``
(server/roster/importer.py), the file as the request's body. The file is parsed and
compared in a worker thread: a region's file (~100,000 users) must not hold the event
loop that serves the node's sockets.

After an import that changed the roster, every node empties its roster caches and the
open sockets of the users in ``lowered`` are checked again on every node
(server/revocation/): those left without access close with 4403 at once.
"""

from __future__ import annotations

import asyncio
import hashlib

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.api.rest import admin_of, error
from server.context import AppContext
from server.roster import formats
from server.roster.importer import import_roster

_TYPES: dict[str, formats.Format] = {
    "text/csv": "csv",
    "application/csv": "csv",
    "application/json": "json",
}
_TRUE = {"1", "true", "yes"}
_FALSE = {"", "0", "false", "no"}


def _flag(request: Request, name: str) -> bool | None:
    """A boolean query parameter (absent: false); None if it is not one."""
    value = request.query_params.get(name, "").lower()
    if value in _TRUE:
        return True
    return False if value in _FALSE else None


async def _body(request: Request, limit: int) -> bytes | None:
    """The body, or None once it grows past ``limit`` (read no further)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def roster_import(request: Request) -> Response:
    """
    ---
    summary: Import the ENT's roster (admins only) - the file becomes the whole roster.
    description: >-
      The body is the roster file (docs/roster.md): Content-Type text/csv or
      application/json. Users the file leaves out are removed (their history stays under
      their id; they can no longer sign in); a file that removes more than
      ROSTER_MAX_REMOVED_SHARE of the users is refused unless force=1. The import is one
      transaction, recorded in the audit trail; importing the same file again changes
      nothing. dry_run=1 reports the changes and writes nothing.
    parameters:
      - {name: dry_run, in: query, required: false, schema: {type: integer, enum: [0, 1]}}
      - {name: force, in: query, required: false, schema: {type: integer, enum: [0, 1]}}
    requestBody:
      required: true
      content:
        text/csv: {schema: {type: string}}
        application/json: {schema: {type: object}}
    responses:
      200:
        description: >-
          The report: {status: applied|unchanged|dry_run, dry_run, forced, applied,
          changed, refused: null, counts: {schools|classes|groups|users|memberships|
          parent_links: {added, changed, removed}}, restored: [user id], users: {before,
          removed, removed_share, max_removed_share}, assignments_deleted, lowered:
          [{user_id, rooms: [room id], reasons: [removed|role_changed|left_room|
          lost_parent_link|child_left_room]}], audit_id}
      400:
        description: >-
          The file is refused, nothing imported: {error: invalid_roster, message,
          problems: [{line, path, field, message}]}; or a bad dry_run / force.
      401:
        description: Missing, invalid or expired token.
      403:
        description: The caller is not an admin.
      409:
        description: >-
          Refused, nothing imported - the file removes too many users: the report
          (status refused, refused says why); force=1 imports it.
      413:
        description: The file is larger than ROSTER_MAX_BYTES.
      415:
        description: Not text/csv or application/json.
    """
    user = await admin_of(request, "only an admin may import the roster")
    if isinstance(user, JSONResponse):
        return user
    ctx: AppContext = request.app.state.ctx
    dry_run, force = _flag(request, "dry_run"), _flag(request, "force")
    if dry_run is None or force is None:
        return error(400, "bad_request", "dry_run and force are 0 or 1")
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    fmt = _TYPES.get(media)
    if fmt is None:
        return error(415, "unsupported_media_type", "send text/csv or application/json")
    settings = ctx.settings
    data = await _body(request, settings.roster_max_bytes)
    if data is None:
        limit = settings.roster_max_bytes
        return error(413, "too_large", f"the roster file is over {limit} bytes")
    try:
        snap = await asyncio.to_thread(
            formats.parse,
            data,
            fmt,
            max_bytes=settings.roster_max_bytes,
            max_rows=settings.roster_max_rows,
        )
    except formats.RosterFileError as exc:
        return JSONResponse(
            {
                "error": "invalid_roster",
                "message": "the roster file is refused; nothing was imported",
                "problems": [p.to_json() for p in exc.problems],
            },
            status_code=400,
        )
    report = await import_roster(
        ctx.engine,
        snap,
        actor=user.id,
        node=settings.node_id,
        max_removed_share=settings.roster_max_removed_share,
        dry_run=dry_run,
        force=force,
        detail={"source": "api", "format": fmt, "sha256": hashlib.sha256(data).hexdigest()},
    )
    if report.applied and report.changed:
        # Every node drops its roster caches, and the sockets of those who lost access
        # close at once, wherever they are (server/revocation/).
        await ctx.revocations.roster_changed([lw.user_id for lw in report.lowered])
    return JSONResponse(report.to_json(), status_code=409 if report.refused else 200)


#: Settings shown to admins as "set" / "unset" only: keys, or URLs that may hold a password.
HIDDEN = ("secret", "password", "database_url", "redis_url", "metrics_token")


async def settings_view(request: Request) -> Response:
    """
    ---
    summary: This node's settings, for admins (read-only; secrets shown as set or unset).
    description: >-
      Every ATELIER_ setting with its value and its description (server/config.py). A
      key, a secret, or a URL that may carry a password is shown only as "set" or
      "unset". Changing a setting is a deployment's business (environment), not this
      endpoint's.
    responses:
      200:
        description: '{"node": id, "settings": [{name, value, description}]}'
      403:
        description: Not an admin.
    """
    user = await admin_of(request)
    if isinstance(user, JSONResponse):
        return user
    ctx: AppContext = request.app.state.ctx
    settings = ctx.settings
    out = []
    for name, field in type(settings).model_fields.items():
        value = getattr(settings, name)
        if any(word in name for word in HIDDEN):
            value = "set" if value else "unset"
        elif not isinstance(value, str | int | float | bool | type(None)):
            value = str(value)
        out.append(
            {"name": f"ATELIER_{name.upper()}", "value": value, "description": field.description}
        )
    return JSONResponse({"node": settings.node_id, "settings": out})


routes = [
    Route("/api/admin/roster/import", roster_import, methods=["POST"]),
    Route("/api/admin/settings", settings_view, methods=["GET"]),
]
