"""The audit trail for admins: read a page (``GET /api/admin/audit``), or export it all
as CSV (``GET /api/admin/audit.csv``, streamed). Same filters for both. An export is
itself recorded (``audit.export``): who took a copy of the trail, and of what.

CSV cells that a spreadsheet would read as a formula (``= + - @``, a tab or a carriage
return first) are prefixed with ``'``: a target or a detail may hold what a user typed
(a group's name), and opening the export must not run it.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from server.api.rest import admin_of, error
from server.context import AppContext
from server.persistence import audit
from server.persistence.db import writer
from server.persistence.models import unix

#: Longest id, action or target a filter takes (the columns' own sizes are 64 / 200).
MAX_FILTER = 200
_FORMULA = ("=", "+", "-", "@", "\t", "\r")
COLUMNS = ("id", "at", "actor", "node", "action", "target", "detail")


def _when(value: str, name: str) -> datetime:
    """ISO 8601 (a date, or a date and time; no zone: UTC) or unix seconds."""
    try:
        if value.replace(".", "", 1).isdigit():
            return datetime.fromtimestamp(float(value), UTC)
        when = datetime.fromisoformat(value)
    except (ValueError, OverflowError, OSError):
        raise ValueError(f"{name}: an ISO 8601 date or unix seconds") from None
    # In UTC: SQLite keeps the UTC wall clock and compares it as text.
    return when.astimezone(UTC) if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _filter(request: Request) -> audit.Filter:
    q = request.query_params
    texts: dict[str, str | None] = {}
    for name in ("actor", "action", "target"):
        value = q.get(name) or None
        if value is not None and (len(value) > MAX_FILTER or not value.isprintable()):
            raise ValueError(f"{name}: at most {MAX_FILTER} printable characters")
        texts[name] = value
    since = _when(q["since"], "since") if q.get("since") else None
    until = _when(q["until"], "until") if q.get("until") else None
    if since is not None and until is not None and until <= since:
        raise ValueError("until must come after since")
    return audit.Filter(since=since, until=until, **texts)


def _json(entry: audit.AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": unix(entry.at),
        "actor": entry.actor,
        "node": entry.node,
        "action": entry.action,
        "target": entry.target,
        "detail": entry.detail,
    }


async def audit_page(request: Request) -> Response:
    """
    ---
    summary: The audit trail, newest first, a page at a time (admins only).
    description: >-
      Who did what, when and from which node: moderation (chat.delete, chat.mute,
      chat.unmute), doc.lock / doc.unlock, assignment.due_at, work.reopen, work.return,
      roster.import, group.*, revoke.*, room.presence, audit.export. Filters combine:
      since (included) and until (excluded) are ISO 8601 or unix seconds; limit is at
      most AUDIT_PAGE_MAX. Follow next_before for the next page (null: no more).
    parameters:
      - {name: since, in: query, required: false, schema: {type: string}}
      - {name: until, in: query, required: false, schema: {type: string}}
      - {name: actor, in: query, required: false, schema: {type: string}}
      - {name: action, in: query, required: false, schema: {type: string}}
      - {name: target, in: query, required: false, schema: {type: string}}
      - {name: before, in: query, required: false, schema: {type: integer, minimum: 1}}
      - {name: limit, in: query, required: false, schema: {type: integer, default: 50}}
    responses:
      200:
        description: >-
          {"entries": [{id, at (unix), actor, node, action, target, detail}],
          "next_before": int|null, "actions": [the actions the server writes]}
      400:
        description: A bad filter, before or limit.
      401:
        description: Missing, invalid or expired token.
      403:
        description: Not an admin.
    """
    user = await admin_of(request)
    if isinstance(user, JSONResponse):
        return user
    ctx: AppContext = request.app.state.ctx
    most = ctx.settings.audit_page_max
    try:
        where = _filter(request)
        raw_before = request.query_params.get("before")
        before = int(raw_before) if raw_before else None
        limit = int(request.query_params.get("limit", "50"))
        if not 1 <= limit <= most or (before is not None and before < 1):
            raise ValueError(f"before is an id >= 1, limit is 1..{most}")
    except ValueError as exc:
        return error(400, "bad_request", str(exc))
    entries = await audit.page(ctx.engine, where, before, limit)
    next_before = entries[-1].id if len(entries) == limit else None
    return JSONResponse(
        {
            "entries": [_json(e) for e in entries],
            "next_before": next_before,
            "actions": list(audit.ACTIONS),
        }
    )


def cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA) else text


async def audit_csv(request: Request) -> Response:
    """
    ---
    summary: The audit trail as CSV, streamed (admins only); the export is itself audited.
    description: >-
      The same filters as GET /api/admin/audit, newest first, at most AUDIT_CSV_MAX_ROWS
      rows. Columns id, at (ISO 8601, UTC), actor, node, action, target, detail (JSON);
      cells a spreadsheet would take for a formula are prefixed with an apostrophe.
    parameters:
      - {name: since, in: query, required: false, schema: {type: string}}
      - {name: until, in: query, required: false, schema: {type: string}}
      - {name: actor, in: query, required: false, schema: {type: string}}
      - {name: action, in: query, required: false, schema: {type: string}}
      - {name: target, in: query, required: false, schema: {type: string}}
    responses:
      200:
        description: text/csv; charset=utf-8, a header row first
      400:
        description: A bad filter.
      401:
        description: Missing, invalid or expired token.
      403:
        description: Not an admin.
    """
    user = await admin_of(request)
    if isinstance(user, JSONResponse):
        return user
    ctx: AppContext = request.app.state.ctx
    try:
        where = _filter(request)
    except ValueError as exc:
        return error(400, "bad_request", str(exc))
    async with writer(ctx.engine).begin() as conn:
        await audit.record(
            conn,
            actor=user.id,
            node=ctx.settings.node_id,
            action="audit.export",
            detail={"filter": where.to_json()},
        )

    async def rows() -> AsyncIterator[str]:
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(COLUMNS)
        n = 0
        async for e in audit.stream(ctx.engine, where, ctx.settings.audit_csv_max_rows):
            detail = json.dumps(e.detail, ensure_ascii=False, sort_keys=True)
            w.writerow(
                [cell(v) for v in (e.id, e.at.isoformat(), e.actor, e.node, e.action, e.target)]
                + [cell(detail)]
            )
            n += 1
            if n % 500 == 0:
                yield out.getvalue()
                out.seek(0)
                out.truncate()
        yield out.getvalue()

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="atelier-audit-{stamp}.csv"',
            "Cache-Control": "no-store",
        },
    )


routes = [
    Route("/api/admin/audit", audit_page, methods=["GET"]),
    Route("/api/admin/audit.csv", audit_csv, methods=["GET"]),
]
