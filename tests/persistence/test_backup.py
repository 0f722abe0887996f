"""server/persistence/backup.py on both backends, without a server: a backup made by an
older schema is migrated on restore; one from a schema this version does not know is
refused before anything is written; a database with tables is refused without force."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory

from server.persistence.backup import BackupError, NotEmpty, backup, restore
from server.persistence.db import alembic_config
from tests.support.services import postgres_database

HEAD = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


@contextlib.contextmanager
def empty_database(backend: str, folder: Path, name: str) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{folder}/{name}.db"
    else:
        with postgres_database(f"atelier_bk_{name}") as url:
            yield url


def revision_of(url: str) -> str:
    sync = url.replace("+aiosqlite", "", 1)
    engine = sa.create_engine(sync, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return str(conn.scalar(sa.text("SELECT version_num FROM alembic_version")))
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_backup_of_an_older_schema_is_restored_then_migrated(
    backend: str, tmp_path: Path
) -> None:
    file = tmp_path / "old.backup"
    with empty_database(backend, tmp_path, "old") as old:
        command.upgrade(alembic_config(old), "0006")
        made = backup(old, file)
        assert made.backend == backend and made.revision == "0006" and made.size > 0
    with empty_database(backend, tmp_path, "new") as new:
        back = restore(new, file)
        assert back.revision == "0006"
        assert revision_of(new) == HEAD
        with pytest.raises(NotEmpty):
            restore(new, file)
        assert restore(new, file, force=True).revision == "0006"
        assert revision_of(new) == HEAD


def test_a_backup_from_a_newer_version_is_refused_and_nothing_written(tmp_path: Path) -> None:
    source = f"sqlite+aiosqlite:///{tmp_path}/source.db"
    command.upgrade(alembic_config(source), "head")
    file = tmp_path / "future.backup"
    backup(source, file)
    with sqlite3.connect(file) as conn:  # what a later version of Atelier would have made
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    target = tmp_path / "target.db"
    with pytest.raises(BackupError, match="revision 9999, which this version"):
        restore(f"sqlite+aiosqlite:///{target}", file)
    assert not target.exists()


def test_a_missing_sqlite_database_is_not_backed_up(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="no SQLite database"):
        backup(f"sqlite+aiosqlite:///{tmp_path}/nothing.db", tmp_path / "x.backup")
    assert list(tmp_path.iterdir()) == []  # no partial file left behind
