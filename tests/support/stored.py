"""What a server has stored for a doc, read with the project's own store, so tests wait on
the database itself ("the snapshot is there") instead of sleeping for a guessed time."""

from __future__ import annotations

from pycrdt import Doc, Text

from server.persistence.db import create_engine
from server.persistence.docs import DocStore, StoredDoc


async def stored_doc(database_url: str, room_id: str, doc_name: str) -> StoredDoc:
    """The doc as stored now (snapshot and log), read through ``DocStore.load``."""
    engine = create_engine(database_url)
    try:
        return await DocStore(engine).load(room_id, doc_name)
    finally:
        await engine.dispose()


def text_of(stored: StoredDoc) -> str:
    """The text (the ``content`` Text, as the clients use it) of a stored doc."""
    doc: Doc = Doc()
    text = doc.get("content", type=Text)
    whole = stored.as_update()
    if whole is not None:
        doc.apply_update(whole)
    return str(text)


async def stored_text(database_url: str, room_id: str, doc_name: str) -> str:
    return text_of(await stored_doc(database_url, room_id, doc_name))


async def compacted(database_url: str, room_id: str, doc_name: str) -> bool:
    """Is the doc folded into its snapshot with an empty log?

    A doc's log is folded when it reaches ``compact_after_updates`` (500) or when the doc
    unloads (``RoomRegistry.settle``, run once the unload delay has passed). For a doc
    that received a few updates, this is the database's trace of the unload.
    """
    stored = await stored_doc(database_url, room_id, doc_name)
    return stored.snapshot is not None and not stored.updates
