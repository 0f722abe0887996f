"""A doc's words for teachers: root types inferred, plain text, HTML that stays inert.

Docs come from pycrdt and from stock Yjs under Node written the way Tiptap writes them
(y-prosemirror: XmlElement blocks, XmlText with marks as formatting attributes). The
HTML is checked with a parser: only allow-listed tags and attributes, whatever went in.
"""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText

from server.progress.content import html, plain_text, preview, roots, safe_href, words
from tests.progress.sessions import yjs_session


def loaded(doc: Doc) -> Doc:
    """The doc as the server has it: loaded from its update, root types unknown."""
    fresh = Doc()
    fresh.apply_update(doc.get_update())
    return fresh


def from_state(state: bytes) -> Doc:
    doc = Doc()
    doc.apply_update(state)
    return doc


ALLOWED = {
    "p": set(),
    "h1": set(), "h2": set(), "h3": set(), "h4": set(), "h5": set(), "h6": set(),
    "ul": set(), "ol": set(), "li": set(), "blockquote": set(), "pre": set(),
    "code": set(), "br": set(), "hr": set(), "strong": set(), "em": set(), "u": set(),
    "s": set(), "a": {"href", "rel"},
}  # fmt: skip


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def assert_inert(markup: str) -> _Tags:
    parser = _Tags()
    parser.feed(markup)
    parser.close()
    for tag, attrs in parser.tags:
        assert tag in ALLOWED, tag
        assert set(attrs) <= ALLOWED[tag], (tag, attrs)
        if tag == "a":
            assert safe_href(attrs["href"]) == attrs["href"]
    return parser


# --- roots


def test_roots_of_every_kind() -> None:
    doc = Doc()
    doc["t"] = Text("abc")
    doc["m"] = Map({"k": 1})
    doc["a"] = Array([1, "x"])
    doc["x"] = XmlFragment([XmlElement("paragraph", None, [XmlText("hé")])])
    doc["bare"] = XmlFragment([XmlText("texte nu")])
    assert roots(loaded(doc)) == {"a": "array", "bare": "xml", "m": "map", "t": "text", "x": "xml"}


def test_roots_when_the_items_naming_them_were_deleted() -> None:
    doc = Doc()
    doc["t"] = text = Text("abcdef")
    text.insert(6, "ghi")
    del text[0:6]  # the item that named root "t" is gone; "ghi" points at it by origin
    doc["x"] = fragment = XmlFragment([XmlElement("paragraph", None, [XmlText("un")])])
    fragment.children.append(XmlElement("heading", {"level": 1}, [XmlText("deux")]))
    del fragment.children[0]
    doc["m"] = m = Map({"k": 1})
    m["k"] = 2
    assert roots(loaded(doc)) == {"m": "map", "t": "text", "x": "xml"}
    assert plain_text(loaded(doc)) == "ghi\ndeux"


def test_a_formatted_text_root_is_text() -> None:
    doc = Doc()
    doc["t"] = text = Text("gras et pas")
    text.format(0, 4, {"bold": True})
    assert roots(loaded(doc)) == {"t": "text"}


# --- a doc written by stock Yjs the way Tiptap writes it

Run = tuple[str, dict[str, Any] | None]


def node(tag: str, *children: dict[str, Any], **attrs: Any) -> dict[str, Any]:
    return {"tag": tag, "attrs": attrs, "children": list(children)}


def runs(*parts: Run) -> dict[str, Any]:
    """An XmlText: text runs with their marks, as y-prosemirror writes them."""
    return {"text": [list(part) for part in parts]}


def para(*parts: Run) -> dict[str, Any]:
    return node("paragraph", runs(*parts))


def item(*parts: Run) -> dict[str, Any]:
    return node("listItem", para(*parts))


WIKI = "https://fr.wikipedia.org/wiki/Soleil?a=1&b=2"
TIPTAP_DOC = [
    node("heading", runs(("Notre exposé", None)), level=2),
    para(
        ("Le ", None),
        ("soleil", {"bold": {}}),
        (" est ", None),
        ("chaud", {"italic": {}, "bold": {}}),
        (" — ", None),
        ("source", {"link": {"href": WIKI, "target": "_blank"}}),
        (", ", None),
        ("x < y", {"code": {}}),
    ),
    node("bulletList", item(("un", None)), item(("deux", {"strike": {}}))),
    node("orderedList", item(("premier", {"underline": {}})), start=1),
    node("blockquote", para(("cité", None))),
    node("codeBlock", runs(("print('<b>')\nx = 1", None)), language="python"),
    node("paragraph", runs(("ligne 1", None)), node("hardBreak"), runs(("ligne 2", None))),
    node("horizontalRule"),
    node("image", src="x.png", alt="une image"),
    node("paragraph"),
]

