"""``atelier backup`` and ``atelier restore``, round trip on both backends.

A real node serves docs edited by real clients and a chat; the backup is taken while it
serves (a client keeps typing through it); the backup is restored into an empty
database (a fresh SQLite file, or a PostgreSQL database made for the test and dropped
after); a node started on it serves every doc and every message.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.liveclient import LiveClient
from tests.support.server import AtelierServer
from tests.support.services import postgres_database
from tests.support.stored import stored_text
from tests.support.yclient import YClient, eventually

pytestmark = pytest.mark.integration

DOCS = {("2nde-a-g1", "rapport"): "s-01", ("2nde-a-g2", "enquete"): "s-07"}
CHATS = {"2nde-a-g1": "s-02", "1ere-b": "s-31"}


def cli(server: AtelierServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        env=server.env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def doc_url(server: AtelierServer, user: str, room: str, doc: str) -> str:
    return f"{server.ws_url}/yjs/{room}/{doc}?token={server.token(user)}"


def live_url(server: AtelierServer, user: str, room: str) -> str:
    return f"{server.ws_url}/rooms/{room}/live?token={server.token(user)}"


@contextlib.contextmanager
def database(backend: str, folder: Path, name: str) -> Iterator[str]:
    """An empty database of ``backend``: its SQLAlchemy URL."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{folder}/{name}.db"
    else:
        with postgres_database(f"atelier_bk_{name}") as url:
            yield url


def node(folder: Path, url: str) -> AtelierServer:
    folder.mkdir(parents=True, exist_ok=True)
    return AtelierServer(data_dir=folder, database_url=url)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_backup_while_serving_then_restore_into_an_empty_database(
    backend: str, tmp_path: Path
) -> None:
    backup_file = tmp_path / "atelier.backup"
    with database(backend, tmp_path, "source") as source_url:
        source = node(tmp_path / "source", source_url)
        source.prepare()
        source.start()
        try:
            written: dict[tuple[str, str], str] = {}
            clients = []
            for (room, doc), user in DOCS.items():
                c = await YClient(doc_url(source, user, room, doc)).connect()
                text = f"Compte rendu de {user} : é à ç œ « guillemets »\n" * 20
                await c.type(text)
                await c.round_trip()
                written[(room, doc)] = text
                clients.append(c)
            posted: dict[str, list[str]] = {}
            for room, user in CHATS.items():
                chat = await LiveClient(live_url(source, user, room)).connect()
                posted[room] = [f"message {i} de {user}" for i in range(5)]
                for text in posted[room]:
                    assert (await chat.request({"t": "post", "text": text}))["t"] == "ok"
                await chat.close()
            for (room, doc), text in written.items():
                await eventually(
                    lambda r=room, d=doc, t=text: _stored_is(source, r, d, t), timeout=15
                )

            # A classmate keeps typing while the backup runs: the node serves on.
            typist = await YClient(doc_url(source, "s-03", "2nde-a-g1", "rapport")).connect()
            stop = asyncio.Event()

            async def keep_typing() -> int:
                n = 0
                while not stop.is_set() and n < 2000:
                    await typist.type("k")
                    n += 1
                    await asyncio.sleep(0.005)
                return n

            typing = asyncio.create_task(keep_typing())
            await asyncio.sleep(0.3)
            made = await asyncio.to_thread(cli, source, "backup", str(backup_file))
            stop.set()
            typed = await typing
            assert made.returncode == 0, made.stderr
            assert f"{backend} backup" in made.stdout and typed > 0
            assert backup_file.stat().st_mode & 0o077 == 0  # the operator's alone
            await typist.round_trip()
            final = typist.content()
            for c in [*clients, typist]:
                await c.close()
        finally:
            source.stop()

        with database(backend, tmp_path, "target") as target_url:
            target = node(tmp_path / "target", target_url)
            done = await asyncio.to_thread(cli, target, "restore", str(backup_file))
            assert done.returncode == 0, done.stderr
            # A second restore would overwrite what is there now: refused without --force.
            again = await asyncio.to_thread(cli, target, "restore", str(backup_file))
            assert again.returncode == 3 and "refused, nothing written" in again.stderr
            target.start()
            try:
                for (room, doc), user in DOCS.items():
                    c = await YClient(doc_url(target, user, room, doc)).connect()
                    await c.round_trip()
                    got = c.content()
                    if doc == "rapport":  # the typist's keystrokes up to the backup
                        assert got.startswith(written[(room, doc)]) and final.startswith(got)
                    else:
                        assert got == written[(room, doc)]
                    await c.close()
                for room, user in CHATS.items():
                    chat = await LiveClient(live_url(target, user, room)).connect()
                    assert chat.texts() == posted[room]
                    await chat.close()
            finally:
                target.stop()


async def _stored_is(server: AtelierServer, room: str, doc: str, text: str) -> bool:
    return await stored_text(server.database_url, room, doc) == text


def test_restore_refuses_a_file_of_the_other_backend_or_no_backup(tmp_path: Path) -> None:
    with postgres_database("atelier_bk_pg") as pg_url:
        pg = node(tmp_path / "pg", pg_url)
        pg.prepare()
        dump = tmp_path / "pg.backup"
        assert cli(pg, "backup", str(dump)).returncode == 0
    lite = node(tmp_path / "lite", f"sqlite+aiosqlite:///{tmp_path}/lite/empty.db")
    other = cli(lite, "restore", str(dump))
    assert other.returncode == 1
    assert "is a postgresql backup; the configured database is sqlite" in other.stderr
    junk = tmp_path / "notes.txt"
    junk.write_text("pas une sauvegarde")
    bad = cli(lite, "restore", str(junk))
    assert bad.returncode == 1 and "neither an SQLite backup" in bad.stderr
    assert not (tmp_path / "lite" / "empty.db").exists()  # nothing was written


def test_force_restores_over_a_database_with_tables(tmp_path: Path) -> None:
    first = node(tmp_path / "a", f"sqlite+aiosqlite:///{tmp_path}/a/atelier.db")
    first.prepare()
    saved = tmp_path / "a.backup"
    assert cli(first, "backup", str(saved)).returncode == 0
    other = node(tmp_path / "b", f"sqlite+aiosqlite:///{tmp_path}/b/atelier.db")
    other.cli("migrate")  # tables, no roster
    assert cli(other, "restore", str(saved)).returncode == 3
    forced = cli(other, "restore", "--force", str(saved))
    assert forced.returncode == 0, forced.stderr
    assert "demo school already present" in other.cli("seed-demo", "--if-empty")
