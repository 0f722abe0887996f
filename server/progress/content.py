"""A doc's words for teachers: its roots, plain text, safe HTML, word count, preview.

Pure over a ``pycrdt.Doc``. Docs are written by Tiptap (y-prosemirror): an XmlFragment
of block elements (``paragraph``, ``heading`` with a ``level``, lists, …) holding
XmlTexts whose formatting attributes are ProseMirror marks (``{"bold": {}}``,
``{"link": {"href": …}}``); or by plain editors: a Y.Text.

A doc loaded from an update does not know its root types (pycrdt reads a root with
whatever type it is asked for, and reads the wrong one as empty), so :func:`roots` infers
them from the structs of ``doc.get_update()``: each item's parent is its origin's parent
(an item names its parent only when it has neither origin), and a root holding XML nodes
is an XmlFragment, one holding characters, formats or embeds is a Text, one with keyed
entries a Map, anything else an Array.

The HTML is built from an allow-list and nothing else: known nodes and marks become
fixed tags, every text and attribute value is escaped, a link keeps its ``href`` only for
http, https and mailto, and an unknown node is rendered as its text. No markup a student
typed can come out as markup, whatever the doc holds.
"""

from __future__ import annotations

import html as _html
import re
from bisect import bisect_right
from urllib.parse import urlsplit

from pycrdt import Doc, Text, XmlElement, XmlFragment, XmlText

from server.sync.structs import Kind, Struct, TypeRef, decode_update

XML, TEXT, MAP, ARRAY = "xml", "text", "map", "array"

_XML_NODES = {TypeRef.XML_ELEMENT, TypeRef.XML_TEXT, TypeRef.XML_HOOK}
_TEXT_KINDS = {Kind.STRING, Kind.FORMAT, Kind.EMBED}
_ARRAY_KINDS = {Kind.JSON, Kind.ANY, Kind.BINARY, Kind.TYPE, Kind.DOC}


def _root_of(structs: tuple[Struct, ...]) -> list[str | None]:
    """For each struct, the root it sits in directly (None: nested, or unknown)."""
    index: dict[int, tuple[list[int], list[int]]] = {}  # client → (clocks, struct indexes)
    for n, s in enumerate(structs):
        clocks, ids = index.setdefault(s.client, ([], []))
        clocks.append(s.clock)
        ids.append(n)

    def find(client: int, clock: int) -> int | None:
        entry = index.get(client)
        if entry is None:
            return None
        clocks, ids = entry
        k = bisect_right(clocks, clock) - 1
        if k < 0:
            return None
        i = ids[k]
        return i if clock < structs[i].clock + structs[i].length else None

    unknown = object()
    parent: list[object] = [unknown] * len(structs)
    for start in range(len(structs)):
        # Follow origins until a struct that names its parent, iteratively (chains of
        # typed characters are as long as the text).
        chain: list[int] = []
        i: int | None = start
        result: str | None = None
        while i is not None and parent[i] is unknown:
            s = structs[i]
            chain.append(i)
            parent[i] = None  # cut cycles a hostile update could make
            if s.kind in (Kind.GC, Kind.SKIP):
                i = None
            elif s.parent_root is not None:
                result = s.parent_root
                i = None
            elif s.parent_id is not None:
                i = None
            else:
                ref = s.origin or s.right_origin
                i = find(*ref) if ref is not None else None
        if i is not None:
            value = parent[i]
            result = value if isinstance(value, str) else None
        for k in chain:
            parent[k] = result
    return [p if isinstance(p, str) else None for p in parent]


def roots(doc: Doc) -> dict[str, str]:
    """root name → ``"xml"`` | ``"text"`` | ``"map"`` | ``"array"``, for the roots that hold
    anything. A root whose items were all deleted reads as an (empty) ``"text"``."""
    structs = decode_update(doc.get_update()).structs
    found: dict[str, set[str]] = {}
    for s, root in zip(structs, _root_of(structs), strict=True):
        if root is None:
            continue
        kinds = found.setdefault(root, set())
        if s.parent_sub is not None:
            kinds.add(MAP)
        elif s.kind is Kind.TYPE and s.type_ref in _XML_NODES:
            kinds.add(XML)
        elif s.kind in _TEXT_KINDS:
            kinds.add(TEXT)
        elif s.kind in _ARRAY_KINDS:
            kinds.add(ARRAY)
    out = {}
    for name, kinds in sorted(found.items()):
        for kind in (MAP, XML, TEXT, ARRAY):
            if kind in kinds:
                out[name] = kind
                break
        else:
            out[name] = TEXT
    return out


# --- plain text


_BLOCK_CONTAINERS = {"bulletList", "orderedList", "listItem", "blockquote", "taskList", "taskItem"}


Node = XmlFragment | XmlElement | XmlText


def _inline_text(node: Node) -> str:
    if isinstance(node, XmlText):
        return "".join(part for part, _attrs in node.diff() if isinstance(part, str))
    if isinstance(node, XmlElement) and node.tag == "hardBreak":
        return "\n"
    return "".join(_inline_text(child) for child in node.children)


def _lines(node: Node, out: list[str]) -> None:
    if isinstance(node, XmlText):
        out.append(_inline_text(node))
    elif isinstance(node, XmlElement) and node.tag not in _BLOCK_CONTAINERS:
        if node.tag != "horizontalRule":
            out.append(_inline_text(node))
    else:
        for child in node.children:
            _lines(child, out)


