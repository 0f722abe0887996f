"""One person's export: a ZIP with everything Atelier holds about them.

- ``donnees.json``: the whole record (roster entry, memberships, parent links, sessions,
  notifications, chat messages written, works and feedback, versions, audit entries,
  contributions per doc), machine-readable;
- ``LISEZMOI.html``: the same, for a person to read;
- ``documents/ROOM--DOC.html``: each doc the person contributed to, as HTML
  (server/progress/content.py), headed by their contribution;
- ``chat.csv``, ``notifications.csv``, ``contributions.csv``: spreadsheets.

Docs of a *group* room are exported with their content only when the requester may
read that room's docs (the person themself, or an admin answering a request): a parent
reads no group room (DESIGN.md), so a parent's export of a child holds the child's
figures for group docs, not the group's text.

The database is read on the event loop (a doc live on this node is read from its
replica); the ZIP is written by a worker thread into a temporary file, bounded by
PRIVACY_EXPORT_MAX_BYTES, and streamed from there.
"""

from __future__ import annotations

import csv
import html
import io
import json
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass, field
from typing import IO, Any

from server.persistence import personal
from server.persistence.roster import Roster
from server.progress import content
from server.progress.attribution import UNATTRIBUTED
from server.progress.service import Progress
from server.types import RoomKind


class ExportTooLarge(Exception):
    """The export grew past PRIVACY_EXPORT_MAX_BYTES."""


@dataclass(slots=True)
class DocPart:
    room_id: str
    doc_name: str
    kind: str
    figures: dict[str, Any]
    html: str | None  # None: content withheld (a parent and a group room)


@dataclass(slots=True)
class Export:
    subject: str
    requested_by: str
    generated_at: float
    holdings: personal.Holdings
    docs: list[DocPart] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        h = asdict(self.holdings)
        return {
            "format": "atelier-export/1",
            "generated_at": self.generated_at,
            "requested_by": self.requested_by,
            **h,
            "contributions": [
                {
                    "room_id": d.room_id,
                    "doc_name": d.doc_name,
                    "room_kind": d.kind,
                    **d.figures,
                    "content": (
                        f"documents/{_file_of(d)}" if d.html is not None else "non incluse"
                    ),
                }
                for d in self.docs
            ],
        }


def _file_of(d: DocPart) -> str:
    return f"{d.room_id}--{d.doc_name}.html"


async def gather(
    engine: Any,
    roster: Roster,
    progress: Progress,
    subject: str,
    requested_by: str,
    *,
    group_content: bool,
) -> Export | None:
    """What the export holds, read now. None if the roster does not hold ``subject``."""
    held = await personal.holdings(engine, subject)
    if held is None:
        return None
    out = Export(subject, requested_by, time.time(), held)
    kinds: dict[str, str] = {}
    for room_id, doc_name in await personal.docs_touched(engine, subject):
        ledger, doc = await progress.ledger_of(room_id, doc_name)
        mine = ledger.figures().get(subject)
        if mine is None or subject == UNATTRIBUTED or not (mine.inserted or mine.edits):
            continue
        if room_id not in kinds:
            room = await roster.get_room(room_id)
            kinds[room_id] = room.kind.value if room is not None else "unknown"
        readable = group_content or kinds[room_id] != RoomKind.GROUP.value
        out.docs.append(
            DocPart(
                room_id,
                doc_name,
                kinds[room_id],
                {
                    "characters_present": mine.inserted,
                    "characters_deleted": mine.deleted,
                    "edits": mine.edits,
                    "active_minutes": mine.active_minutes,
                    "first_edit": mine.first_edit,
                    "last_edit": mine.last_edit,
                },
                content.html(doc) if readable else None,
            )
        )
    return out


def _csv(rows: list[dict[str, Any]], columns: list[str]) -> bytes:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    w.writeheader()
    for row in rows:
        w.writerow({k: _cell(row.get(k)) for k in columns})
    # UTF-8 with a BOM: what spreadsheets of French schools open without mojibake.
    return ("\ufeff" + buf.getvalue()).encode()


