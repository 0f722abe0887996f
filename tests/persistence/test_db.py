"""Engines, readiness and migrations, on both dialects."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from server.persistence.db import alembic_config, create_engine, ping, run_migrations
from server.persistence.models import metadata, school_t


async def test_migrated_schema_matches_the_models(engine: AsyncEngine) -> None:
    def diff(conn):  # type: ignore[no-untyped-def]
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(ctx, metadata)

    async with engine.connect() as conn:
        assert await conn.run_sync(diff) == []
        version = await conn.scalar(text("SELECT version_num FROM alembic_version"))
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert version == head  # migrated to the newest revision


def _sync_url(db_url: str) -> sa.URL:
    """The same database through a synchronous driver (the migrations run their own loop)."""
    url = sa.make_url(db_url)
    return url.set(drivername="sqlite") if url.get_backend_name() == "sqlite" else url


def _schema_and_data(db_url: str) -> dict[str, object]:
    """The alembic version, every table's columns, keys and indexes, and one seeded row."""
    engine = sa.create_engine(_sync_url(db_url))
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            tables = {}
            for table in sorted(inspector.get_table_names()):
                tables[table] = {
                    "columns": [
                        (c["name"], str(c["type"]), c["nullable"], c.get("default"))
                        for c in inspector.get_columns(table)
                    ],
                    "pk": inspector.get_pk_constraint(table),
                    "fks": sorted(inspector.get_foreign_keys(table), key=repr),
                    "indexes": sorted(inspector.get_indexes(table), key=repr),
                    "uniques": sorted(inspector.get_unique_constraints(table), key=repr),
                }
            version = conn.scalar(text("SELECT version_num FROM alembic_version"))
            schools = conn.execute(sa.select(school_t).order_by(school_t.c.id)).all()
    finally:
        engine.dispose()
    return {"version": version, "tables": tables, "schools": [tuple(r) for r in schools]}


def test_migrations_run_twice_are_a_no_op(db_url: str) -> None:
    # The fixture already migrated once; some data is there when the second run comes.
    engine = sa.create_engine(_sync_url(db_url))
    try:
        with engine.begin() as conn:
            conn.execute(school_t.insert().values(id="lycee-x", name="Lycée X"))
    finally:
        engine.dispose()
    before = _schema_and_data(db_url)
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert before["version"] == head
    assert {t.name for t in metadata.sorted_tables} <= set(before["tables"])  # type: ignore[arg-type]
    assert before["schools"] == [("lycee-x", "Lycée X")]

    run_migrations(db_url)

    assert _schema_and_data(db_url) == before


async def test_run_migrations_refuses_a_running_loop(db_url: str) -> None:
    with pytest.raises(RuntimeError, match="event loop"):
        run_migrations(db_url)


async def test_ping(engine: AsyncEngine) -> None:
    await ping(engine)


async def test_ping_raises_when_the_database_is_down() -> None:
    engine = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    try:
        with pytest.raises(Exception):  # noqa: B017 - any driver error will do
            await ping(engine)
    finally:
        await engine.dispose()


async def test_sqlite_is_tuned_and_its_folder_created(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "atelier.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.connect() as conn:
            pragmas = {
                p: await conn.scalar(text(f"PRAGMA {p}"))
                for p in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
            }
    finally:
        await engine.dispose()
    assert path.exists()
    # synchronous: 1 = NORMAL
    assert pragmas == {
        "journal_mode": "wal",
        "synchronous": 1,
        "busy_timeout": 5000,
        "foreign_keys": 1,
    }


def test_sqlite_migration_from_scratch(tmp_path: Path) -> None:
    path = tmp_path / "new" / "atelier.db"
    run_migrations(f"sqlite+aiosqlite:///{path}")
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    conn.close()
    assert {t.name for t in metadata.sorted_tables} <= tables