def _text_root(doc: Doc, name: str) -> str:
    return str(doc.get(name, type=Text))


def plain_text(doc: Doc) -> str:
    """The text of the doc's XML and Text roots (by name), one line per block."""
    parts = []
    for name, kind in roots(doc).items():
        if kind == XML:
            lines: list[str] = []
            _lines(doc.get(name, type=XmlFragment), lines)
            parts.append("\n".join(lines))
        elif kind == TEXT:
            parts.append(_text_root(doc, name))
    return "\n".join(p for p in parts if p)


# --- HTML


def _e(text: str) -> str:
    return _html.escape(text, quote=True)


_SIMPLE_BLOCKS = {
    "paragraph": "p",
    "bulletList": "ul",
    "orderedList": "ol",
    "listItem": "li",
    "blockquote": "blockquote",
}
#: Mark → tag, outermost first (a fixed order: the same doc always gives the same HTML).
_MARKS = (("bold", "strong"), ("italic", "em"), ("underline", "u"), ("strike", "s"))
_SAFE_SCHEMES = {"http", "https", "mailto"}


def safe_href(href: object) -> str | None:
    """``href`` if it is an http, https or mailto URL, else None."""
    if not isinstance(href, str):
        return None
    href = href.strip()
    # Browsers drop tabs and newlines anywhere in a URL ("java\tscript:"): refuse them.
    if not href or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in href):
        return None
    try:
        scheme = urlsplit(href).scheme.lower()
    except ValueError:
        return None
    return href if scheme in _SAFE_SCHEMES else None


def _mark_name(name: str) -> str:
    # y-prosemirror names overlapping marks "link--<hash>".
    return name.split("--", 1)[0]


def _inline_html(text: XmlText) -> str:
    out = []
    for part, attrs in text.diff():
        if not isinstance(part, str):
            continue  # an embed: nothing we render
        marks = {_mark_name(k): v for k, v in (attrs or {}).items() if v is not None}
        chunk = _e(part).replace("\n", "<br>")
        if "code" in marks:
            chunk = f"<code>{chunk}</code>"
        for mark, tag in reversed(_MARKS):
            if mark in marks:
                chunk = f"<{tag}>{chunk}</{tag}>"
        link = marks.get("link")
        href = safe_href(link.get("href")) if isinstance(link, dict) else None
        if href is not None:
            chunk = f'<a href="{_e(href)}" rel="nofollow noopener noreferrer">{chunk}</a>'
        out.append(chunk)
    return "".join(out)


def heading_level(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return 1
    try:
        level = int(float(value))
    except (ValueError, OverflowError):
        return 1
    return level if 1 <= level <= 6 else 1


def _node_html(node: Node, block: bool) -> str:
    if isinstance(node, XmlText):
        inner = _inline_html(node)
        return f"<p>{inner}</p>" if block and inner else inner
    if isinstance(node, XmlFragment):  # not in Tiptap docs; render what it holds
        return _children_html(node, block)
    tag = node.tag or ""
    if tag == "hardBreak":
        return "<br>"
    if tag == "horizontalRule":
        return "<hr>"
    if tag == "heading":
        n = heading_level(node.attributes.get("level"))
        return f"<h{n}>{_children_html(node, block=False)}</h{n}>"
    if tag == "codeBlock":
        return f"<pre><code>{_e(_inline_text(node))}</code></pre>"
    html_tag = _SIMPLE_BLOCKS.get(tag)
    if html_tag is not None:
        inner_block = tag in _BLOCK_CONTAINERS
        return f"<{html_tag}>{_children_html(node, block=inner_block)}</{html_tag}>"
    # Unknown node (an image, a table, a hostile <script>): its text, never its markup.
    text = _e(_inline_text(node)).replace("\n", "<br>")
    return f"<p>{text}</p>" if block and text else text


def _children_html(node: XmlFragment | XmlElement, block: bool) -> str:
    return "".join(_node_html(child, block) for child in node.children)


def _text_html(text: str) -> str:
    return "".join(f"<p>{_e(line)}</p>" for line in text.split("\n") if line)


def html(doc: Doc) -> str:
    """Safe HTML of the doc's XML and Text roots (by name)."""
    parts = []
    for name, kind in roots(doc).items():
        if kind == XML:
            parts.append(_children_html(doc.get(name, type=XmlFragment), block=True))
        elif kind == TEXT:
            parts.append(_text_html(_text_root(doc, name)))
    return "".join(parts)


# --- words and preview

_WORD = re.compile(r"\w+(?:['’\-]\w+)*")


def words(text: str) -> int:
    """Words in ``text`` ("l'élève", "peut-être" and "2024" are one word each)."""
    return sum(1 for _ in _WORD.finditer(text))


def preview(doc: Doc, chars: int = 200) -> str:
    """The doc's first ``chars`` characters of text, whitespace collapsed, cut at a word
    boundary when one is near, with "…" when cut."""
    text = " ".join(plain_text(doc).split())
    if len(text) <= chars:
        return text
    cut = text[: max(chars - 1, 0)]  # room for the "…"
    space = cut.rfind(" ")
    if space >= chars * 2 // 3:
        cut = cut[:space]
    return cut.rstrip() + "…"


__all__ = [
    "ARRAY",
    "MAP",
    "TEXT",
    "XML",
    "html",
    "plain_text",
    "preview",
    "roots",
    "safe_href",
    "words",
]
