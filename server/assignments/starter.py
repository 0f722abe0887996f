"""A starter document from the teacher's text: a small markdown subset → a Yjs update
shaped like the web client's Tiptap doc (an XmlFragment ``default`` of blocks).

Lines: ``# ``/``## ``/``### `` headings, ``- `` or ``* `` bullets, ``1. `` numbered
items, blank lines between paragraphs; inline ``**bold**``, ``*italic*``,
``[text](https://…)`` (http, https, mailto only). Anything else is text, as typed.
"""

from __future__ import annotations

import re

from pycrdt import Doc, XmlElement, XmlFragment, XmlText

from server.progress.content import safe_href

MAX_STARTER_CHARS = 20_000

_HEADING = re.compile(r"^(#{1,3})\s+(.*)$")
_BULLET = re.compile(r"^[-*]\s+(.*)$")
_NUMBERED = re.compile(r"^\d{1,3}[.)]\s+(.*)$")
_INLINE = re.compile(r"\*\*(.+?)\*\*|\*(.+?)\*|\[([^\]]+)\]\(([^)\s]+)\)")


def _runs(text: str) -> list[tuple[str, dict[str, object] | None]]:
    out: list[tuple[str, dict[str, object] | None]] = []
    at = 0
    for m in _INLINE.finditer(text):
        if m.start() > at:
            out.append((text[at : m.start()], None))
        if m.group(1) is not None:
            out.append((m.group(1), {"bold": {}}))
        elif m.group(2) is not None:
            out.append((m.group(2), {"italic": {}}))
        else:
            href = safe_href(m.group(4))
            out.append((m.group(3), {"link": {"href": href}} if href else None))
        at = m.end()
    if at < len(text):
        out.append((text[at:], None))
    return [(t, a) for t, a in out if t]


def _block(parent: XmlFragment | XmlElement, tag: str, text: str, **attrs: object) -> None:
    node = parent.children.append(XmlElement(tag, attrs or None))  # type: ignore[arg-type]
    xml = node.children.append(XmlText())
    at = 0
    for run, marks in _runs(text):
        xml.insert(at, run, marks)
        at += len(run)


def starter_update(markdown: str, client_id: int | None = None) -> bytes:
    """The whole starter doc as one Yjs update (b"" for an empty text)."""
    doc: Doc = Doc(client_id=client_id) if client_id is not None else Doc()
    root = doc.get("default", type=XmlFragment)
    paragraph: list[str] = []
    current_list: tuple[str, XmlElement] | None = None

    def flush() -> None:
        if paragraph:
            _block(root, "paragraph", " ".join(paragraph))
            paragraph.clear()

    with doc.transaction():
        for raw in markdown[:MAX_STARTER_CHARS].splitlines():
            line = raw.strip()
            heading, bullet, numbered = (
                _HEADING.match(line),
                _BULLET.match(line),
                _NUMBERED.match(line),
            )
            if bullet or numbered:
                flush()
                kind = "bulletList" if bullet else "orderedList"
                if current_list is None or current_list[0] != kind:
                    current_list = (kind, root.children.append(XmlElement(kind)))
                item = current_list[1].children.append(XmlElement("listItem"))
                _block(item, "paragraph", (bullet or numbered).group(1))  # type: ignore[union-attr]
                continue
            current_list = None
            if heading:
                flush()
                _block(root, "heading", heading.group(2), level=len(heading.group(1)))
            elif not line:
                flush()
            else:
                paragraph.append(line)
        flush()
    if not len(root.children):
        return b""
    return doc.get_update()
