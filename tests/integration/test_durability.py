"""Nothing typed is lost: SIGTERM mid-typing, restart, reconnect."""

from __future__ import annotations

import asyncio
import contextlib
import signal

import httpx
import pytest
import websockets

from tests.support.server import AtelierServer
from tests.support.stored import compacted, stored_text
from tests.support.yclient import YClient, eventually

pytestmark = pytest.mark.integration


async def _type_until_closed(client: YClient, limit: int = 5000) -> int:
    """Append one character at a time until the server goes away. Returns how many."""
    sent = 0
    with contextlib.suppress(websockets.ConnectionClosed):
        for i in range(limit):
            if client.closed.is_set():
                break
            await client.type("abcdefghij"[i % 10])
            sent += 1
            await asyncio.sleep(0.002)
    return sent


def _doc_url(server: AtelierServer, user: str, doc: str = "rapport") -> str:
    return f"{server.ws_url}/yjs/2nde-a-g1/{doc}?token={server.token(user)}"


async def _stored_is(server: AtelierServer, doc: str, text: str) -> bool:
    return await stored_text(server.database_url, "2nde-a-g1", doc) == text


async def test_sigterm_mid_typing_loses_nothing(fresh_atelier: AtelierServer) -> None:
    server = fresh_atelier
    typist = await YClient(_doc_url(server, "s-01")).connect()
    observer = await YClient(_doc_url(server, "s-02")).connect()
    typing = asyncio.create_task(_type_until_closed(typist))
    await eventually(lambda: len(observer.content()) >= 200, timeout=20)

    server.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
    await typing
    assert await typist.wait_closed() == 1012  # "service restart": clients come back
    assert await observer.wait_closed() == 1012
    assert server.proc.wait(30) in (0, -signal.SIGTERM)  # type: ignore[union-attr]
    assert "flushed" in server.log() and "NOT flushed" not in server.log()
    seen_by_observer = observer.content()

    server.start()
    # What the server had applied before stopping is all there after the restart:
    # everything it relayed to the observer at least, in the same order.
    fresh = await YClient(_doc_url(server, "s-03")).connect()
    stored = fresh.content()
    assert len(stored) >= len(seen_by_observer) >= 200
    assert stored.startswith(seen_by_observer)
    assert typist.content().startswith(stored)

    # The typist is a replica: reconnecting repairs whatever was in flight.
    again = YClient(_doc_url(server, "s-01"))
    again.doc = typist.doc  # same local doc, as a browser tab keeps it
    from pycrdt import Text

    again.text = again.doc.get("content", type=Text)
    await again.connect()
    await eventually(lambda: fresh.content() == typist.content())
    await again.close()
    await fresh.close()


async def test_sigkill_then_clients_repair_on_reconnect(fresh_atelier: AtelierServer) -> None:
    server = fresh_atelier
    typist = await YClient(_doc_url(server, "s-01")).connect()
    typing = asyncio.create_task(_type_until_closed(typist))
    await eventually(lambda: len(typist.content()) >= 150, timeout=20)
    server.stop(signal.SIGKILL)
    await typing
    server.start()
    again = YClient(_doc_url(server, "s-01"))
    again.doc = typist.doc
    from pycrdt import Text

    again.text = again.doc.get("content", type=Text)
    await again.connect()
    fresh = await YClient(_doc_url(server, "s-04")).connect()
    await eventually(lambda: fresh.content() == typist.content())
    await again.close()
    await fresh.close()


async def test_readiness_goes_false_when_draining(fresh_atelier: AtelierServer) -> None:
    server = fresh_atelier
    # A connected client keeps uvicorn's shutdown busy for a moment: poll readiness then.
    clients = [await YClient(_doc_url(server, f"s-0{i}")).connect() for i in range(1, 4)]
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        assert (await http.get("/readyz")).status_code == 200
    server.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
    for c in clients:
        assert await c.wait_closed() == 1012
    assert server.proc.wait(30) in (0, -signal.SIGTERM)  # type: ignore[union-attr]


async def test_a_doc_that_fails_to_load_is_never_served_nor_overwritten(
    fresh_atelier: AtelierServer,
) -> None:
    import sqlite3

    server = fresh_atelier
    writer = await YClient(_doc_url(server, "s-01")).connect()
    await writer.type("le vrai texte")
    await writer.round_trip()  # the server has the edit
    await writer.close()
    # Unloaded, so that the next join loads from the database: the unload (0.2 s after
    # the last client left) folds the log into the snapshot, its trace in the database.
    await eventually(lambda: compacted(server.database_url, "2nde-a-g1", "rapport"))
    db = sqlite3.connect(server.data_dir / "atelier.db")
    with db:
        db.execute(
            "INSERT INTO doc_update (room_id, doc_name, data, created_at) "
            "VALUES ('2nde-a-g1', 'rapport', x'01020304', CURRENT_TIMESTAMP)"
        )
    log_rows = "SELECT count(*) FROM doc_update WHERE doc_name = 'rapport'"
    rows_before = db.execute(log_rows).fetchone()[0]
    snapshot_before = db.execute("SELECT snapshot FROM doc WHERE name = 'rapport'").fetchone()

    c = YClient(_doc_url(server, "s-02"))
    await c.connect(wait_synced=False)
    assert await c.wait_closed() == 1013  # try again later: never an empty doc
    assert not c.synced.is_set() and c.content() == ""
    # Barrier for the write-behind (one FIFO queue, committed in order): an edit of
    # another doc, sent after the refusal, is committed after anything queued before it.
    witness = await YClient(_doc_url(server, "s-03", "temoin")).connect()
    await witness.type("témoin")
    await eventually(lambda: _stored_is(server, "temoin", "témoin"))
    await witness.close()
    assert db.execute(log_rows).fetchone()[0] == rows_before
    assert db.execute("SELECT snapshot FROM doc WHERE name = 'rapport'").fetchone() == (
        snapshot_before
    )

    # Once an operator removes the bad row, the doc is served whole again.
    with db:
        db.execute("DELETE FROM doc_update WHERE data = x'01020304'")
    again = await YClient(_doc_url(server, "s-02")).connect()
    assert again.content() == "le vrai texte"
    await again.close()
    db.close()
