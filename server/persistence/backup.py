"""Backups of the whole database, and restores into an empty one — theory of operation.

One file per backup, in the backend's own format, so that the usual tools read it too:

- **SQLite**: a copy made through SQLite's online backup API (``sqlite3.Connection.backup``),
  in one step: it reads one consistent snapshot while the node goes on writing (WAL:
  readers never block the writer). The file is an ordinary SQLite database.
- **PostgreSQL**: ``pg_dump --format=custom`` (compressed, restorable table by table),
  restored with ``pg_restore``. Connection details go to the tools through the ``PG*``
  environment, never on their command line, where ``ps`` would show a password.

A restore goes into an empty database (a database that has tables is refused unless
``force``), then brings the schema to this version's Alembic head: a backup made by an
older version is migrated, one made by a newer version (a revision we do not know) is
refused before anything is written. Stop the nodes before restoring over a database
they use.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy import make_url
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from server.persistence.db import alembic_config, run_migrations

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_MAGIC = b"PGDMP"
#: A dump or restore of a regional database may take long; a hung tool must not hang for ever.
TOOL_TIMEOUT_S = 6 * 3600


class BackupError(RuntimeError):
    """The backup or restore could not be made; the message says why, for an operator."""


class NotEmpty(BackupError):
    """The target database has tables: restoring over it needs ``force``."""


@dataclass(frozen=True, slots=True)
class Report:
    backend: str  # "sqlite" | "postgresql"
    path: Path
    size: int
    #: The Alembic revision in the backup (before any upgrade on restore).
    revision: str | None


def _backend(url: URL) -> str:
    name = url.get_backend_name()
    if name not in ("sqlite", "postgresql"):
        raise BackupError(f"unsupported database backend: {name}")
    return name


def _sqlite_path(url: URL) -> Path:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        raise BackupError("an in-memory SQLite database has nothing to back up")
    return Path(database).expanduser()


def _known_revisions(url: str) -> set[str]:
    return {s.revision for s in ScriptDirectory.from_config(alembic_config(url)).walk_revisions()}


def _check_revision(revision: str | None, url: str) -> None:
    if revision is not None and revision not in _known_revisions(url):
        raise BackupError(
            f"the backup is at schema revision {revision}, which this version of Atelier "
            "does not know (made by a newer version?): restore it with that version"
        )


# --- SQLite ---


def _sqlite_revision(conn: sqlite3.Connection) -> str | None:
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError:
        return None
    return str(row[0]) if row else None


def _sqlite_backup(source: Path, target: Path) -> str | None:
    if not source.exists():
        raise BackupError(f"no SQLite database at {source}")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)  # all pages in one step: one consistent snapshot
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal
            check = dst.execute("PRAGMA quick_check").fetchone()
            if not check or check[0] != "ok":
                raise BackupError(f"the copy does not check out: {check}")
            return _sqlite_revision(dst)
        finally:
            dst.close()
    finally:
        src.close()


def _sqlite_has_tables(path: Path) -> bool:
    if not path.exists() or path.stat().st_size == 0:
        return False
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return bool(
            conn.execute("SELECT count(*) FROM sqlite_master WHERE type='table'").fetchone()[0]
        )
    finally:
        conn.close()


def _sqlite_restore(backup: Path, target: Path, force: bool, url: str) -> str | None:
    src = sqlite3.connect(f"file:{backup}?mode=ro", uri=True)
    try:
        check = src.execute("PRAGMA quick_check").fetchone()
        if not check or check[0] != "ok":
            raise BackupError(f"{backup} is damaged: {check}")
        revision = _sqlite_revision(src)
        _check_revision(revision, url)
        if _sqlite_has_tables(target) and not force:
            raise NotEmpty(f"{target} already holds a database")
        target.parent.mkdir(parents=True, exist_ok=True)
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)  # replaces every page of the target, under its locks
        finally:
            dst.close()
        return revision
    finally:
        src.close()


# --- PostgreSQL ---


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} not found: install the PostgreSQL client (postgresql-client)")
    return found


def _pg_env(url: URL) -> dict[str, str]:
    env = dict(os.environ)
    for key, value in (
        ("PGHOST", url.host),
        ("PGPORT", url.port),
        ("PGUSER", url.username),
        ("PGPASSWORD", url.password),
        ("PGDATABASE", url.database),
    ):
        if value is not None:
            env[key] = str(value)
    sslmode = url.query.get("sslmode")
    if isinstance(sslmode, str):
        env["PGSSLMODE"] = sslmode
    return env


def _run(args: list[str], env: dict[str, str]) -> str:
    try:
        done = subprocess.run(
            args, env=env, capture_output=True, timeout=TOOL_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BackupError(f"{Path(args[0]).name} timed out") from exc
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip()[-2000:]
        raise BackupError(f"{Path(args[0]).name} failed: {message}")
    return done.stdout.decode(errors="replace")


_COPY_ROW = re.compile(r"^COPY [^\n]*alembic_version[^\n]*FROM stdin;\n([^\n\\]+)\n", re.M)


def _pg_revision(backup: Path, env: dict[str, str]) -> str | None:
    """The revision stored in a dump, read from the dump itself (no database needed)."""
    text = _run(
        [_tool("pg_restore"), "--data-only", "--table=alembic_version", "--file=-", str(backup)],
        env,
    )
    m = _COPY_ROW.search(text)
    return m.group(1).strip() if m else None


def _pg_tables(url: URL, *, drop: bool = False) -> list[str]:
    """The tables of the database's current schema; with ``drop``, dropped (one
    transaction) so that a forced restore starts from nothing: ``pg_restore --clean``
    would only drop the backup's own tables, and a newer schema's would stay in the way
    of the migrations that follow."""
    engine = sa.create_engine(url.set(drivername="postgresql+psycopg"), poolclass=NullPool)
    try:
        with engine.begin() as conn:
            tables = sa.inspect(conn).get_table_names()
            if drop and tables:
                quoted = ", ".join(conn.dialect.identifier_preparer.quote(t) for t in tables)
                conn.execute(sa.text(f"DROP TABLE {quoted} CASCADE"))
            return tables
    except sa.exc.OperationalError as exc:
        raise BackupError(f"database {url.database} does not answer: {exc.orig}") from None
    finally:
        engine.dispose()


def _pg_restore(backup: Path, url: URL, force: bool, sa_url: str) -> str | None:
    env = _pg_env(url)
    revision = _pg_revision(backup, env)
    _check_revision(revision, sa_url)
    if _pg_tables(url) and not force:
        raise NotEmpty(f"database {url.database} already has tables")
    if force:
        _pg_tables(url, drop=True)
    args = [_tool("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error"]
    args += ["--single-transaction", "--dbname", url.database or "", str(backup)]
    _run(args, env)
    return revision


# --- the two commands ---


def backup(database_url: str, file: Path) -> Report:
    """Write a backup of the database to ``file`` (made beside it, then renamed)."""
    url = make_url(database_url)
    backend = _backend(url)
    file = file.expanduser()
    file.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=f".{file.name}.", dir=file.parent)
    os.close(fd)
    tmp = Path(partial)
    try:
        if backend == "sqlite":
            tmp.unlink()  # sqlite3 makes it
            revision = _sqlite_backup(_sqlite_path(url), tmp)
        else:
            env = _pg_env(url)
            _run([_tool("pg_dump"), "--format=custom", "--no-owner", f"--file={tmp}"], env)
            revision = _pg_revision(tmp, env)
        os.chmod(tmp, 0o600)  # minors' data: readable by the operator alone
        tmp.replace(file)
    finally:
        tmp.unlink(missing_ok=True)
    return Report(backend, file, file.stat().st_size, revision)


def restore(database_url: str, file: Path, *, force: bool = False) -> Report:
    """Restore ``file`` into the (empty, unless ``force``) database, then migrate it to
    this version's head. Raises NotEmpty, or BackupError with the reason."""
    url = make_url(database_url)
    backend = _backend(url)
    file = file.expanduser()
    try:
        with open(file, "rb") as f:
            magic = f.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise BackupError(f"{file}: {exc.strerror}") from exc
    kind = (
        "sqlite" if magic == SQLITE_MAGIC else "postgresql" if magic.startswith(PG_MAGIC) else None
    )
    if kind is None:
        raise BackupError(f"{file} is neither an SQLite backup nor a pg_dump custom archive")
    if kind != backend:
        raise BackupError(f"{file} is a {kind} backup; the configured database is {backend}")
    if backend == "sqlite":
        revision = _sqlite_restore(file, _sqlite_path(url), force, database_url)
    else:
        revision = _pg_restore(file, url, force, database_url)
    run_migrations(database_url)
    return Report(backend, file, file.stat().st_size, revision)
