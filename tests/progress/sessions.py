"""Multi-user editing sessions that make real Yjs updates, with who made each one.

``PycrdtSession``: one pycrdt doc per user, each with its own client id; every
transaction's update is logged with its author and delivered to the other docs, as the
server relays it. ``yjs_session``: the same with stock Yjs under Node
(tests/interop/yjs_updates.mjs), including Tiptap-style XmlFragments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pycrdt import Doc, Text, XmlElement, XmlFragment, XmlText

from tests.support.node import node_json

#: (update, author) in the order the server received them.
Log = list[tuple[bytes, str]]


def utf8_offset(text: str, pos: int) -> int:
    """pycrdt indexes Text and XmlText in UTF-8 bytes; tests think in code points."""
    return len(text[:pos].encode())


def xml_chars(text: XmlText) -> str:
    return "".join(part for part, _attrs in text.diff() if isinstance(part, str))


class PycrdtSession:
    def __init__(self, clients: dict[str, int]) -> None:
        self.clients = clients
        self.docs = {user: Doc(client_id=cid) for user, cid in clients.items()}
        self.log: Log = []
        self._captured: list[bytes] = []
        for doc in self.docs.values():
            doc.observe(lambda event: self._captured.append(event.update))

    def edit(self, user: str, change: Callable[[Doc], object]) -> None:
        """One transaction of ``user``'s, then relayed to everyone else."""
        doc = self.docs[user]
        self._captured.clear()
        with doc.transaction():
            change(doc)
        updates = [u for u in self._captured if u != b"\x00\x00"]
        for update in updates:
            self.log.append((update, user))
            for other, other_doc in self.docs.items():
                if other != user:
                    other_doc.apply_update(update)
        self._captured.clear()

    # --- Y.Text "content", a keystroke per transaction

    def text(self, user: str) -> Text:
        return self.docs[user].get("content", type=Text)

    def type(self, user: str, pos: int, chars: str) -> None:
        for i, ch in enumerate(chars):

            def insert(doc: Doc, at: int = pos + i, ch: str = ch) -> None:
                text = doc.get("content", type=Text)
                text.insert(utf8_offset(str(text), at), ch)

            self.edit(user, insert)

    def delete(self, user: str, pos: int, length: int) -> None:
        def remove(doc: Doc) -> None:
            text = doc.get("content", type=Text)
            current = str(text)
            del text[utf8_offset(current, pos) : utf8_offset(current, pos + length)]

        self.edit(user, remove)

    # --- Y.XmlFragment "default", Tiptap-style blocks

    def fragment(self, user: str) -> XmlFragment:
        return self.docs[user].get("default", type=XmlFragment)

    def block(self, user: str, tag: str = "paragraph", attrs: dict[str, Any] | None = None) -> None:
        def add(doc: Doc) -> None:
            fragment = doc.get("default", type=XmlFragment)
            element = fragment.children.append(XmlElement(tag, attrs))
            element.children.append(XmlText())

        self.edit(user, add)

    def _xml_text(self, doc: Doc, block: int) -> XmlText:
        element = list(doc.get("default", type=XmlFragment).children)[block]
        assert isinstance(element, XmlElement)
        child = next(iter(element.children))
        assert isinstance(child, XmlText)
        return child

    def xml_type(
        self, user: str, block: int, pos: int, chars: str, marks: dict[str, Any] | None = None
    ) -> None:
        for i, ch in enumerate(chars):

            def insert(doc: Doc, at: int = pos + i, ch: str = ch) -> None:
                text = self._xml_text(doc, block)
                text.insert(utf8_offset(xml_chars(text), at), ch, marks)

            self.edit(user, insert)

    def xml_delete(self, user: str, block: int, pos: int, length: int) -> None:
        def remove(doc: Doc) -> None:
            text = self._xml_text(doc, block)
            current = xml_chars(text)
            del text[utf8_offset(current, pos) : utf8_offset(current, pos + length)]

        self.edit(user, remove)

    def xml_format(
        self, user: str, block: int, pos: int, length: int, marks: dict[str, Any]
    ) -> None:
        def fmt(doc: Doc) -> None:
            text = self._xml_text(doc, block)
            current = xml_chars(text)
            start = utf8_offset(current, pos)
            text.format(start, utf8_offset(current, pos + length) - start, marks)

        self.edit(user, fmt)


def yjs_session(kind: str, clients: dict[str, int], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """Stock Yjs plays ``ops``; returns {log, state, stateVector, text, xml} (log as Log)."""
    out: dict[str, Any] = node_json(
        "yjs_updates.mjs", {"kind": kind, "clients": clients, "ops": ops}
    )
    out["log"] = [(bytes.fromhex(u["hex"]), u["who"]) for u in out["updates"]]
    out["state"] = bytes.fromhex(out["state"])
    return out
