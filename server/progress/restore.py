"""Restoring a version: the change that turns a doc's content back into a version's.

Nothing is rewound: the restore is a new change, made in a scratch replica under a fresh
Yjs client id (bound to the user who restores, so the restored text counts as theirs),
that deletes the current content of each text root and inserts the version's — the
structure of a Tiptap/ProseMirror fragment (elements, attributes, formatted text) or a
Y.Text with its formatting. Applied like any client update, every connected editor
receives it at once; the state before was saved as a version first, so restoring that
one undoes the restore. Roots that are maps or arrays are left as they are (the web
client keeps none; a restore must not guess at structures it does not know).
"""

from __future__ import annotations

from pycrdt import Doc, Text, XmlElement, XmlFragment, XmlText

from server.progress.content import roots


def _copy_text(src: XmlText | Text, dst: XmlText | Text) -> None:
    pos = 0
    for value, attrs in src.diff():
        if isinstance(value, str):
            dst.insert(pos, value, attrs or None)
            pos += len(value)
        else:
            dst.insert_embed(pos, value, attrs or None)
            pos += 1


def _pairs(element: XmlElement) -> list[tuple[str, object]]:
    # XmlAttributesView.__iter__ yields (key, value) pairs; its annotation says Iterable.
    return list(element.attributes)  # type: ignore[call-overload]


def _copy_children(src: XmlFragment | XmlElement, dst: XmlFragment | XmlElement) -> None:
    for child in src.children:
        if isinstance(child, XmlText):
            _copy_text(child, dst.children.append(XmlText()))
        elif isinstance(child, XmlElement):
            attrs = {key: child.attributes[key] for key, _ in _pairs(child)}
            element = dst.children.append(XmlElement(child.tag, attrs))
            _copy_children(child, element)


def restore_update(current: Doc, version_state: bytes, client_id: int) -> bytes:
    """The update (to apply to ``current``) that makes its content the version's."""
    scratch: Doc = Doc(client_id=client_id)
    scratch.apply_update(current.get_update())
    old: Doc = Doc()
    old.apply_update(version_state)
    kinds = {**roots(old), **roots(current)}
    with scratch.transaction():
        for name, kind in sorted(kinds.items()):
            if kind == "xml":
                frag = scratch.get(name, type=XmlFragment)
                del frag.children[0 : len(frag.children)]
                _copy_children(old.get(name, type=XmlFragment), frag)
            elif kind == "text":
                text = scratch.get(name, type=Text)
                del text[0 : len(text)]
                _copy_text(old.get(name, type=Text), text)
    return scratch.get_update(current.get_state())