TIPTAP_HTML = (
    "<h2>Notre exposé</h2>"
    "<p>Le <strong>soleil</strong> est <strong><em>chaud</em></strong> — "
    '<a href="https://fr.wikipedia.org/wiki/Soleil?a=1&amp;b=2" rel="nofollow noopener noreferrer">'
    "source</a>, <code>x &lt; y</code></p>"
    "<ul><li><p>un</p></li><li><p><s>deux</s></p></li></ul>"
    "<ol><li><p><u>premier</u></p></li></ol>"
    "<blockquote><p>cité</p></blockquote>"
    "<pre><code>print(&#x27;&lt;b&gt;&#x27;)\nx = 1</code></pre>"
    "<p>ligne 1<br>ligne 2</p>"
    "<hr>"
    "<p></p>"
)


@pytest.fixture(scope="module")
def tiptap() -> dict[str, Any]:
    ops = [
        {"who": "alice", "op": "tree", "at": i, "node": node} for i, node in enumerate(TIPTAP_DOC)
    ]
    return yjs_session("xml", {"alice": 1001}, ops)


def test_tiptap_doc_roots(tiptap: dict[str, Any]) -> None:
    assert roots(from_state(tiptap["state"])) == {"default": "xml"}


def test_tiptap_doc_html(tiptap: dict[str, Any]) -> None:
    markup = html(from_state(tiptap["state"]))
    assert markup == TIPTAP_HTML
    assert_inert(markup)


def test_tiptap_doc_plain_text(tiptap: dict[str, Any]) -> None:
    assert plain_text(from_state(tiptap["state"])).split("\n") == [
        "Notre exposé",
        "Le soleil est chaud — source, x < y",
        "un",
        "deux",
        "premier",
        "cité",
        "print('<b>')",
        "x = 1",
        "ligne 1",
        "ligne 2",
        "",  # the image: no text
        "",  # the empty paragraph
    ]


def test_tiptap_doc_words_and_preview(tiptap: dict[str, Any]) -> None:
    doc = from_state(tiptap["state"])
    assert words(plain_text(doc)) == 21
    assert preview(doc, 40) == "Notre exposé Le soleil est chaud —…"
    assert len(preview(doc, 40)) <= 40


def test_edits_by_two_users_as_tiptap_types() -> None:
    out = yjs_session(
        "xml",
        {"alice": 1001, "bob": 2002},
        [
            {"who": "alice", "op": "block", "at": 0, "tag": "heading", "attrs": {"level": 1}},
            {"who": "alice", "op": "type", "block": 0, "pos": 0, "text": "Titre"},
            {"who": "bob", "op": "block", "at": 1, "tag": "paragraph"},
            {"who": "bob", "op": "type", "block": 1, "pos": 0, "text": "du gras", "marks": {}},
            {"who": "alice", "op": "format", "block": 1, "pos": 3, "len": 4, "marks": {"bold": {}}},
        ],
    )
    assert html(from_state(out["state"])) == "<h1>Titre</h1><p>du <strong>gras</strong></p>"


# --- hostile content comes out inert


def link(text: str, href: object) -> Run:
    return (text, {"link": {"href": href}})


HOSTILE_DOC = [
    para(("<script>alert(1)</script>", None)),
    para(
        link("a", "javascript:alert(1)"),
        link("b", "JaVaScRiPt:alert(1)"),
        link("c", " javascript:alert(1)"),
        link("d", "java\tscript:alert(1)"),
        link("e", "data:text/html,<script>alert(1)</script>"),
        link("f", 'https://ok.example/"><script>alert(1)</script>'),
        link("g", "vbscript:msgbox"),
        ("h", {"link": "javascript:alert(1)"}),
        link("i", ["https://x"]),
        ("j", {'bold" onmouseover="alert(1)': {}}),
        ("k", {"link--abc": {"href": "mailto:prof@lycee.fr"}}),
    ),
    node("script", runs(("alert(2)", None))),
    node('img src=x onerror="alert(3)"', runs(("img", None))),
    node("heading", runs(("h", None)), level='1 onclick="alert(4)"'),
    node("heading", runs(("h99", None)), level=99),
    node("paragraph", runs(("p", None)), style="x", onclick="alert(5)"),
    node("iframe", src="https://evil.example"),
    node("blockquote", node("style", runs(("body{}", None)))),
]


