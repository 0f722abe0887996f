"""The rendus of an assignment as one ZIP archive: an HTML or an ODT file per rendu.

HTML reuses the allow-list renderer of server/progress/content.py (nothing a student typed
comes out as markup) inside a small standalone page. ODT — the format French public
administration prefers — is written with **odfpy** (pure Python, the library pandas' ODF
writer relies on): headings stay headings (``text:h`` with their level), paragraphs and
list items become paragraphs (items with a bullet), and every text goes in as a text
node, never as XML. Each file opens with the assignment's title, the group or student,
the members, the status and the hand-in time in French, and ends with the feedback.
Everything is built in memory.
"""

from __future__ import annotations

import html as _html
import io
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from odf.opendocument import OpenDocumentText
from odf.style import ParagraphProperties, Style, TextProperties
from odf.text import H, P
from pycrdt import Doc, XmlElement, XmlFragment, XmlText

from server.assignments.french import french_datetime, slug
from server.progress import content


@dataclass(frozen=True, slots=True)
class Rendu:
    unit: str  # a group's name or a student's
    members: list[str]
    status: str  # French label ("Rendu", "En retard", "Non rendu", "Corrigé")
    submitted_at: float | None
    submitted_by: str | None
    state: bytes  # the doc's whole state (a Yjs update)
    comment: str | None = None
    appreciation: str | None = None
    mark: str | None = None


def _header(title: str, r: Rendu, tz: str) -> list[str]:
    lines = [f"{r.unit} — {r.status}"]
    if r.members:
        lines.append("Membres : " + ", ".join(r.members))
    if r.submitted_at is not None:
        who = f" par {r.submitted_by}" if r.submitted_by else " (à l'échéance)"
        lines.append(f"Rendu le {french_datetime(r.submitted_at, tz)}{who}")
    return lines


def _feedback(r: Rendu) -> list[str]:
    out = []
    if r.appreciation:
        out.append(f"Appréciation : {r.appreciation}")
    if r.mark:
        out.append(f"Note : {r.mark}")
    if r.comment:
        out.extend(r.comment.splitlines())
    return out


def _html_page(title: str, r: Rendu, tz: str) -> str:
    e = _html.escape
    head = "".join(f"<p>{e(line)}</p>" for line in _header(title, r, tz))
    fb = _feedback(r)
    feedback = (
        "<section><h2>Correction</h2>" + "".join(f"<p>{e(x)}</p>" for x in fb) + "</section>"
        if fb
        else ""
    )
    body = content.html(_doc(r.state))
    return (
        f"<!doctype html><html lang=fr><meta charset=utf-8><title>{e(title)} — {e(r.unit)}"
        f"</title><body><header><h1>{e(title)}</h1>{head}</header><main>{body}</main>"
        f"{feedback}</body></html>"
    )


def _doc(state: bytes) -> Doc:
    doc: Doc = Doc()
    if state:
        doc.apply_update(state)
    return doc


def _inline(node: object) -> str:
    if isinstance(node, XmlText):
        return "".join(str(chunk[0]) for chunk in node.diff() if isinstance(chunk[0], str))
    if isinstance(node, XmlElement):
        return "".join(_inline(child) for child in node.children)
    return ""


def _blocks(node: XmlFragment | XmlElement, out: list[tuple[str, int, str]], bullet: str) -> None:
    """(kind, level, text) for each block: ``h`` headings, ``p`` paragraphs."""
    for child in node.children:
        if isinstance(child, XmlText):
            text = _inline(child)
            if text:
                out.append(("p", 0, bullet + text))
            continue
        if not isinstance(child, XmlElement):
            continue
        tag = child.tag
        if tag == "heading":
            level = content.heading_level(child.attributes.get("level"))
            out.append(("h", level, _inline(child)))
        elif tag in ("bulletList", "orderedList"):
            _blocks(child, out, "• ")
        elif tag == "paragraph" or tag == "codeBlock":
            out.append(("p", 0, bullet + _inline(child)))
        else:
            _blocks(child, out, bullet)


def _odt(title: str, r: Rendu, tz: str) -> bytes:
    odt = OpenDocumentText()
    bold = Style(name="Fort", family="paragraph")
    bold.addElement(TextProperties(fontweight="bold"))
    boxed = Style(name="Correction", family="paragraph")
    boxed.addElement(ParagraphProperties(margintop="0.4cm"))
    odt.automaticstyles.addElement(bold)
    odt.automaticstyles.addElement(boxed)
    odt.text.addElement(H(outlinelevel=1, text=title))
    for line in _header(title, r, tz):
        odt.text.addElement(P(stylename=bold, text=line))
    doc = _doc(r.state)
    blocks: list[tuple[str, int, str]] = []
    for name, kind in content.roots(doc).items():
        if kind == content.XML:
            _blocks(doc.get(name, type=XmlFragment), blocks, "")
        elif kind == content.TEXT:
            blocks.extend(("p", 0, line) for line in content.plain_text(doc).splitlines())
    for kind, level, text in blocks:
        if kind == "h":
            odt.text.addElement(H(outlinelevel=min(level + 1, 6), text=text))
        else:
            odt.text.addElement(P(text=text))
    fb = _feedback(r)
    if fb:
        odt.text.addElement(H(outlinelevel=2, text="Correction"))
        for line in fb:
            odt.text.addElement(P(stylename=boxed, text=line))
    buf = io.BytesIO()
    odt.write(buf)
    return buf.getvalue()


def export_zip(
    title: str, rendus: Sequence[Rendu], fmt: Literal["html", "odt"], tz: str = "Europe/Paris"
) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        names = []
        for n, r in enumerate(rendus, 1):
            name = f"{n:02d}-{slug(r.unit, 60, 'rendu')}.{fmt}"
            names.append((name, r))
            data = _html_page(title, r, tz).encode() if fmt == "html" else _odt(title, r, tz)
            archive.writestr(name, data)
        if fmt == "html":
            e = _html.escape
            items = "".join(
                f'<li><a href="{e(name)}">{e(r.unit)}</a> — {e(r.status)}</li>' for name, r in names
            )
            archive.writestr(
                "index.html",
                f"<!doctype html><html lang=fr><meta charset=utf-8><title>{e(title)}</title>"
                f"<h1>{e(title)}</h1><ul>{items}</ul></html>",
            )
    return buf.getvalue()