def _cell(value: Any) -> Any:
    if isinstance(value, float) and value > 1e9:  # a unix time: ISO, readable
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(value)) + " UTC"
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value  # never a formula in a spreadsheet
    return value


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=fr><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title><body>{body}</body></html>"
    )


def _readme(e: Export) -> str:
    h = e.holdings
    u = h.user
    esc = html.escape
    items = [
        ("Identifiant", u["id"]),
        ("Nom affiché", u["display_name"]),
        ("Rôle", u["role"]),
        ("Salles", ", ".join(h.memberships) or "aucune"),
        ("Enfants (lien parent)", ", ".join(h.children) or "aucun"),
        ("Parents", ", ".join(h.parents) or "aucun"),
        ("Sessions de connexion", str(len(h.sessions))),
        ("Messages écrits", str(len(h.chat))),
        ("Notifications", str(len(h.notifications))),
        ("Travaux", str(len(h.works))),
        ("Modifications de documents", str(h.doc_updates)),
        ("Documents où figurent des contributions", str(len(e.docs))),
    ]
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in items)
    docs = "".join(
        f"<li><a href='documents/{esc(_file_of(d))}'>{esc(d.room_id)} / {esc(d.doc_name)}</a>"
        f" — {d.figures['characters_present']} caractères présents, "
        f"{d.figures['edits']} modifications</li>"
        if d.html is not None
        else f"<li>{esc(d.room_id)} / {esc(d.doc_name)} — {d.figures['edits']} modifications"
        " (contenu d'un groupe, non inclus)</li>"
        for d in e.docs
    )
    body = (
        f"<h1>Données de {esc(u['display_name'])}</h1>"
        f"<p>Export Atelier du {esc(_cell(e.generated_at))}. Le détail complet est dans "
        "<code>donnees.json</code> ; le chat et les notifications en CSV.</p>"
        f"<table>{rows}</table><h2>Documents</h2><ul>{docs or '<li>aucun</li>'}</ul>"
    )
    return _page("Mes données", body)


def write_zip(e: Export, out: IO[bytes], limit: int) -> int:
    """Write the ZIP into ``out`` (blocking: run it in a thread). Its size in bytes;
    raises ExportTooLarge past ``limit``."""
    record = e.record()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:

        def put(name: str, data: bytes | str) -> None:
            z.writestr(name, data)
            if out.tell() > limit:
                raise ExportTooLarge(name)

        put("donnees.json", json.dumps(record, ensure_ascii=False, indent=1, sort_keys=True))
        put("LISEZMOI.html", _readme(e))
        h = e.holdings
        put(
            "chat.csv",
            _csv(h.chat, ["created_at", "room_id", "seq", "text", "edited_at", "deleted"]),
        )
        put(
            "notifications.csv",
            _csv(h.notifications, ["created_at", "kind", "title", "body", "read_at"]),
        )
        put(
            "contributions.csv",
            _csv(
                record["contributions"],
                [
                    "room_id",
                    "doc_name",
                    "characters_present",
                    "characters_deleted",
                    "edits",
                    "active_minutes",
                    "first_edit",
                    "last_edit",
                ],
            ),
        )
        for d in e.docs:
            if d.html is None:
                continue
            f = d.figures
            head = (
                f"<h1>{html.escape(d.room_id)} / {html.escape(d.doc_name)}</h1>"
                f"<p>Contribution de {html.escape(e.holdings.user['display_name'])} : "
                f"{f['characters_present']} caractères présents, {f['characters_deleted']} "
                f"supprimés, {f['edits']} modifications.</p><hr>"
            )
            put(f"documents/{_file_of(d)}", _page(d.doc_name, head + d.html))
    out.flush()
    return out.tell()


def build(e: Export, limit: int) -> tuple[IO[bytes], int]:
    """The ZIP in a temporary file, positioned at its start (blocking)."""
    f = tempfile.TemporaryFile()
    try:
        size = write_zip(e, f, limit)
    except BaseException:
        f.close()
        raise
    f.seek(0)
    return f, size