@pytest.fixture(scope="module")
def hostile() -> dict[str, Any]:
    ops = [{"who": "mallory", "op": "tree", "at": i, "node": n} for i, n in enumerate(HOSTILE_DOC)]
    return yjs_session("xml", {"mallory": 666}, ops)


def test_hostile_doc_is_inert(hostile: dict[str, Any]) -> None:
    markup = html(from_state(hostile["state"]))
    parsed = assert_inert(markup)
    hrefs = [attrs["href"] for tag, attrs in parsed.tags if tag == "a"]
    assert hrefs == ['https://ok.example/"><script>alert(1)</script>', "mailto:prof@lycee.fr"]
    lowered = markup.lower()
    for needle in ("<script", "<img", "<iframe", "<style", "javascript:", "onclick=", "onerror="):
        assert needle not in lowered, needle
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markup  # shown, as text
    assert "<p>alert(2)</p>" in markup  # an unknown node: its text
    assert "<h1>h</h1>" in markup and "<h1>h99</h1>" in markup


def test_hostile_y_text() -> None:
    doc = Doc()
    doc["content"] = Text('Ligne <b>1</b>\n\n<img src=x onerror="alert(1)">\n& fin')
    markup = html(loaded(doc))
    assert markup == (
        "<p>Ligne &lt;b&gt;1&lt;/b&gt;</p>"
        "<p>&lt;img src=x onerror=&quot;alert(1)&quot;&gt;</p>"
        "<p>&amp; fin</p>"
    )
    assert_inert(markup)


TAGS = ["paragraph", "heading", "codeBlock", "listItem", "bulletList", "blockquote", "hardBreak"]


@settings(max_examples=60, deadline=None)
@given(
    st.text(),
    st.sampled_from(TAGS) | st.text(min_size=1),
    st.sampled_from(["bold", "link", "code", "x<y"]),
    st.text(),
)
def test_any_text_and_marks_stay_inert(text: str, tag: str, mark: str, href: str) -> None:
    doc = Doc()
    doc["content"] = Text(text)
    doc["default"] = fragment = XmlFragment()
    element = fragment.children.append(XmlElement(tag))
    element.children.append(XmlText()).insert(0, text or "x", {mark: {"href": href}})
    parsed = assert_inert(html(loaded(doc)))
    # Every character is shown as text (roots by name: the Text, then the fragment).
    shown = "".join(parsed.text).replace("\n", "")
    if tag != "hardBreak":
        assert shown == text.replace("\n", "") + (text or "x").replace("\n", "")


# --- Y.Text, words, preview, safe_href


def test_y_text_paragraphs() -> None:
    doc = Doc()
    doc["content"] = Text("Première ligne\nDeuxième\n\nFin")
    d = loaded(doc)
    assert roots(d) == {"content": "text"}
    assert plain_text(d) == "Première ligne\nDeuxième\n\nFin"
    assert html(d) == "<p>Première ligne</p><p>Deuxième</p><p>Fin</p>"


def test_an_empty_doc() -> None:
    assert (roots(Doc()), plain_text(Doc()), html(Doc()), preview(Doc())) == ({}, "", "", "")


@pytest.mark.parametrize(
    ("text", "n"),
    [
        ("", 0),
        ("un deux  trois", 3),
        ("l'élève, peut-être, aujourd’hui.", 3),
        ("2024 — 3,5 %", 3),
        ("日本語 テキスト", 2),
        ("a\nb\tc", 3),
        ("👋 🎉", 0),
    ],
)
def test_words(text: str, n: int) -> None:
    assert words(text) == n


def test_preview_cuts_at_a_word() -> None:
    doc = Doc()
    doc["content"] = Text("Le   soleil\nbrille sur la classe entière aujourd'hui")
    assert preview(loaded(doc), 200) == "Le soleil brille sur la classe entière aujourd'hui"
    assert preview(loaded(doc), 20) == "Le soleil brille…"
    assert preview(loaded(doc), 4) == "Le…"


@pytest.mark.parametrize(
    ("href", "kept"),
    [
        ("https://example.org/a?b=c", True),
        ("http://example.org", True),
        ("HTTPS://EXAMPLE.ORG", True),
        ("mailto:prof@lycee.fr", True),
        ("  https://example.org  ", True),
        ("javascript:alert(1)", False),
        ("java\nscript:alert(1)", False),
        ("data:text/html,x", False),
        ("/relative/path", False),
        ("//evil.example", False),
        ("ftp://example.org", False),
        ("", False),
        ("http://[::1", False),
    ],
)
def test_safe_href(href: str, kept: bool) -> None:
    assert (safe_href(href) is not None) is kept
